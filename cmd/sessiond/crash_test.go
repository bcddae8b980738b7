package main

// TestCrashRecovery checks that every acknowledged operation survives SIGKILL: the real binary
// serves mixed concurrent traffic on a data directory, is killed at a random moment, restarts on
// the same directory and must show every acknowledged create, delete, alter and account change
// (SESSIOND_CRASH_CYCLES kill cycles, default 10; SESSIOND_CRASH_SEED replays a run).

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const crashConfigPath = "../../testdata/config/crash.json"

// known is what the test knows of a fact after a crash: true, false, or unknown because the
// operation that would settle it was sent but not acknowledged.
type known int8

const (
	unsure known = iota
	isTrue
	isFalse
)

type crashSession struct {
	token, id, owner string
	permanent        bool
	alive            known
	description      string
	descriptionKnown bool
}

type crashAccount struct {
	name             string
	exists           known
	description      string
	descriptionKnown bool
	sessions         []*crashSession
}

// crashModel is what the clients were told. Each object is changed by one worker only; the
// mutex guards the lists and the counters.
type crashModel struct {
	mu       sync.Mutex
	sessions []*crashSession
	accounts []*crashAccount
	acked    map[string]int
	lost     map[string]int // sent, but the reply never came: the outcome is unknown
}

func (m *crashModel) addSession(s *crashSession) {
	m.mu.Lock()
	m.sessions = append(m.sessions, s)
	m.mu.Unlock()
}

func (m *crashModel) addAccount(a *crashAccount) {
	m.mu.Lock()
	m.accounts = append(m.accounts, a)
	m.mu.Unlock()
}

func (m *crashModel) count(op string, acked bool) {
	m.mu.Lock()
	if acked {
		m.acked[op]++
	} else {
		m.lost[op]++
	}
	m.mu.Unlock()
}

// crashWorker drives one connection; the sessions and accounts it made are its own.
type crashWorker struct {
	id       int
	rng      *rand.Rand
	model    *crashModel
	sessions []*crashSession // live as far as known, admin's included
	accounts []*crashAccount // existing as far as known
	seq      int
}

func (w *crashWorker) name(kind string, cycle int) string {
	w.seq++
	return fmt.Sprintf("%s-w%d-c%d-%d", kind, w.id, cycle, w.seq)
}

// prune drops from the worker's lists what is no longer known to exist.
func (w *crashWorker) prune() {
	sessions := w.sessions[:0]
	for _, s := range w.sessions {
		if s.alive == isTrue {
			sessions = append(sessions, s)
		}
	}
	w.sessions = sessions
	accounts := w.accounts[:0]
	for _, a := range w.accounts {
		if a.exists == isTrue {
			accounts = append(accounts, a)
		}
	}
	w.accounts = accounts
}

// run sends operations until a call fails. A failure before the kill is a test error.
func (w *crashWorker) run(t *testing.T, c *rpcConn, admin string, cycle int, killed *atomic.Bool) {
	for {
		w.prune()
		pick := w.rng.IntN(100)
		if pick >= 30 && pick < 55 && len(w.sessions) == 0 {
			pick = 0 // nothing to delete or alter yet: log in
		}
		if pick >= 55 && pick < 85 && len(w.accounts) == 0 {
			pick = 99 // no account of its own yet: create one
		}
		var err error
		switch {
		case pick < 20:
			err = w.createSession(t, c, cycle, false)
		case pick < 30:
			err = w.createSession(t, c, cycle, true)
		case pick < 40:
			err = w.deleteSession(t, c)
		case pick < 55:
			err = w.alterSession(t, c, cycle)
		case pick < 65:
			err = w.authenticate(t, c)
		case pick < 75:
			err = w.alterAccount(t, c, admin, cycle)
		case pick < 85:
			err = w.dropAccount(t, c, admin)
		default:
			err = w.createAccount(t, c, admin, cycle)
		}
		if err != nil {
			if !killed.Load() {
				t.Errorf("worker %d, cycle %d: a call failed while the server was up: %v", w.id, cycle, err)
			}
			return
		}
	}
}

func unexpected(t *testing.T, op string, r rpcReply) {
	t.Helper()
	t.Errorf("%s: unexpected %v", op, r)
}

func (w *crashWorker) createSession(t *testing.T, c *rpcConn, cycle int, permanent bool) error {
	owner, password := "admin", testAdminPassword
	var acct *crashAccount
	if len(w.accounts) > 0 && w.rng.IntN(2) == 0 {
		acct = w.accounts[w.rng.IntN(len(w.accounts))]
		owner, password = acct.name, "pw-"+acct.name
	}
	desc := w.name("created", cycle)
	params := map[string]any{"username": owner, "password": password, "description": desc}
	if permanent {
		params["permanentSession"] = true
	}
	r, err := c.call("createSession", params)
	w.model.count("createSession", err == nil)
	if err != nil {
		return err
	}
	var s sessionResult
	if r.Error != nil || json.Unmarshal(r.Result, &s) != nil {
		unexpected(t, "createSession", r)
		return nil
	}
	cs := &crashSession{token: s.AuthToken, id: s.SessionID, owner: owner, permanent: permanent, alive: isTrue, description: desc, descriptionKnown: true}
	w.sessions = append(w.sessions, cs)
	if acct != nil {
		acct.sessions = append(acct.sessions, cs)
	}
	w.model.addSession(cs)
	return nil
}

func (w *crashWorker) authenticate(t *testing.T, c *rpcConn) error {
	acct := w.accounts[w.rng.IntN(len(w.accounts))]
	r, err := c.call("authenticate", []string{acct.name, "pw-" + acct.name})
	w.model.count("authenticate", err == nil)
	if err != nil {
		return err
	}
	var key string
	if r.Error != nil || json.Unmarshal(r.Result, &key) != nil || key == "-1" {
		unexpected(t, "authenticate", r)
		return nil
	}
	cs := &crashSession{token: key, owner: acct.name, alive: isTrue, descriptionKnown: true}
	// Its sessionId is learnt when it is described; until then only the token is checked.
	w.sessions = append(w.sessions, cs)
	acct.sessions = append(acct.sessions, cs)
	w.model.addSession(cs)
	return nil
}

func (w *crashWorker) deleteSession(t *testing.T, c *rpcConn) error {
	s := w.sessions[w.rng.IntN(len(w.sessions))]
	r, err := c.call("deleteSession", map[string]any{"authToken": s.token})
	w.model.count("deleteSession", err == nil)
	if err != nil {
		s.alive = unsure
		return err
	}
	if r.Error != nil {
		unexpected(t, "deleteSession", r)
		return nil
	}
	s.alive = isFalse
	return nil
}

func (w *crashWorker) alterSession(t *testing.T, c *rpcConn, cycle int) error {
	s := w.sessions[w.rng.IntN(len(w.sessions))]
	desc := w.name("altered", cycle)
	r, err := c.call("alterSession", map[string]any{"authToken": s.token, "description": desc})
	w.model.count("alterSession", err == nil)
	if err != nil {
		s.descriptionKnown = false // it may or may not have been applied
		return err
	}
	var got sessionResult
	if r.Error != nil || json.Unmarshal(r.Result, &got) != nil || got.Description != desc {
		unexpected(t, "alterSession", r)
		return nil
	}
	s.id, s.description, s.descriptionKnown = got.SessionID, desc, true
	return nil
}

func (w *crashWorker) createAccount(t *testing.T, c *rpcConn, admin string, cycle int) error {
	name := w.name("acct", cycle)
	desc := "created " + name
	a := &crashAccount{name: name, description: desc}
	w.model.addAccount(a)
	r, err := c.call("createAccount", map[string]any{"authToken": admin, "username": name, "password": "pw-" + name, "accountDescription": desc})
	w.model.count("createAccount", err == nil)
	if err != nil {
		return err // exists stays unsure
	}
	if r.Error != nil {
		unexpected(t, "createAccount", r)
		a.exists = isFalse
		return nil
	}
	a.exists, a.descriptionKnown = isTrue, true
	w.accounts = append(w.accounts, a)
	return nil
}

func (w *crashWorker) alterAccount(t *testing.T, c *rpcConn, admin string, cycle int) error {
	a := w.accounts[w.rng.IntN(len(w.accounts))]
	desc := w.name("described", cycle)
	r, err := c.call("alterAccount", map[string]any{"authToken": admin, "username": a.name, "accountDescription": desc})
	w.model.count("alterAccount", err == nil)
	if err != nil {
		a.descriptionKnown = false
		return err
	}
	if r.Error != nil {
		unexpected(t, "alterAccount", r)
		return nil
	}
	a.description, a.descriptionKnown = desc, true
	return nil
}

func (w *crashWorker) dropAccount(t *testing.T, c *rpcConn, admin string) error {
	a := w.accounts[w.rng.IntN(len(w.accounts))]
	r, err := c.call("dropAccounts", map[string]any{"authToken": admin, "usernames": []string{a.name}})
	w.model.count("dropAccounts", err == nil)
	outcome := isFalse
	if err != nil {
		outcome = unsure
	} else if r.Error != nil || string(r.Result) != fmt.Sprintf(`{"dropped":[%q]}`, a.name) {
		unexpected(t, "dropAccounts", r)
		return nil
	}
	a.exists = outcome
	for _, s := range a.sessions {
		if s.alive == isTrue || outcome == isFalse {
			s.alive = outcome
		}
	}
	return err
}

func crashCycles(t *testing.T) int {
	n := 10
	if v := os.Getenv("SESSIOND_CRASH_CYCLES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("SESSIOND_CRASH_CYCLES=%q", v)
		}
	} else if testing.Short() {
		n = 3
	}
	return n
}

func TestCrashRecovery(t *testing.T) {
	cycles := crashCycles(t)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SESSIOND_CRASH_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (SESSIOND_CRASH_SEED replays the same random choices)", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	args := []string{"--config", crashConfigPath, "--data", dir, "--tcp", "127.0.0.1:0", "--http", "off"}
	model := &crashModel{acked: map[string]int{}, lost: map[string]int{}}
	const workers = 4
	ws := make([]*crashWorker, workers)
	for i := range ws {
		ws[i] = &crashWorker{id: i, rng: rand.New(rand.NewPCG(seed, uint64(i)+2)), model: model}
	}
	start := time.Now()
	checks := 0
	for cycle := 1; cycle <= cycles && !t.Failed(); cycle++ {
		p := startServer(t, args...)
		admin := verifyCrashModel(t, p.tcpAddr, model, cycle, &checks)

		var killed atomic.Bool
		var wg sync.WaitGroup
		for _, w := range ws {
			c, err := dialRPC(p.tcpAddr)
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				defer c.close()
				w.run(t, c, admin, cycle, &killed)
			})
		}
		time.Sleep(time.Duration(50+rng.IntN(351)) * time.Millisecond) // 50–400 ms of traffic
		killed.Store(true)
		p.kill()
		wg.Wait()
	}
	if !t.Failed() {
		p := startServer(t, args...)
		verifyCrashModel(t, p.tcpAddr, model, cycles+1, &checks)
		p.kill()
	}
	model.mu.Lock()
	defer model.mu.Unlock()
	total, lost := 0, 0
	for _, n := range model.acked {
		total += n
	}
	for _, n := range model.lost {
		lost += n
	}
	t.Logf("%d SIGKILL cycles in %v: %d acknowledged operations %v, %d cut off by the kill %v; %d sessions and %d accounts tracked; %d checks after restarts",
		cycles, time.Since(start).Round(time.Millisecond), total, model.acked, lost, model.lost, len(model.sessions), len(model.accounts), checks)
}

// verifyCrashModel logs in as admin on a restarted server, checks everything the model knows
// and returns the admin token (itself tracked as a session).
func verifyCrashModel(t *testing.T, addr string, m *crashModel, cycle int, checks *int) string {
	t.Helper()
	c, err := dialRPC(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	r, err := c.call("createSession", map[string]any{"username": "admin", "password": testAdminPassword, "description": fmt.Sprintf("admin-c%d", cycle)})
	var admin sessionResult
	if err != nil || r.Error != nil || json.Unmarshal(r.Result, &admin) != nil {
		t.Fatalf("cycle %d: admin login after restart: %v %v", cycle, r, err)
	}
	m.mu.Lock()
	sessions := append([]*crashSession(nil), m.sessions...)
	accounts := append([]*crashAccount(nil), m.accounts...)
	m.mu.Unlock()
	m.addSession(&crashSession{token: admin.AuthToken, id: admin.SessionID, owner: "admin", alive: isTrue, description: admin.Description, descriptionKnown: true})

	errorsLeft := 20
	fail := func(format string, args ...any) {
		if errorsLeft > 0 {
			t.Errorf("after kill %d: "+format, append([]any{cycle - 1}, args...)...)
		}
		errorsLeft--
	}

	// Every session known to be alive answers pingSession; every one known to be gone is 12031.
	var settled []*crashSession
	for _, s := range sessions {
		if s.alive != unsure {
			settled = append(settled, s)
		}
	}
	for i := 0; i < len(settled); i += 100 {
		chunk := settled[i:min(i+100, len(settled))]
		calls := make([]batchCall, len(chunk))
		for j, s := range chunk {
			calls[j] = batchCall{"pingSession", map[string]any{"authToken": s.token}}
		}
		replies, err := c.batch(calls)
		if err != nil {
			t.Fatalf("cycle %d: pinging: %v", cycle, err)
		}
		for j, s := range chunk {
			*checks++
			switch code := replies[j].errorCode(); {
			case s.alive == isTrue && code != 0:
				fail("acknowledged session %s of %s (permanent %v) is lost: %v", s.id, s.owner, s.permanent, replies[j])
			case s.alive == isFalse && code != 12031:
				fail("session %s of %s was deleted or dropped, acknowledged, and is back: %v", s.id, s.owner, replies[j])
			}
		}
	}

	// Every live session shows its last acknowledged description and kind.
	var live []*crashSession
	for _, s := range sessions {
		if s.alive == isTrue {
			live = append(live, s)
		}
	}
	for i := 0; i < len(live); i += 200 {
		chunk := live[i:min(i+200, len(live))]
		tokens := make([]string, len(chunk))
		for j, s := range chunk {
			tokens[j] = s.token
		}
		r, err := c.call("describeSessions", map[string]any{"authToken": admin.AuthToken, "authTokens": tokens})
		var described struct{ Sessions []sessionResult }
		if err != nil || r.Error != nil || json.Unmarshal(r.Result, &described) != nil {
			t.Fatalf("cycle %d: describeSessions: %v %v", cycle, r, err)
		}
		byToken := map[string]sessionResult{}
		for _, d := range described.Sessions {
			byToken[d.AuthToken] = d
		}
		for _, s := range chunk {
			*checks++
			d, ok := byToken[s.token]
			switch {
			case !ok:
				fail("acknowledged session %s of %s is not described", s.id, s.owner)
			case d.PermanentSession != s.permanent:
				fail("session %s: permanentSession %v, acknowledged %v", s.id, d.PermanentSession, s.permanent)
			case s.descriptionKnown && d.Description != s.description:
				fail("session %s: description %q, last acknowledged %q", d.SessionID, d.Description, s.description)
			}
		}
	}

	// Accounts are as acknowledged.
	r, err = c.call("listAccounts", map[string]any{"authToken": admin.AuthToken})
	var listed struct {
		Accounts []struct {
			Username           string `json:"username"`
			AccountDescription string `json:"accountDescription"`
		}
	}
	if err != nil || r.Error != nil || json.Unmarshal(r.Result, &listed) != nil {
		t.Fatalf("cycle %d: listAccounts: %v %v", cycle, r, err)
	}
	present := map[string]string{}
	for _, a := range listed.Accounts {
		present[a.Username] = a.AccountDescription
	}
	for _, a := range accounts {
		*checks++
		desc, ok := present[a.name]
		switch {
		case a.exists == isTrue && !ok:
			fail("acknowledged account %s is lost", a.name)
		case a.exists == isFalse && ok:
			fail("account %s was dropped, acknowledged, and is back", a.name)
		case a.exists == isTrue && a.descriptionKnown && desc != a.description:
			fail("account %s: description %q, last acknowledged %q", a.name, desc, a.description)
		}
	}
	return admin.AuthToken
}

// TestLastUseAfterKill checks the README's promise for a crash: once a flush interval (100 ms
// here) has passed since a session was used, its last use survives a SIGKILL.
func TestLastUseAfterKill(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--config", crashConfigPath, "--data", dir, "--tcp", "127.0.0.1:0", "--http", "off"}
	p := startServer(t, args...)
	c := dialLine(t, p.tcpAddr)
	var used sessionResult
	c.mustCall("createSession", map[string]any{"username": "admin", "password": testAdminPassword}, &used)
	// Timestamps have whole seconds: the session is used in a later second than its start,
	// and at least half a second (five flush intervals) after it, when its creation's times
	// are written.
	created := time.Now()
	useAt := created.Truncate(time.Second).Add(time.Second + 50*time.Millisecond)
	if useAt.Sub(created) < 500*time.Millisecond {
		useAt = useAt.Add(time.Second)
	}
	time.Sleep(time.Until(useAt))
	logDir := filepath.Join(dir, "lastuse")
	before := dirSignature(t, logDir)
	usedAt := time.Now().UTC().Truncate(time.Second)
	c.mustCall("pingSession", map[string]any{"authToken": used.AuthToken}, nil)
	// The use is on disk once the log changes, and no file of it is empty (a segment is
	// created before its first record is written): nothing else touches a session meanwhile.
	deadline := time.Now().Add(10 * time.Second)
	var after string
	for after = dirSignature(t, logDir); after == before || strings.Contains(after, ":0 "); after = dirSignature(t, logDir) {
		if time.Now().After(deadline) {
			t.Fatalf("the last-use log did not change within 10 s of a use (flush interval 100 ms): %s", before)
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.kill()

	_, s := sessionAfterRestart(t, args, used.SessionID, "SIGKILL")
	if s.SessionLastAccessedTimestamp.Before(usedAt) {
		t.Errorf("sessionLastAccessedTimestamp %v after SIGKILL, want ≥ %v (the use flushed before it; created %v); log before the use %q, after %q",
			s.SessionLastAccessedTimestamp, usedAt, s.SessionStartTimestamp, before, after)
	}
}

// dirSignature names the files of dir with their sizes ("" if dir does not exist yet).
func dirSignature(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue // replaced by a snapshot meanwhile
		}
		fmt.Fprintf(&b, "%s:%d ", e.Name(), info.Size())
	}
	return b.String()
}
