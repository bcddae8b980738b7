package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/redisstore/redistest"
	"github.com/sessiond/sessiond/internal/syncbuf"
)

// These tests run several Stores ("nodes") on one Redis and one key prefix, as several
// sessiond processes would.

var (
	ctx     = context.Background()
	testNow = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
)

const testIdle = 30 * time.Minute

// nodes opens n stores sharing srv and one fresh prefix.
func nodes(t *testing.T, srv *redistest.Server, n int, opts ...func(*Options)) []*Store {
	t.Helper()
	prefix := freshPrefix("nodes")
	out := make([]*Store, n)
	for i := range out {
		out[i] = openStore(t, srv, prefix, opts...)
	}
	return out
}

func newAccount(name string, roles ...string) *engine.Account {
	return &engine.Account{Username: name, Roles: roles, PasswordHash: "hash", LockoutAfter: 5, LockoutWaitMinutes: 15, CreatedAt: testNow}
}

// newSession returns a temporary session of user, last used at testNow, idle timeout 30 min.
func newSession(user string) *engine.Session {
	var h engine.TokenHash
	rand.Read(h[:])
	return &engine.Session{
		ID: "ses_" + rand.Text(), TokenHash: h, Username: user, Origin: engine.OriginCreateSession,
		Settings:  engine.SessionSettings{IdleConnectionTimeoutSeconds: int64(testIdle / time.Second)},
		CreatedAt: testNow, LastAccessedAt: testNow, LastActiveAt: testNow, ClientAddress: "192.0.2.1",
	}
}

func mustCreate(t *testing.T, s *Store, accounts ...*engine.Account) {
	t.Helper()
	for _, a := range accounts {
		if err := s.CreateAccount(ctx, a); err != nil {
			t.Fatalf("CreateAccount(%s): %v", a.Username, err)
		}
	}
}

func mustInsert(t *testing.T, s *Store, sessions ...*engine.Session) {
	t.Helper()
	for _, sess := range sessions {
		if err := s.InsertSession(ctx, sess, engine.Caps{}, testNow); err != nil {
			t.Fatalf("InsertSession: %v", err)
		}
	}
}

// found reports whether s finds sess by token and by id at at, failing on other errors.
func found(t *testing.T, s *Store, sess *engine.Session, at time.Time) bool {
	t.Helper()
	byToken, errToken := s.SessionByTokenHash(ctx, sess.TokenHash, at)
	byID, errID := s.SessionByID(ctx, sess.ID, at)
	for _, err := range []error{errToken, errID} {
		if err != nil && !errors.Is(err, engine.ErrSessionNotFound) {
			t.Fatalf("lookup of %s: %v", sess.ID, err)
		}
	}
	if (errToken == nil) != (errID == nil) {
		t.Fatalf("lookup of %s by token (%v) and by id (%v) disagree", sess.ID, errToken, errID)
	}
	if errToken == nil && (byToken.ID != sess.ID || byID.ID != sess.ID) {
		t.Fatalf("lookup of %s returned %s and %s", sess.ID, byToken.ID, byID.ID)
	}
	return errToken == nil
}

// A session inserted on one node is found on the others; deleted on a third, it is gone
// everywhere at once, and so are the sessions of an account deleted on another node.
func TestRedisNodesShareSessions(t *testing.T) {
	srv := redistest.Start(t)
	n := nodes(t, srv, 3)
	a, b, c := n[0], n[1], n[2]
	mustCreate(t, a, newAccount("admin", engine.RoleAdmin), newAccount("alice"))
	first, second, kept := newSession("alice"), newSession("alice"), newSession("admin")
	mustInsert(t, a, first, second, kept)
	for i, node := range n {
		for _, s := range []*engine.Session{first, second, kept} {
			if !found(t, node, s, testNow) {
				t.Errorf("node %d does not find session %s inserted on node 0", i, s.ID)
			}
		}
		list, err := node.ListSessions(ctx, []string{"alice"}, testNow)
		if err != nil || len(list) != 2 {
			t.Errorf("node %d lists %d sessions of alice, %v; want 2", i, len(list), err)
		}
	}
	if got, err := c.DeleteSessions(ctx, []string{first.ID}, testNow); err != nil || got != 1 {
		t.Fatalf("DeleteSessions on node 2 = %d, %v; want 1, nil", got, err)
	}
	for i, node := range []*Store{a, b} {
		if found(t, node, first, testNow) {
			t.Errorf("node %d still finds the session deleted on node 2", i)
		}
	}
	if _, err := c.DeleteAccounts(ctx, []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	for i, node := range []*Store{a, b} {
		if found(t, node, second, testNow) {
			t.Errorf("node %d still finds a session of the account deleted on node 2", i)
		}
		if !found(t, node, kept, testNow) {
			t.Errorf("node %d lost another account's session", i)
		}
	}
}

// An update on one node that changes a session's token and client address is seen on the
// others at once: the old token is refused, the new one works, and the per-address cap
// counts the session under its new address.
func TestRedisNodesUpdateMovesIndexes(t *testing.T) {
	srv := redistest.Start(t)
	n := nodes(t, srv, 2)
	a, b := n[0], n[1]
	mustCreate(t, a, newAccount("u"))
	s := newSession("u")
	mustInsert(t, a, s)
	var newHash engine.TokenHash
	rand.Read(newHash[:])
	updated, err := a.UpdateSession(ctx, s.ID, testNow, func(sess *engine.Session) error {
		sess.TokenHash = newHash
		sess.ClientAddress = "203.0.113.9"
		sess.Settings.Description = "moved"
		return nil
	})
	if err != nil || updated.TokenHash != newHash || updated.Settings.Description != "moved" {
		t.Fatalf("UpdateSession = %+v, %v", updated, err)
	}
	if _, err := b.SessionByTokenHash(ctx, s.TokenHash, testNow); !errors.Is(err, engine.ErrSessionNotFound) {
		t.Errorf("the old token after the update: %v; want ErrSessionNotFound", err)
	}
	got, err := b.SessionByTokenHash(ctx, newHash, testNow)
	if err != nil || got.ID != s.ID || got.ClientAddress != "203.0.113.9" {
		t.Errorf("the new token on the other node: %+v, %v", got, err)
	}
	capped := engine.Caps{MaxSessionsPerAddress: 1}
	other := newSession("u")
	other.ClientAddress = "192.0.2.1" // the session's old address is free again
	if err := b.InsertSession(ctx, other, capped, testNow); err != nil {
		t.Errorf("insert at the old address: %v", err)
	}
	third := newSession("u")
	third.ClientAddress = "203.0.113.9"
	var le *engine.LimitError
	if err := b.InsertSession(ctx, third, capped, testNow); !errors.As(err, &le) || le.Limit != engine.LimitMaxSessionsPerAddress {
		t.Errorf("insert at the new address, cap 1: %v; want the per-address LimitError", err)
	}
}

// Each cap is exact across nodes: 60 inserts spread over 3 nodes, cap 10, exactly 10 stored.
func TestRedisNodesCapsExact(t *testing.T) {
	srv := redistest.Start(t)
	const inserts, max = 60, 10
	for _, tc := range []struct {
		limit string
		caps  engine.Caps
		user  func(i int) string
		addr  func(i int) string
	}{
		{engine.LimitMaxSessions, engine.Caps{MaxSessions: max}, func(i int) string { return fmt.Sprintf("u%d", i%4) }, func(i int) string { return fmt.Sprintf("198.51.100.%d", i) }},
		{engine.LimitMaxSessionsPerAddress, engine.Caps{MaxSessionsPerAddress: max}, func(i int) string { return fmt.Sprintf("u%d", i%4) }, func(int) string { return "198.51.100.7" }},
		{engine.LimitMaxSessionsPerUser, engine.Caps{MaxSessionsPerUser: max}, func(int) string { return "u0" }, func(i int) string { return fmt.Sprintf("198.51.100.%d", i) }},
	} {
		t.Run(tc.limit, func(t *testing.T) {
			n := nodes(t, srv, 3)
			for i := range 4 {
				mustCreate(t, n[0], newAccount(fmt.Sprintf("u%d", i)))
			}
			sessions := make([]*engine.Session, inserts)
			for i := range sessions {
				sessions[i] = newSession(tc.user(i))
				sessions[i].ClientAddress = tc.addr(i)
			}
			errs := make([]error, inserts)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range inserts {
				wg.Go(func() {
					<-start
					errs[i] = n[i%3].InsertSession(ctx, sessions[i], tc.caps, testNow)
				})
			}
			close(start)
			wg.Wait()
			ok := 0
			for i, err := range errs {
				var le *engine.LimitError
				switch {
				case err == nil:
					ok++
				case errors.As(err, &le) && le.Limit == tc.limit && le.Max == max:
				default:
					t.Errorf("insert %d: %v; want nil or a LimitError for %s", i, err, tc.limit)
				}
			}
			if ok != max {
				t.Errorf("%d inserts succeeded across 3 nodes; want exactly %d", ok, max)
			}
			stored := 0
			for _, s := range sessions {
				if found(t, n[1], s, testNow) {
					stored++
				}
			}
			if stored != max {
				t.Errorf("%d sessions stored; want %d", stored, max)
			}
		})
	}
}

// A use recorded by Touch on one node is seen there at once, on the others once it is
// written (by Flush or the background writer), and keeps the session alive everywhere.
// Times never move back, whichever node writes last.
func TestRedisNodesTouchKeepsSessionsAlive(t *testing.T) {
	srv := redistest.Start(t)
	n := nodes(t, srv, 2, func(o *Options) { o.FlushInterval = -1 })
	a, b := n[0], n[1]
	mustCreate(t, a, newAccount("u"))
	s := newSession("u")
	mustInsert(t, a, s)
	later := testNow.Add(40 * time.Minute) // past the idle timeout unless used
	if err := a.Touch(ctx, s.ID, testNow.Add(20*time.Minute), true); err != nil {
		t.Fatal(err)
	}
	if !found(t, a, s, later) {
		t.Error("the node that recorded a use does not see it")
	}
	if found(t, b, s, later) {
		t.Error("another node sees a use that was not written yet")
	}
	if err := b.Touch(ctx, s.ID, testNow.Add(10*time.Minute), true); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil { // an older use, written last
		t.Fatal(err)
	}
	for i, node := range n {
		got, err := node.SessionByID(ctx, s.ID, later)
		if err != nil {
			t.Fatalf("node %d: the session used at +20m is gone at +40m: %v", i, err)
		}
		if want := testNow.Add(20 * time.Minute); !got.LastAccessedAt.Equal(want) || !got.LastActiveAt.Equal(want) {
			t.Errorf("node %d: last use %v / %v; want %v (never backwards)", i, got.LastAccessedAt, got.LastActiveAt, want)
		}
	}

	// The background writer does the same on its own.
	c := openStore(t, srv, a.keys.prefix, func(o *Options) { o.FlushInterval = 20 * time.Millisecond })
	if err := c.Touch(ctx, s.ID, testNow.Add(45*time.Minute), false); err != nil {
		t.Fatal(err)
	}
	// Polled by id alone: found's two lookups would disagree when the write lands between them.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := b.SessionByID(ctx, s.ID, testNow.Add(70*time.Minute))
		if err == nil {
			break
		}
		if !errors.Is(err, engine.ErrSessionNotFound) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("a use recorded on a node with FlushInterval 20ms is not seen elsewhere after 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !found(t, b, s, testNow.Add(70*time.Minute)) {
		t.Error("the session is found by id but not by token")
	}
}

// Of several nodes creating the same account at once exactly one succeeds (engine.Bootstrap
// relies on it), and concurrent read-modify-write updates on several nodes lose nothing.
func TestRedisNodesAccountsAtomic(t *testing.T) {
	srv := redistest.Start(t)
	n := nodes(t, srv, 3)
	var created, exists, other sync.Map
	var wg sync.WaitGroup
	for i := range 15 {
		wg.Go(func() {
			err := n[i%3].CreateAccount(ctx, newAccount("admin", engine.RoleAdmin))
			switch {
			case err == nil:
				created.Store(i, true)
			case errors.Is(err, engine.ErrAccountExists):
				exists.Store(i, true)
			default:
				other.Store(i, err)
			}
		})
	}
	wg.Wait()
	count := func(m *sync.Map) (k int) { m.Range(func(any, any) bool { k++; return true }); return k }
	if count(&created) != 1 || count(&exists) != 14 || count(&other) != 0 {
		t.Errorf("15 concurrent CreateAccount: %d created, %d ErrAccountExists, %d other errors; want 1, 14, 0",
			count(&created), count(&exists), count(&other))
	}

	const perWorker = 5
	for i := range 12 {
		wg.Go(func() {
			for range perWorker {
				if _, err := n[i%3].UpdateAccount(ctx, "admin", func(a *engine.Account) error {
					a.FailedAttempts++
					return nil
				}); err != nil {
					t.Errorf("UpdateAccount: %v", err)
				}
			}
		})
	}
	wg.Wait()
	a, err := n[2].GetAccount(ctx, "admin")
	if err != nil || a.FailedAttempts != 12*perWorker {
		t.Errorf("after %d concurrent increments on 3 nodes: %d, %v", 12*perWorker, a.FailedAttempts, err)
	}

	// The last admin cannot be removed by two nodes removing one admin each.
	mustCreate(t, n[0], newAccount("second", engine.RoleAdmin))
	errs := make([]error, 2)
	wg.Go(func() { _, errs[0] = n[1].DeleteAccounts(ctx, []string{"admin"}) })
	wg.Go(func() {
		_, errs[1] = n[2].UpdateAccount(ctx, "second", func(a *engine.Account) error { a.Roles = nil; return nil })
	})
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs...), engine.ErrLastAdmin) {
		t.Errorf("deleting one admin and demoting the other on two nodes: %v; want exactly one ErrLastAdmin", errs)
	}
}

// When Redis goes away, calls fail fast with engine.ErrUnavailable and Touch keeps working in
// memory; when it comes back (restarted on its append-only file), every node recovers by
// itself with nothing acknowledged lost, and the uses recorded meanwhile are written.
func TestRedisNodesSurviveRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	n := nodes(t, srv, 2, func(o *Options) { o.FlushInterval = 20 * time.Millisecond })
	a, b := n[0], n[1]
	mustCreate(t, a, newAccount("u"))
	if err := a.SetPreference(ctx, "u", "theme", "dark", 10); err != nil {
		t.Fatal(err)
	}
	s := newSession("u")
	mustInsert(t, a, s)

	srv.Kill()
	for i, node := range n {
		began := time.Now()
		_, err := node.SessionByTokenHash(ctx, s.TokenHash, testNow)
		if !errors.Is(err, engine.ErrUnavailable) {
			t.Errorf("node %d: lookup with Redis down: %v; want engine.ErrUnavailable", i, err)
		}
		if err := node.InsertSession(ctx, newSession("u"), engine.Caps{}, testNow); !errors.Is(err, engine.ErrUnavailable) {
			t.Errorf("node %d: insert with Redis down: %v; want engine.ErrUnavailable", i, err)
		}
		if took := time.Since(began); took > 5*time.Second {
			t.Errorf("node %d: two calls with Redis down took %v; want them to fail fast", i, took)
		}
	}
	if err := a.Touch(ctx, s.ID, testNow.Add(20*time.Minute), true); err != nil {
		t.Errorf("Touch with Redis down: %v; want nil (it only records in memory)", err)
	}
	if err := a.Flush(ctx); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("Flush with Redis down: %v; want engine.ErrUnavailable", err)
	}

	srv.Restart()
	later := testNow.Add(40 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := b.SessionByID(ctx, s.ID, later) // alive at +40m only with the use at +20m
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after Redis came back, node 1 does not see the session kept alive on node 0: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, node := range n {
		if v, ok, err := node.GetPreference(ctx, "u", "theme"); err != nil || !ok || v != "dark" {
			t.Errorf("node %d: preference after the restart = %q, %v, %v", i, v, ok, err)
		}
		if err := node.InsertSession(ctx, newSession("u"), engine.Caps{MaxSessions: 100}, later); err != nil {
			t.Errorf("node %d: insert after the restart: %v", i, err)
		}
	}
}

// Open warns when Redis does not sync every write, and when it cannot tell.
func TestRedisPersistenceWarnings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		durable bool
		want    string
	}{
		{"always", nil, true, "syncs every write"},
		{"evicting", []string{"--maxmemory-policy", "volatile-lru"}, false, "may evict keys"},
		{"everysec", []string{"--appendfsync", "everysec"}, false, "weaker than sessiond's promise"},
		{"no AOF", []string{"--appendonly", "no"}, false, "weaker than sessiond's promise"},
		{"CONFIG disabled", []string{"--rename-command", "CONFIG", ""}, false, "cannot read the Redis persistence settings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, tc.args...)
			var logs syncbuf.Buffer
			s := openStore(t, srv, freshPrefix("warn"), func(o *Options) {
				o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			if !strings.Contains(logs.String(), tc.want) {
				t.Errorf("Open logged %q; want a line with %q", logs.String(), tc.want)
			}
			list, err := s.Persistence(ctx)
			if durable := err == nil && len(list) == 1 && list[0].Durable(); durable != tc.durable {
				t.Errorf("Persistence() = %+v, %v; durable %v, want %v", list, err, durable, tc.durable)
			}
		})
	}
}

// Keys carry the prefix and one hash tag per user, and nothing is left behind: after every
// account is deleted and sessions are purged, the prefix owns no key. Record keys expire
// (TTL) an hour after the session, permanent ones never.
func TestRedisKeysAndTTLs(t *testing.T) {
	srv := redistest.Start(t)
	prefix := freshPrefix("keys")
	s := openStore(t, srv, prefix)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	odd := "we}ird%user"
	mustCreate(t, s, newAccount("plain"), newAccount(odd), newAccount("weird"))
	temporary, permanent, expiring := newSession(odd), newSession("plain"), newSession("plain")
	permanent.Permanent = true
	expiring.LifetimeEnd = testNow.Add(time.Minute)
	mustInsert(t, s, temporary, permanent, expiring)
	if err := s.SetPreference(ctx, odd, "l", "v", 10); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListAccounts(ctx, []string{"we"})
	if err != nil || len(list) != 2 || list[0].Username != "weird" || list[1].Username != odd {
		t.Errorf("ListAccounts(we) = %v, %v; want weird and %s, in that order", accountNames(list), err, odd)
	}

	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	userTag := prefix + "{u:we%7Dird%25user}:"
	for _, want := range []string{userTag + "a", userTag + "x", userTag + "p", userTag + "s:" + temporary.ID} {
		if !slices.Contains(keys, want) {
			t.Errorf("no key %q among %q", want, keys)
		}
	}
	wantTTL := time.Until(testNow.Add(testIdle + TTLMargin))
	if ttl := rdb.PTTL(ctx, userTag+"s:"+temporary.ID).Val(); ttl < wantTTL-time.Minute || ttl > wantTTL+time.Minute {
		t.Errorf("TTL of a session record: %v; want about %v", ttl, wantTTL)
	}
	if ttl := rdb.PTTL(ctx, s.keys.token(permanent.TokenHash)).Val(); ttl != -1 {
		t.Errorf("TTL of a permanent session's token key: %v; want none (-1)", ttl)
	}

	if n, err := s.PurgeExpired(ctx, testNow.Add(2*time.Minute)); err != nil || n != 1 {
		t.Errorf("PurgeExpired = %d, %v; want 1", n, err)
	}
	if _, err := s.DeleteAccounts(ctx, []string{"plain", odd, "weird"}); err != nil {
		t.Fatal(err)
	}
	if left, _ := rdb.Keys(ctx, prefix+"*").Result(); !slices.Equal(left, []string{s.keys.marker()}) {
		t.Errorf("keys left after deleting everything: %q; want the store's marker alone", left)
	}
}

// A delete of more sessions than one script takes (purgeBatch) removes them all in batches,
// counting each live session once, a repeated id and an unknown one included.
func TestRedisDeleteManySessions(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv, freshPrefix("many"))
	mustCreate(t, s, newAccount("u"))
	const n = 2*purgeBatch + 500
	ids := make([]string, 0, n+2)
	for range n {
		x := newSession("u")
		mustInsert(t, s, x)
		ids = append(ids, x.ID)
	}
	ids = append(ids, ids[0], "ses_unknown")
	if live, err := s.DeleteSessions(ctx, ids, testNow); err != nil || live != n {
		t.Fatalf("DeleteSessions = %d, %v; want %d", live, err, n)
	}
	if list, err := s.ListSessions(ctx, nil, testNow); err != nil || len(list) != 0 {
		t.Errorf("ListSessions after = %d sessions, %v; want none", len(list), err)
	}
}

// scriptRuns counts the scripts Redis has run since it started.
func scriptRuns(t *testing.T, s *Store) int {
	t.Helper()
	info, err := s.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	for _, line := range strings.Split(info, "\n") {
		var calls int
		if name, stats, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && (name == "cmdstat_evalsha" || name == "cmdstat_eval") {
			if _, err := fmt.Sscanf(stats, "calls=%d", &calls); err != nil {
				t.Fatalf("commandstats line %q: %v", line, err)
			}
			runs += calls
		}
	}
	return runs
}

// Dropping an account with more sessions than one script takes (purgeBatch) removes them in
// several scripts, an index entry whose record has gone included, and leaves other accounts'
// sessions alone; the last admin's account is refused before any of its sessions go.
func TestRedisDeleteAccountOfManySessions(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv, freshPrefix("dropmany"))
	mustCreate(t, s, newAccount("admin", "admin"), newAccount("big"), newAccount("other"))
	const n = 2*purgeBatch + 500
	for range n {
		mustInsert(t, s, newSession("big"))
	}
	orphan := newSession("big")
	mustInsert(t, s, orphan)
	if err := s.rdb.Del(ctx, s.keys.session("big", orphan.ID)).Err(); err != nil {
		t.Fatal(err)
	}
	kept := newSession("other")
	mustInsert(t, s, kept)
	adminSessions := make([]*engine.Session, purgeBatch+1)
	for i := range adminSessions {
		adminSessions[i] = newSession("admin")
		mustInsert(t, s, adminSessions[i])
	}

	if _, err := s.DeleteAccounts(ctx, []string{"admin"}); !errors.Is(err, engine.ErrLastAdmin) {
		t.Fatalf("DeleteAccounts(last admin) = %v; want ErrLastAdmin", err)
	}
	if list, err := s.ListSessions(ctx, []string{"admin"}, testNow); err != nil || len(list) != len(adminSessions) {
		t.Errorf("the last admin's sessions after the refusal: %d, %v; want %d", len(list), err, len(adminSessions))
	}

	before := scriptRuns(t, s)
	removed, err := s.DeleteAccounts(ctx, []string{"big"})
	if err != nil || !slices.Equal(removed, []string{"big"}) {
		t.Fatalf("DeleteAccounts(big) = %q, %v; want [big]", removed, err)
	}
	if runs := scriptRuns(t, s) - before; runs < 3 {
		t.Errorf("dropping an account of %d sessions ran %d scripts; want one a %d sessions, at least 3", n+1, runs, purgeBatch)
	}
	if list, err := s.ListSessions(ctx, []string{"big"}, testNow); err != nil || len(list) != 0 {
		t.Errorf("the dropped account's sessions: %d, %v; want none", len(list), err)
	}
	if left, err := s.rdb.Exists(ctx, s.keys.userSessions("big"), s.keys.account("big")).Result(); err != nil || left != 0 {
		t.Errorf("the dropped account's keys: %d left, %v", left, err)
	}
	if !found(t, s, kept, testNow) {
		t.Error("another account's session went with the dropped account")
	}
}

// A user's and an address's index of sessions expire with their longest-lived entry (never
// while a permanent session is in them), so entries whose records Redis dropped at their TTL
// do not stay behind when no node purges. Times are the wall clock's: Redis applies the TTLs.
func TestRedisIndexesExpire(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, srv, freshPrefix("indexes"))
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	mustCreate(t, s, newAccount("old"), newAccount("live"))
	wall := time.Now()
	session := func(user string, lastUse time.Time, addr string) *engine.Session {
		x := newSession(user)
		x.CreatedAt, x.LastAccessedAt, x.LastActiveAt, x.ClientAddress = lastUse, lastUse, lastUse, addr
		return x
	}
	// wantTTL checks a key's TTL: want -2 for no key, -1 for none, else within a minute.
	wantTTL := func(step, key string, want time.Duration) {
		t.Helper()
		got := rdb.PTTL(ctx, key).Val()
		if want < 0 && got != want || want >= 0 && (got < want-time.Minute || got > want+time.Minute) {
			t.Errorf("%s: TTL of %s = %v; want %v", step, key, got, want)
		}
	}
	const noKey, noTTL = time.Duration(-2), time.Duration(-1)
	oldX, liveX := s.keys.userSessions("old"), s.keys.userSessions("live")
	addrA, addrB := s.keys.address("192.0.2.7"), s.keys.address("192.0.2.8")

	// Ended long enough ago that Redis drops its keys at once: its indexes go with them.
	mustInsert(t, s, session("old", wall.Add(-2*time.Hour), "192.0.2.7"))
	wantTTL("ended", oldX, noKey)
	wantTTL("ended", addrA, noKey)

	live := session("live", wall, "192.0.2.8")
	mustInsert(t, s, live)
	wantTTL("live", liveX, testIdle+TTLMargin)
	wantTTL("live", addrB, testIdle+TTLMargin)
	if err := s.Touch(ctx, live.ID, wall.Add(10*time.Minute), false); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wantTTL("touched", liveX, 10*time.Minute+testIdle+TTLMargin)
	wantTTL("touched", addrB, 10*time.Minute+testIdle+TTLMargin)

	permanent := session("old", wall, "192.0.2.8")
	permanent.Permanent = true
	mustInsert(t, s, permanent)
	wantTTL("permanent", oldX, noTTL)
	wantTTL("permanent", addrB, noTTL)
	// Its entry stays in the permanent session's index after Redis drops its keys.
	mustInsert(t, s, session("old", wall.Add(-2*time.Hour), "192.0.2.7"))
	wantTTL("ended beside a permanent", oldX, noTTL)
	wantTTL("ended beside a permanent", addrA, noKey)
	if _, err := s.UpdateSession(ctx, permanent.ID, wall, func(x *engine.Session) error {
		x.ClientAddress = "192.0.2.7"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantTTL("permanent moved", addrB, 10*time.Minute+testIdle+TTLMargin)
	wantTTL("permanent moved", addrA, noTTL)
	if n, err := s.DeleteSessions(ctx, []string{permanent.ID}, wall); err != nil || n != 1 {
		t.Fatalf("DeleteSessions = %d, %v; want 1", n, err)
	}
	wantTTL("permanent deleted", oldX, noKey)
	wantTTL("permanent deleted", addrA, noKey)
}

// Cluster mode wraps a prefix without a hash tag in one, so that all keys share a slot.
func TestClusterKeyspace(t *testing.T) {
	for _, tc := range []struct {
		prefix  string
		cluster bool
		want    string
	}{
		{"sessiond:", false, "sessiond:{u:alice}:a"},
		{"sessiond:", true, "{sessiond:}{u:alice}:a"},
		{"{app}:", true, "{app}:{u:alice}:a"},
		{"", true, "{sessiond}{u:alice}:a"},
		{"a{}b:", true, "{a{}b:}{u:alice}:a"},
	} {
		k := newKeyspace(tc.prefix, tc.cluster)
		if got := k.account("alice"); got != tc.want {
			t.Errorf("account key with prefix %q, cluster %v = %q; want %q", tc.prefix, tc.cluster, got, tc.want)
		}
		if tc.cluster {
			slot := redisHashSlot(k.account("alice"))
			for _, key := range []string{k.accounts(), k.token(engine.TokenHash{1}), k.session("bob", "x"), k.address("10.0.0.1")} {
				if redisHashSlot(key) != slot {
					t.Errorf("prefix %q: %q and %q are in different slots", tc.prefix, key, k.account("alice"))
				}
			}
		}
	}
}

func accountNames(list []*engine.Account) []string {
	var out []string
	for _, a := range list {
		out = append(out, a.Username)
	}
	return out
}

// redisHashSlot is Redis Cluster's key slot: CRC16 (XMODEM) of the key, or of its hash tag,
// modulo 16384.
func redisHashSlot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
