package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
)

// Factory opens the stores under test.
type Factory struct {
	// Open returns a new, empty store. The suite closes it.
	Open func(t *testing.T) engine.Store
	// Reopen returns a store over the same data as old, which the suite has closed. Leave it
	// nil for a store that keeps nothing across Close; the persistence tests are skipped.
	Reopen func(t *testing.T, old engine.Store) engine.Store
}

// test is one conformance check.
type test struct {
	name       string
	persistent bool // needs Factory.Reopen
	run        func(t *testing.T, h *harness)
}

// Run runs the whole suite against the stores f opens, each test on a fresh store.
func Run(t *testing.T, f Factory) {
	t.Helper()
	if f.Open == nil {
		t.Fatal("storetest: Factory.Open is nil")
	}
	var all []test
	all = append(all, accountTests...)
	all = append(all, sessionTests...)
	all = append(all, capTests...)
	all = append(all, preferenceTests...)
	all = append(all, lifecycleTests...)
	all = append(all, persistenceTests...)
	for _, tc := range all {
		t.Run(tc.name, func(t *testing.T) {
			if tc.persistent && f.Reopen == nil {
				t.Skip("the store is not persistent (Factory.Reopen is nil)")
			}
			t.Parallel()
			h := &harness{t: t, f: f, ctx: context.Background()}
			h.s = h.open()
			tc.run(t, h)
		})
	}
}

// harness holds the store a test works on.
type harness struct {
	t   *testing.T
	f   Factory
	ctx context.Context
	s   engine.Store
}

// open opens a new store and arranges for it to be closed unless the test closes it.
func (h *harness) open() engine.Store {
	h.t.Helper()
	s := h.f.Open(h.t)
	h.closeAtCleanup(s)
	return s
}

func (h *harness) closeAtCleanup(s engine.Store) {
	h.t.Cleanup(func() {
		if s == h.s {
			if err := s.Close(); err != nil {
				h.t.Errorf("Close: %v", err)
			}
		}
	})
}

// fresh returns a harness for subtest t with a new store of its own.
func (h *harness) fresh(t *testing.T) *harness {
	sub := &harness{t: t, f: h.f, ctx: h.ctx}
	sub.s = sub.open()
	return sub
}

// on returns a view of h for subtest t, on the same store.
func (h *harness) on(t *testing.T) *harness {
	view := *h
	view.t = t
	return &view
}

// reopen closes the store and opens its data again.
func (h *harness) reopen() {
	h.t.Helper()
	old := h.s
	h.s = nil
	if err := old.Close(); err != nil {
		h.t.Fatalf("Close before reopening: %v", err)
	}
	h.s = h.f.Reopen(h.t, old)
	h.closeAtCleanup(h.s)
}

// now is the suite's "current time". Every test passes times explicitly.
var now = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

const idleTimeout = 30 * time.Minute

// newAccount returns an account named name with the given roles.
func newAccount(name string, roles ...string) *engine.Account {
	return &engine.Account{
		Username:           name,
		Description:        "account " + name,
		Roles:              roles,
		PasswordHash:       "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		LockoutAfter:       5,
		LockoutWaitMinutes: 15,
		CreatedAt:          now.Add(-24 * time.Hour),
	}
}

// newSession returns a temporary session of username from 192.0.2.1, created a minute ago
// and last used at now, with a 30-minute idle timeout.
func newSession(username string) *engine.Session {
	var h engine.TokenHash
	_, _ = rand.Read(h[:])
	return &engine.Session{
		ID:        rand.Text(),
		TokenHash: h,
		Username:  username,
		Origin:    engine.OriginCreateSession,
		Settings: engine.SessionSettings{
			DefaultAPI:                   "db",
			DefaultDebug:                 "max",
			DefaultDatabaseName:          "ctreeSQL",
			DefaultOwnerName:             "admin",
			DefaultBinaryFormat:          "hex",
			DefaultResponseOptions:       engine.ResponseOptions{BinaryFormat: "hex", DataFormat: "objects", NumberFormat: "number"},
			DefaultRetentionPolicy:       "autoPurge",
			DefaultRetentionUnit:         "week",
			DefaultRetentionPeriod:       4,
			IdleConnectionTimeoutSeconds: int64(idleTimeout / time.Second),
			IdleCursorTimeoutSeconds:     600,
		},
		CreatedAt:      now.Add(-time.Minute),
		LastAccessedAt: now,
		LastActiveAt:   now,
		ClientAddress:  "192.0.2.1",
	}
}

// createAccounts stores accounts or fails the test.
func (h *harness) createAccounts(accounts ...*engine.Account) {
	h.t.Helper()
	for _, a := range accounts {
		if err := h.s.CreateAccount(h.ctx, a); err != nil {
			h.t.Fatalf("CreateAccount(%q): %v", a.Username, err)
		}
	}
}

// insert stores sessions without caps or fails the test.
func (h *harness) insert(sessions ...*engine.Session) {
	h.t.Helper()
	for _, s := range sessions {
		if err := h.s.InsertSession(h.ctx, s, engine.Caps{}, now); err != nil {
			h.t.Fatalf("InsertSession(%s): %v", s.ID, err)
		}
	}
}

// wantSession checks that the session with want's id is live at at and equal to want.
func (h *harness) wantSession(want *engine.Session, at time.Time) {
	h.t.Helper()
	got, err := h.s.SessionByID(h.ctx, want.ID, at)
	if err != nil {
		h.t.Fatalf("SessionByID(%s) at %v: %v", want.ID, at, err)
	}
	checkSession(h.t, "SessionByID", got, want)
	got, err = h.s.SessionByTokenHash(h.ctx, want.TokenHash, at)
	if err != nil {
		h.t.Fatalf("SessionByTokenHash(%s) at %v: %v", want.ID, at, err)
	}
	checkSession(h.t, "SessionByTokenHash", got, want)
}

// wantNoSession checks that no lookup finds the session with that id and token hash at at.
func (h *harness) wantNoSession(s *engine.Session, at time.Time) {
	h.t.Helper()
	if got, err := h.s.SessionByID(h.ctx, s.ID, at); !errors.Is(err, engine.ErrSessionNotFound) {
		h.t.Errorf("SessionByID(%s) at %v = %v, %v; want ErrSessionNotFound", s.ID, at, got, err)
	}
	if got, err := h.s.SessionByTokenHash(h.ctx, s.TokenHash, at); !errors.Is(err, engine.ErrSessionNotFound) {
		h.t.Errorf("SessionByTokenHash(%s) at %v = %v, %v; want ErrSessionNotFound", s.ID, at, got, err)
	}
	for _, users := range [][]string{nil, {s.UserKey()}} {
		list, err := h.s.ListSessions(h.ctx, users, at)
		if err != nil {
			h.t.Fatalf("ListSessions(%q): %v", users, err)
		}
		if slices.ContainsFunc(list, func(l *engine.Session) bool { return l.ID == s.ID }) {
			h.t.Errorf("ListSessions(%q) at %v lists %s", users, at, s.ID)
		}
	}
}

// wantAccount checks that the account with want's key equals want.
func (h *harness) wantAccount(want *engine.Account) {
	h.t.Helper()
	got, err := h.s.GetAccount(h.ctx, want.Key())
	if err != nil {
		h.t.Fatalf("GetAccount(%q): %v", want.Key(), err)
	}
	checkAccount(h.t, "GetAccount", got, want)
}

// wantPreference checks GetPreference(userKey, label).
func (h *harness) wantPreference(userKey, label, want string, wantOK bool) {
	h.t.Helper()
	got, ok, err := h.s.GetPreference(h.ctx, userKey, label)
	if err != nil || got != want || ok != wantOK {
		h.t.Errorf("GetPreference(%q, %q) = %q, %v, %v; want %q, %v, nil", userKey, label, got, ok, err, want, wantOK)
	}
}

// sessionIDs returns the ids of sessions, in order.
func sessionIDs(sessions []*engine.Session) []string {
	out := make([]string, len(sessions))
	for i, s := range sessions {
		out[i] = s.ID
	}
	return out
}

// accountKeys returns the keys of accounts, in order.
func accountKeys(accounts []*engine.Account) []string {
	out := make([]string, len(accounts))
	for i, a := range accounts {
		out[i] = a.Key()
	}
	return out
}

// checkSession reports got != want, comparing times as instants.
func checkSession(t *testing.T, what string, got, want *engine.Session) {
	t.Helper()
	g, w := comparableSession(got), comparableSession(want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s returned\n\t%+v\nwant\n\t%+v", what, g, w)
	}
}

// checkAccount reports got != want, comparing times as instants and nil roles as empty.
func checkAccount(t *testing.T, what string, got, want *engine.Account) {
	t.Helper()
	g, w := comparableAccount(got), comparableAccount(want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s returned\n\t%+v\nwant\n\t%+v", what, g, w)
	}
}

func comparableSession(s *engine.Session) engine.Session {
	c := *s
	for _, tp := range []*time.Time{&c.LifetimeEnd, &c.CreatedAt, &c.LastAccessedAt, &c.LastActiveAt} {
		*tp = instant(*tp)
	}
	return c
}

func comparableAccount(a *engine.Account) engine.Account {
	c := *a.Clone()
	if len(c.Roles) == 0 {
		c.Roles = nil
	}
	for _, tp := range []*time.Time{&c.LockedUntil, &c.CreatedAt, &c.LastLoginAt, &c.PasswordChangedAt} {
		*tp = instant(*tp)
	}
	return c
}

// instant drops what time.Time carries besides the instant: location and monotonic clock.
func instant(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Round(0).UTC()
}

// limitOf returns the *engine.LimitError in err, or nil.
func limitOf(err error) *engine.LimitError {
	var le *engine.LimitError
	if errors.As(err, &le) {
		return le
	}
	return nil
}

// untilDone calls check until done is closed, and once more after: a last check of what
// the changes left.
func untilDone(done <-chan struct{}, check func()) {
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		check()
	}
}

// parallel runs fn(i) for i in [0, n) on n goroutines released together, and returns the
// errors by i.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return errs
}

// fillAll sets every field of the struct v points to, recursively, to a distinct non-zero
// value, so that a field a store forgets to keep shows up in a comparison. Times are whole
// seconds after now.
func fillAll(v any) {
	n := 0
	var fill func(reflect.Value)
	fill = func(f reflect.Value) {
		n++
		switch f.Kind() {
		case reflect.Struct:
			if f.Type() == reflect.TypeFor[time.Time]() {
				f.Set(reflect.ValueOf(now.Add(time.Duration(n) * time.Second)))
				return
			}
			for i := range f.NumField() {
				fill(f.Field(i))
			}
		case reflect.String:
			f.SetString(fmt.Sprintf("value-%d", n))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f.SetInt(int64(n))
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(uint64(n))
		case reflect.Array:
			for i := range f.Len() {
				fill(f.Index(i))
			}
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 2, 2))
			for i := range f.Len() {
				fill(f.Index(i))
			}
		default:
			panic(fmt.Sprintf("storetest: fillAll cannot fill a %s; teach it", f.Type()))
		}
	}
	fill(reflect.ValueOf(v).Elem())
}

// fullAccount returns an account with every field set.
func fullAccount(name string) *engine.Account {
	a := new(engine.Account)
	fillAll(a)
	a.Username = name
	a.Roles = []string{engine.RoleAdmin, "auditor"}
	return a
}

// fullSession returns a permanent session of username with every field set.
func fullSession(username string) *engine.Session {
	s := new(engine.Session)
	fillAll(s)
	s.ID = rand.Text()
	_, _ = rand.Read(s.TokenHash[:])
	s.Username = username
	s.Permanent = true // every clock is set; only a permanent session is sure to stay live
	return s
}
