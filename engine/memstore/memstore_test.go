package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/memstore"
	"github.com/sessiond/sessiond/engine/storetest"
)

// TestConformance runs the store conformance suite against a plain in-memory store.
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Factory{
		Open: func(t *testing.T) engine.Store { return memstore.New(memstore.Options{}) },
	})
}

// The suite passes with a journal, which also tracks touched sessions.
func TestConformanceWithJournal(t *testing.T) {
	storetest.Run(t, storetest.Factory{
		Open: func(t *testing.T) engine.Store { return memstore.New(memstore.Options{Journal: &recorder{}}) },
	})
}

var (
	ctx     = context.Background()
	now     = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	later   = now.Add(time.Hour) // after every session's idle timeout
	errDisk = errors.New("disk on fire")
)

// recorder is a Journal that keeps the batches it accepts, or fails with fail once it has
// accepted failAfter more.
type recorder struct {
	mu        sync.Mutex
	batches   []memstore.Batch
	fail      error
	failAfter int
}

func (r *recorder) Commit(b *memstore.Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if r.failAfter == 0 {
			return r.fail
		}
		r.failAfter--
	}
	r.batches = append(r.batches, *b)
	return nil
}

// take returns the batches accepted since the last call.
func (r *recorder) take() []memstore.Batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.batches
	r.batches = nil
	return b
}

var sessionCount int

// newSession returns a session of user from address, last used at now with a 30-minute
// idle timeout.
func newSession(user, address string) *engine.Session {
	sessionCount++
	s := &engine.Session{
		ID:             fmt.Sprintf("session-%d", sessionCount),
		Username:       user,
		Origin:         engine.OriginCreateSession,
		CreatedAt:      now,
		LastAccessedAt: now,
		LastActiveAt:   now,
		ClientAddress:  address,
	}
	s.TokenHash[0], s.TokenHash[1] = byte(sessionCount), byte(sessionCount>>8)
	s.Settings.IdleConnectionTimeoutSeconds = 1800
	return s
}

// fixture is a store with an admin, a user, two sessions of the user and a preference.
type fixture struct {
	store              *memstore.Store
	journal            *recorder
	first, second, own *engine.Session
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{journal: &recorder{}}
	f.store = memstore.New(memstore.Options{Journal: f.journal})
	f.first, f.second, f.own = newSession("user", "192.0.2.1"), newSession("user", "192.0.2.1"), newSession("admin", "")
	must(t, f.store.CreateAccount(ctx, &engine.Account{Username: "admin", Roles: []string{engine.RoleAdmin}}))
	must(t, f.store.CreateAccount(ctx, &engine.Account{Username: "user"}))
	for _, s := range []*engine.Session{f.first, f.second, f.own} {
		must(t, f.store.InsertSession(ctx, s, engine.Caps{}, now))
	}
	must(t, f.store.SetPreference(ctx, "user", "theme", "dark", 10))
	f.journal.take()
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dump is everything observable in a fixture's store.
type dump struct {
	Accounts []*engine.Account
	Sessions []*engine.Session
	Theme    string
}

func (f *fixture) dump(t *testing.T) dump {
	t.Helper()
	accounts, err := f.store.ListAccounts(ctx, nil)
	must(t, err)
	sessions, err := f.store.ListSessions(ctx, nil, now)
	must(t, err)
	theme, _, err := f.store.GetPreference(ctx, "user", "theme")
	must(t, err)
	return dump{accounts, sessions, theme}
}

// When the journal refuses a change, the error is returned and memory is unchanged.
func TestJournalFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(f *fixture) error
	}{
		{"CreateAccount", func(f *fixture) error {
			return f.store.CreateAccount(ctx, &engine.Account{Username: "new"})
		}},
		{"UpdateAccount", func(f *fixture) error {
			_, err := f.store.UpdateAccount(ctx, "user", func(a *engine.Account) error { a.Description = "x"; return nil })
			return err
		}},
		{"DeleteAccounts", func(f *fixture) error { _, err := f.store.DeleteAccounts(ctx, []string{"user"}); return err }},
		{"InsertSession", func(f *fixture) error {
			return f.store.InsertSession(ctx, newSession("user", "192.0.2.9"), engine.Caps{}, now)
		}},
		{"InsertSession removing expired sessions", func(f *fixture) error {
			s := newSession("user", "192.0.2.1")
			s.CreatedAt, s.LastAccessedAt, s.LastActiveAt = later, later, later
			return f.store.InsertSession(ctx, s, engine.Caps{MaxSessionsPerUser: 2}, later)
		}},
		{"UpdateSession", func(f *fixture) error {
			_, err := f.store.UpdateSession(ctx, f.first.ID, now, func(s *engine.Session) error { s.Settings.Description = "x"; return nil })
			return err
		}},
		{"DeleteSessions", func(f *fixture) error { _, err := f.store.DeleteSessions(ctx, []string{f.first.ID}, now); return err }},
		{"PurgeExpired", func(f *fixture) error { _, err := f.store.PurgeExpired(ctx, later); return err }},
		{"SetPreference", func(f *fixture) error { return f.store.SetPreference(ctx, "user", "theme", "light", 10) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			before := f.dump(t)
			f.journal.fail = errDisk
			if err := tc.run(f); !errors.Is(err, errDisk) {
				t.Fatalf("got %v; want the journal's error", err)
			}
			if after := f.dump(t); !reflect.DeepEqual(after, before) {
				t.Errorf("memory changed after a refused change:\n%+v\nwas\n%+v", after, before)
			}
			// The store still works once the journal does.
			f.journal.fail = nil
			if err := tc.run(f); err != nil {
				t.Errorf("after the journal recovered: %v", err)
			}
		})
	}
}

// The journal receives full records and every key a change removes, cascades included.
func TestJournalBatches(t *testing.T) {
	f := newFixture(t)
	must(t, f.store.CreateAccount(ctx, &engine.Account{Username: "New", Description: "d"}))
	b := f.journal.take()
	if len(b) != 1 || len(b[0].Accounts) != 1 || b[0].Accounts[0].Description != "d" || b[0].Accounts[0].Username != "New" {
		t.Errorf("CreateAccount batches: %+v", b)
	}

	s := newSession("user", "192.0.2.1")
	s.CreatedAt, s.LastAccessedAt, s.LastActiveAt = later, later, later
	must(t, f.store.InsertSession(ctx, s, engine.Caps{MaxSessionsPerUser: 2}, later))
	b = f.journal.take()
	if len(b) != 1 || len(b[0].Sessions) != 1 || b[0].Sessions[0].ID != s.ID {
		t.Fatalf("InsertSession batches: %+v", b)
	}
	// Both of the user's sessions had expired and go; the admin's, expired too, is left to
	// PurgeExpired: a user's cap takes only the user's.
	deleted := slices.Sorted(slices.Values(b[0].DeletedSessions))
	if want := slices.Sorted(slices.Values([]string{f.first.ID, f.second.ID})); !slices.Equal(deleted, want) {
		t.Errorf("InsertSession at a cap deleted %q; want %q", deleted, want)
	}

	must(t, f.store.SetPreference(ctx, "user", "lang", "en", 10))
	f.journal.take()
	removed, err := f.store.DeleteAccounts(ctx, []string{"user"})
	must(t, err)
	b = f.journal.take()
	if len(b) != 1 || !slices.Equal(removed, []string{"user"}) || !slices.Equal(b[0].DeletedAccounts, []string{"user"}) ||
		!slices.Equal(b[0].DeletedSessions, []string{s.ID}) || len(b[0].DeletedPreferences) != 2 {
		t.Errorf("DeleteAccounts batches: %+v", b)
	}

	n, err := f.store.DeleteSessions(ctx, []string{"unknown"}, now)
	if err != nil || n != 0 || len(f.journal.take()) != 0 {
		t.Errorf("DeleteSessions of nothing wrote a batch or failed: %d, %v", n, err)
	}
}

// DrainTouched lists each touched live session once with its latest times, after what the
// list it appends to holds.
func TestDrainTouched(t *testing.T) {
	f := newFixture(t)
	at1, at2 := now.Add(time.Minute), now.Add(2*time.Minute)
	must(t, f.store.Touch(ctx, f.first.ID, at1, true))
	must(t, f.store.Touch(ctx, f.first.ID, at2, false))
	must(t, f.store.Touch(ctx, f.second.ID, at1, false))
	must(t, f.store.Touch(ctx, f.own.ID, at1, false))
	must(t, f.store.Touch(ctx, f.own.ID, now, true)) // no change after the first
	must(t, f.store.Touch(ctx, "unknown", at1, true))
	if b := f.journal.take(); len(b) != 0 {
		t.Errorf("Touch wrote batches: %+v", b)
	}
	if _, err := f.store.DeleteSessions(ctx, []string{f.second.ID}, now); err != nil {
		t.Fatal(err)
	}
	kept := memstore.Touched{ID: "kept", LastAccessedAt: now}
	got := f.store.DrainTouched([]memstore.Touched{kept})
	if len(got) == 0 || got[0] != kept {
		t.Fatalf("DrainTouched did not append: %+v", got)
	}
	got = got[1:]
	slices.SortFunc(got, func(a, b memstore.Touched) int { return a.LastAccessedAt.Compare(b.LastAccessedAt) })
	want := []memstore.Touched{
		{ID: f.own.ID, LastAccessedAt: at1, LastActiveAt: now},
		{ID: f.first.ID, LastAccessedAt: at2, LastActiveAt: at1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DrainTouched = %+v; want %+v", got, want)
	}
	if again := f.store.DrainTouched(nil); len(again) != 0 {
		t.Errorf("second DrainTouched = %+v; want nothing", again)
	}
	must(t, f.store.Close())
	plain := memstore.New(memstore.Options{})
	must(t, plain.CreateAccount(ctx, &engine.Account{Username: "user"}))
	s := newSession("user", "")
	must(t, plain.InsertSession(ctx, s, engine.Caps{}, now))
	must(t, plain.Touch(ctx, s.ID, at1, true))
	if got := plain.DrainTouched(nil); len(got) != 0 {
		t.Errorf("a store without a journal tracked touches: %+v", got)
	}
}

// TestDrainTouchedInChunks checks a drain longer than one hold of the lock: 10,000 touched
// sessions (DrainTouched lists 4,096 at a time) are each listed once, with their times.
func TestDrainTouchedInChunks(t *testing.T) {
	s := memstore.New(memstore.Options{Journal: &recorder{}})
	const n = 10_000
	storetest.Populate(t, s, n, now)
	want := make(map[string]time.Time, n)
	for i := range n {
		id, at := benchSession(i).ID, now.Add(time.Duration(i+1)*time.Millisecond)
		must(t, s.Touch(ctx, id, at, false))
		want[id] = at
	}
	got := s.DrainTouched(nil)
	for _, tc := range got {
		if at, ok := want[tc.ID]; !ok || !tc.LastAccessedAt.Equal(at) {
			t.Fatalf("listed %s at %v, want once at %v", tc.ID, tc.LastAccessedAt, at)
		}
		delete(want, tc.ID)
	}
	if len(got) != n || len(want) != 0 {
		t.Fatalf("listed %d of %d touched sessions", len(got), n)
	}
	if again := s.DrainTouched(nil); len(again) != 0 {
		t.Errorf("second drain listed %d", len(again))
	}
}

// TestListAllWhileChanging lists every session, which goes through the store a chunk at a
// time, while sessions are created and deleted: each session that lives throughout is
// listed exactly once, and no session twice.
func TestListAllWhileChanging(t *testing.T) {
	s := memstore.New(memstore.Options{})
	const stable = 10_000 // several chunks
	storetest.Populate(t, s, stable, now)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := stable; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			churn := storetest.BenchSession(i, now)
			must(t, s.InsertSession(ctx, churn, engine.Caps{}, now))
			if _, err := s.DeleteSessions(ctx, []string{churn.ID}, now); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 5 {
		list, err := s.ListSessions(ctx, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		seen := make(map[string]bool, len(list))
		for _, sess := range list {
			if seen[sess.ID] {
				t.Fatalf("%s listed twice", sess.ID)
			}
			seen[sess.ID] = true
		}
		for i := range stable {
			if id := storetest.BenchSession(i, now).ID; !seen[id] {
				t.Fatalf("%s, live throughout, not listed (%d listed)", id, len(list))
			}
		}
	}
	close(stop)
	wg.Wait()
}

// TestDeleteSessionsInChunks checks a delete longer than one hold of the lock: 10,000
// sessions, named with a repeat and an unknown id, are removed in journal batches of at most
// 4,096, each deletion journaled once, and the live ones counted.
func TestDeleteSessionsInChunks(t *testing.T) {
	j := &recorder{}
	s := memstore.New(memstore.Options{Journal: j})
	const n = 10_000
	storetest.Populate(t, s, n, now)
	j.take()
	ids := make([]string, 0, n+2)
	for i := range n {
		ids = append(ids, storetest.BenchSession(i, now).ID)
	}
	ids = append(ids, ids[0], "no-such-session")
	live, err := s.DeleteSessions(ctx, ids, now)
	if err != nil || live != n {
		t.Fatalf("DeleteSessions = %d, %v; want %d", live, err, n)
	}
	deleted := map[string]bool{}
	batches := j.take()
	for _, b := range batches {
		if len(b.DeletedSessions) > 4096 {
			t.Errorf("a batch of %d deletions; want at most 4,096 a hold", len(b.DeletedSessions))
		}
		for _, id := range b.DeletedSessions {
			if deleted[id] {
				t.Fatalf("%s deleted twice", id)
			}
			deleted[id] = true
		}
	}
	if len(deleted) != n || len(batches) < 3 {
		t.Errorf("%d deletions journaled in %d batches; want %d in at least 3", len(deleted), len(batches), n)
	}
	if got := s.SessionCount(); got != 0 {
		t.Errorf("%d sessions left", got)
	}
}

// TestDeleteSessionsFailingPartway checks that a delete whose journal fails after its first
// chunk counts the sessions of that chunk, keeps the rest, and returns the error.
func TestDeleteSessionsFailingPartway(t *testing.T) {
	j := &recorder{}
	s := memstore.New(memstore.Options{Journal: j})
	const n = 10_000
	storetest.Populate(t, s, n, now)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = storetest.BenchSession(i, now).ID
	}
	j.fail, j.failAfter = errDisk, 1
	live, err := s.DeleteSessions(ctx, ids, now)
	if !errors.Is(err, errDisk) || live == 0 || live >= n {
		t.Fatalf("DeleteSessions = %d, %v; want the first chunk and the journal's error", live, err)
	}
	if got := s.SessionCount(); got != n-live {
		t.Errorf("%d sessions left, want %d", got, n-live)
	}
}

// TestDeleteAccountInChunks checks dropping accounts with more sessions than one hold of the
// lock removes: every session and the accounts go, each deletion journaled once, in batches
// of at most 4,096 sessions, the accounts in the last; and that a last admin among them
// stops it before any session goes.
func TestDeleteAccountInChunks(t *testing.T) {
	j := &recorder{}
	s := memstore.New(memstore.Options{Journal: j})
	storetest.Populate(t, s, 0, now) // the accounts
	must(t, s.CreateAccount(ctx, &engine.Account{Username: "root", Roles: []string{engine.RoleAdmin}}))
	const n = 10_000
	for _, user := range []string{"user0", "user1", "root"} {
		for range n {
			must(t, s.InsertSession(ctx, newSession(user, ""), engine.Caps{}, now))
		}
	}
	j.take()
	if _, err := s.DeleteAccounts(ctx, []string{"user0", "root"}); !errors.Is(err, engine.ErrLastAdmin) {
		t.Fatalf("dropping the last admin: %v; want ErrLastAdmin", err)
	}
	if b := j.take(); len(b) != 0 || s.SessionCount() != 3*n {
		t.Fatalf("dropping the last admin wrote %d batches, left %d sessions; want none and %d", len(b), s.SessionCount(), 3*n)
	}
	removed, err := s.DeleteAccounts(ctx, []string{"user1", "user0", "user1"})
	if err != nil || !slices.Equal(removed, []string{"user0", "user1"}) {
		t.Fatalf("DeleteAccounts = %q, %v; want user0 and user1", removed, err)
	}
	batches := j.take()
	deleted := map[string]bool{}
	for i, b := range batches {
		if len(b.DeletedSessions) > 4096 || len(b.DeletedAccounts) > 0 && i != len(batches)-1 {
			t.Errorf("batch %d of %d: %d sessions, accounts %q", i, len(batches), len(b.DeletedSessions), b.DeletedAccounts)
		}
		for _, id := range b.DeletedSessions {
			if deleted[id] {
				t.Fatalf("%s deleted twice", id)
			}
			deleted[id] = true
		}
	}
	if last := batches[len(batches)-1]; !slices.Equal(last.DeletedAccounts, []string{"user0", "user1"}) || len(deleted) != 2*n {
		t.Errorf("accounts %q deleted last, %d sessions in all; want user0 and user1, %d", last.DeletedAccounts, len(deleted), 2*n)
	}
	if got := s.SessionCount(); got != n {
		t.Errorf("%d sessions left; want root's %d", got, n)
	}
}

// TestDeleteAccountsManyMedium checks that accounts each under one hold's 4,096 sessions but
// over it together are dropped in batches of at most 4,096 sessions too.
func TestDeleteAccountsManyMedium(t *testing.T) {
	j := &recorder{}
	s := memstore.New(memstore.Options{Journal: j})
	storetest.Populate(t, s, 0, now) // the accounts
	users := []string{"user0", "user1", "user2"}
	for _, user := range users {
		for range 3_000 {
			must(t, s.InsertSession(ctx, newSession(user, ""), engine.Caps{}, now))
		}
	}
	j.take()
	if removed, err := s.DeleteAccounts(ctx, users); err != nil || len(removed) != 3 {
		t.Fatalf("DeleteAccounts = %q, %v", removed, err)
	}
	deleted := 0
	for _, b := range j.take() {
		if len(b.DeletedSessions) > 4096 {
			t.Errorf("a batch of %d sessions; want at most 4,096", len(b.DeletedSessions))
		}
		deleted += len(b.DeletedSessions)
	}
	if deleted != 9_000 || s.SessionCount() != 0 {
		t.Errorf("%d deletions journaled, %d sessions left; want 9,000 and none", deleted, s.SessionCount())
	}
}

// TestPurgeExpiredInChunks checks a purge longer than one hold of the lock: 10,000 sessions
// expired together (PurgeExpired removes 4,096 at a time) are all removed and counted, each
// deletion journaled once, and a live session stays.
func TestPurgeExpiredInChunks(t *testing.T) {
	j := &recorder{}
	s := memstore.New(memstore.Options{Journal: j})
	const n = 10_000
	storetest.Populate(t, s, n, now)
	later := now.Add(24 * 365 * time.Hour) // past every session's idle timeout
	live := newSession(storetest.BenchSession(0, now).Username, "")
	live.CreatedAt, live.LastAccessedAt, live.LastActiveAt = later, later, later
	must(t, s.InsertSession(ctx, live, engine.Caps{}, later))
	j.take()
	removed, err := s.PurgeExpired(ctx, later)
	if err != nil || removed != n {
		t.Fatalf("PurgeExpired = %d, %v; want %d", removed, err, n)
	}
	deleted := map[string]bool{}
	for _, b := range j.take() {
		for _, id := range b.DeletedSessions {
			if deleted[id] {
				t.Fatalf("%s deleted twice", id)
			}
			deleted[id] = true
		}
	}
	if len(deleted) != n {
		t.Errorf("%d deletions journaled, want %d", len(deleted), n)
	}
	if list, _ := s.ListSessions(ctx, nil, later); len(list) != 1 || list[0].ID != live.ID {
		t.Errorf("left %d sessions, want the live one", len(list))
	}
}

// TestPurgeExpiredFailingPartway checks that a purge whose journal fails after its first
// chunk reports the chunk it removed with the error, and that the next purge removes the rest.
func TestPurgeExpiredFailingPartway(t *testing.T) {
	j := &recorder{}
	s := memstore.New(memstore.Options{Journal: j})
	const n = 10_000 // three chunks
	storetest.Populate(t, s, n, now)
	later := now.Add(24 * 365 * time.Hour) // past every session's idle timeout
	j.fail, j.failAfter = errDisk, 1
	removed, err := s.PurgeExpired(ctx, later)
	if !errors.Is(err, errDisk) || removed == 0 || removed >= n {
		t.Fatalf("PurgeExpired = %d, %v; want the first chunk and the journal's error", removed, err)
	}
	if got := s.SessionCount(); got != n-removed {
		t.Errorf("%d sessions left, want %d", got, n-removed)
	}
	j.fail = nil
	if rest, err := s.PurgeExpired(ctx, later); err != nil || rest != n-removed {
		t.Errorf("the next PurgeExpired = %d, %v; want the other %d", rest, err, n-removed)
	}
}

// TestInsertAtCapTakesOnlyWhatItNeeds checks that a new session at a cap removes only the
// expired sessions it needs gone, not every expired session in the store (10,000 here, a
// million after a mass expiry, under the lock every token check takes): at MaxSessions the
// first one due, at a user's or an address's cap that group's expired sessions. The live
// ones stay, and PurgeExpired removes the rest.
func TestInsertAtCapTakesOnlyWhatItNeeds(t *testing.T) {
	const n = 10_000                       // user0's are 0, 1000, ..., 9000, all from 10.0.0.0
	later := now.Add(24 * 365 * time.Hour) // past every session's idle timeout
	for _, tc := range []struct {
		name          string
		caps          engine.Caps
		user, address string
		removed       int
	}{
		{"MaxSessions", engine.Caps{MaxSessions: n + 1}, "user1", "192.0.2.1", 1},
		{"MaxSessionsPerUser", engine.Caps{MaxSessionsPerUser: 11}, "user0", "192.0.2.1", 10},
		{"MaxSessionsPerAddress", engine.Caps{MaxSessionsPerAddress: 11}, "user1", "10.0.0.0", 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := &recorder{}
			s := memstore.New(memstore.Options{Journal: j})
			storetest.Populate(t, s, n, now)
			live := newSession("user0", "10.0.0.0") // in every group at its cap, and live
			live.CreatedAt, live.LastAccessedAt, live.LastActiveAt = later, later, later
			must(t, s.InsertSession(ctx, live, engine.Caps{}, later))
			j.take()
			sess := newSession(tc.user, tc.address)
			sess.CreatedAt, sess.LastAccessedAt, sess.LastActiveAt = later, later, later
			must(t, s.InsertSession(ctx, sess, tc.caps, later))
			var deleted []string
			for _, b := range j.take() {
				deleted = append(deleted, b.DeletedSessions...)
			}
			if len(deleted) != tc.removed {
				t.Fatalf("the insert removed %d sessions, want %d", len(deleted), tc.removed)
			}
			for _, id := range deleted {
				if id == live.ID {
					t.Fatal("the insert removed a live session")
				}
			}
			if tc.removed == 10 {
				slices.Sort(deleted)
				var want []string
				for i := 0; i < n; i += storetest.BenchUsers {
					want = append(want, storetest.BenchSession(i, now).ID)
				}
				if !slices.Equal(deleted, want) {
					t.Errorf("removed %q, want user0's from 10.0.0.0: %q", deleted, want)
				}
			}
			if purged, err := s.PurgeExpired(ctx, later); err != nil || purged != n-tc.removed {
				t.Errorf("PurgeExpired = %d, %v; want the other %d", purged, err, n-tc.removed)
			}
			if list, _ := s.ListSessions(ctx, nil, later); len(list) != 2 {
				t.Errorf("left %d sessions, want the two live ones", len(list))
			}
		})
	}
}

// TestSessionNeedsAnID checks that a session without an id is refused, inserted or restored:
// an empty id marks a free slot, which a listing of every session passes over.
func TestSessionNeedsAnID(t *testing.T) {
	s := memstore.New(memstore.Options{})
	must(t, s.CreateAccount(ctx, &engine.Account{Username: "user"}))
	sess := newSession("user", "")
	sess.ID = ""
	if err := s.InsertSession(ctx, sess, engine.Caps{}, now); err == nil {
		t.Error("InsertSession took a session without an id")
	}
	var refused error
	must(t, s.RestoreSessions([]engine.Session{*sess}, func(_ *engine.Session, err error) { refused = err }))
	if refused == nil {
		t.Error("RestoreSessions took a session without an id")
	}
	if n := s.SessionCount(); n != 0 {
		t.Errorf("%d sessions stored", n)
	}
}

// Restored records bypass the journal and count; orphans and duplicates are refused.
func TestRestore(t *testing.T) {
	j := &recorder{}
	s := memstore.New(memstore.Options{Journal: j})
	orphan := newSession("user", "192.0.2.1")
	restore := func(sessions ...*engine.Session) []error {
		var batch []engine.Session
		for _, sess := range sessions {
			batch = append(batch, *sess)
		}
		var errs []error
		must(t, s.RestoreSessions(batch, func(_ *engine.Session, err error) { errs = append(errs, err) }))
		return errs
	}
	if errs := restore(orphan); len(errs) != 1 || !errors.Is(errs[0], engine.ErrAccountNotFound) {
		t.Errorf("RestoreSessions before the account: %v; want ErrAccountNotFound", errs)
	}
	if err := s.RestorePreference("user", "l", "v"); !errors.Is(err, engine.ErrAccountNotFound) {
		t.Errorf("RestorePreference before its account: %v; want ErrAccountNotFound", err)
	}
	must(t, s.RestoreAccount(&engine.Account{Username: "User", Roles: []string{engine.RoleAdmin}}))
	if err := s.RestoreAccount(&engine.Account{Username: "user"}); !errors.Is(err, engine.ErrAccountExists) {
		t.Errorf("RestoreAccount twice: %v; want ErrAccountExists", err)
	}
	duplicate := newSession("user", "")
	duplicate.ID = orphan.ID
	if errs := restore(orphan, duplicate); len(errs) != 1 || errors.Is(errs[0], engine.ErrAccountNotFound) {
		t.Errorf("RestoreSessions of a session and a duplicate id: %v; want one error for the duplicate", errs)
	}
	must(t, s.RestorePreference("user", "l", "v"))
	if b := j.take(); len(b) != 0 {
		t.Errorf("restoring wrote batches: %+v", b)
	}
	if _, err := s.SessionByTokenHash(ctx, orphan.TokenHash, now); err != nil {
		t.Errorf("restored session: %v", err)
	}
	if v, ok, _ := s.GetPreference(ctx, "user", "l"); !ok || v != "v" {
		t.Errorf("restored preference: %q, %v", v, ok)
	}
	err := s.InsertSession(ctx, newSession("user", ""), engine.Caps{MaxSessionsPerUser: 1}, now)
	if le := (*engine.LimitError)(nil); !errors.As(err, &le) {
		t.Errorf("a restored session does not count against the cap: %v", err)
	}
	if _, err := s.DeleteAccounts(ctx, []string{"user"}); !errors.Is(err, engine.ErrLastAdmin) {
		t.Errorf("a restored admin is not counted: %v", err)
	}
}

// TestRestoreTouched checks that load's last-use times reach their sessions whatever the
// order of the list: slot order (a snapshot's), reversed, with an older time, duplicates,
// unknown and empty ids, and ids of deleted sessions, whose slots are free.
func TestRestoreTouched(t *testing.T) {
	s := memstore.New(memstore.Options{})
	must(t, s.RestoreAccount(&engine.Account{Username: "user"}))
	const n = 10_000 // more than 8,192: the lookups are split over two goroutines
	sessions := make([]engine.Session, n)
	for i := range sessions {
		sessions[i] = *newSession("user", "")
	}
	must(t, s.RestoreSessions(sessions, func(sess *engine.Session, err error) { t.Errorf("%s: %v", sess.ID, err) }))
	deleted := map[string]bool{}
	var ids []string
	for i := 5; i < n; i += 10 {
		ids = append(ids, sessions[i].ID)
		deleted[sessions[i].ID] = true
	}
	if _, err := s.DeleteSessions(ctx, ids, now); err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{}
	var touched []memstore.Touched
	add := func(id string, at time.Time) {
		touched = append(touched, memstore.Touched{ID: id, LastAccessedAt: at, LastActiveAt: at})
		if at.After(want[id]) {
			want[id] = at
		}
	}
	second := func(k int) time.Time { return now.Add(time.Duration(k) * time.Second) }
	for i := range sessions {
		add(sessions[i].ID, second(i+1))
		if i == 4 || i == 14 { // the next slot is free
			add("", second(3*n))
			add("no-such-session", second(3*n))
		}
	}
	for i := n - 1; i >= 0; i -= 3 {
		add(sessions[i].ID, second(n+i+1))
	}
	add(sessions[1].ID, now.Add(-time.Hour))
	must(t, s.RestoreTouched(touched))
	for _, sess := range sessions {
		got, err := s.SessionByID(ctx, sess.ID, now)
		switch {
		case deleted[sess.ID]:
			if !errors.Is(err, engine.ErrSessionNotFound) {
				t.Errorf("deleted %s: %v", sess.ID, err)
			}
		case err != nil:
			t.Errorf("%s: %v", sess.ID, err)
		case !got.LastAccessedAt.Equal(want[sess.ID]) || !got.LastActiveAt.Equal(want[sess.ID]):
			t.Errorf("%s: last used %v / %v, want %v", sess.ID, got.LastAccessedAt, got.LastActiveAt, want[sess.ID])
		}
	}
	// New sessions take the free slots as they were, untouched by the empty ids.
	for range len(ids) {
		sess := newSession("user", "")
		must(t, s.InsertSession(ctx, sess, engine.Caps{}, now))
		if got, err := s.SessionByID(ctx, sess.ID, now); err != nil || !got.LastAccessedAt.Equal(now) {
			t.Errorf("new session %s: %v, %v", sess.ID, got, err)
		}
	}
}

// Sessions without a client address are not held to MaxSessionsPerAddress.
func TestEmptyAddressNotCapped(t *testing.T) {
	s := memstore.New(memstore.Options{})
	must(t, s.CreateAccount(ctx, &engine.Account{Username: "user"}))
	for range 5 {
		must(t, s.InsertSession(ctx, newSession("user", ""), engine.Caps{MaxSessionsPerAddress: 1}, now))
	}
}

// A second session with a used id or token hash is refused.
func TestInsertDuplicate(t *testing.T) {
	s := memstore.New(memstore.Options{})
	must(t, s.CreateAccount(ctx, &engine.Account{Username: "user"}))
	first := newSession("user", "")
	must(t, s.InsertSession(ctx, first, engine.Caps{}, now))
	sameID, sameToken := newSession("user", ""), newSession("user", "")
	sameID.ID = first.ID
	sameToken.TokenHash = first.TokenHash
	for _, dup := range []*engine.Session{sameID, sameToken} {
		if err := s.InsertSession(ctx, dup, engine.Caps{}, now); err == nil {
			t.Errorf("duplicate session %+v accepted", dup)
		}
	}
	list, _ := s.ListSessions(ctx, nil, now)
	if len(list) != 1 {
		t.Errorf("%d sessions stored; want 1", len(list))
	}
}

// UpdateSession re-indexes token hash and address, and refuses id or account changes.
func TestUpdateSessionIndexes(t *testing.T) {
	f := newFixture(t)
	var newHash engine.TokenHash
	newHash[31] = 1
	_, err := f.store.UpdateSession(ctx, f.first.ID, now, func(s *engine.Session) error {
		s.TokenHash = newHash
		s.ClientAddress = "198.51.100.1"
		return nil
	})
	must(t, err)
	if _, err := f.store.SessionByTokenHash(ctx, f.first.TokenHash, now); !errors.Is(err, engine.ErrSessionNotFound) {
		t.Errorf("old token hash still finds the session: %v", err)
	}
	if got, err := f.store.SessionByTokenHash(ctx, newHash, now); err != nil || got.ClientAddress != "198.51.100.1" {
		t.Errorf("new token hash: %+v, %v", got, err)
	}
	// 192.0.2.1 now has one session, 198.51.100.1 one.
	must(t, f.store.InsertSession(ctx, newSession("admin", "192.0.2.1"), engine.Caps{MaxSessionsPerAddress: 2}, now))
	err = f.store.InsertSession(ctx, newSession("admin", "198.51.100.1"), engine.Caps{MaxSessionsPerAddress: 1}, now)
	if le := (*engine.LimitError)(nil); !errors.As(err, &le) || le.Limit != engine.LimitMaxSessionsPerAddress {
		t.Errorf("the new address is not counted: %v", err)
	}
	for name, fn := range map[string]func(*engine.Session){
		"id":      func(s *engine.Session) { s.ID = "other" },
		"account": func(s *engine.Session) { s.Username = "admin" },
		"token":   func(s *engine.Session) { s.TokenHash = f.second.TokenHash },
	} {
		if _, err := f.store.UpdateSession(ctx, f.first.ID, now, func(s *engine.Session) error { fn(s); return nil }); err == nil {
			t.Errorf("UpdateSession changing the %s succeeded", name)
		}
	}
	// The username may change case: it is the same account.
	if got, err := f.store.UpdateSession(ctx, f.first.ID, now, func(s *engine.Session) error { s.Username = "USER"; return nil }); err != nil || got.Username != "USER" {
		t.Errorf("UpdateSession changing the username's case: %+v, %v", got, err)
	}
}

// UpdateAccount refuses to change the canonical username but accepts a case change.
func TestUpdateAccountRename(t *testing.T) {
	f := newFixture(t)
	if _, err := f.store.UpdateAccount(ctx, "user", func(a *engine.Account) error { a.Username = "other"; return nil }); err == nil {
		t.Error("UpdateAccount renaming the account succeeded")
	}
	got, err := f.store.UpdateAccount(ctx, "user", func(a *engine.Account) error { a.Username = "User"; return nil })
	if err != nil || got.Username != "User" {
		t.Errorf("UpdateAccount changing case: %+v, %v", got, err)
	}
}

// Session times beyond what int64 nanoseconds hold are clamped, not wrapped.
func TestTimesOutOfRange(t *testing.T) {
	s := memstore.New(memstore.Options{})
	must(t, s.CreateAccount(ctx, &engine.Account{Username: "user"}))
	sess := newSession("user", "")
	sess.Settings.IdleConnectionTimeoutSeconds = 0
	sess.LifetimeEnd = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	must(t, s.InsertSession(ctx, sess, engine.Caps{}, now))
	got, err := s.SessionByID(ctx, sess.ID, time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatalf("a session ending in 3000 is gone in 2200: %v", err)
	}
	if got.LifetimeEnd.Year() != 2262 {
		t.Errorf("LifetimeEnd = %v; want it clamped to 2262", got.LifetimeEnd)
	}
}

// chunkWatch is a context whose Err, which a listing calls before each hold of the read
// lock, makes a change to the store and waits for it: a listing that holds the lock across
// its chunks makes that change wait past its deadline.
type chunkWatch struct {
	context.Context
	t      *testing.T
	change func() error
	calls  int
	done   int
}

func (w *chunkWatch) Err() error {
	w.calls++
	if w.calls == 1 {
		return nil // before the first hold
	}
	finished := make(chan error, 1)
	go func() { finished <- w.change() }()
	select {
	case err := <-finished:
		if err != nil {
			w.t.Error(err)
		}
		w.done++
	case <-time.After(10 * time.Second):
		w.t.Errorf("a change made before hold %d of the read lock still waits after 10 s", w.calls)
	}
	return nil
}

// distinctAccounts counts the accounts listed, failing when one comes twice.
func distinctAccounts(l []*engine.Account, err error) (int, error) {
	seen := make(map[string]bool, len(l))
	for _, a := range l {
		if seen[a.Username] {
			return 0, fmt.Errorf("account %q listed twice", a.Username)
		}
		seen[a.Username] = true
	}
	return len(l), err
}

// A listing of more than one chunk lets the write lock (which token checks take) be taken
// between its chunks, for each listing that goes through the store in chunks.
func TestListingsLetWritersInBetweenChunks(t *testing.T) {
	s := memstore.New(memstore.Options{})
	storetest.Populate(t, s, 0, now)
	const many = 5 * 1024 // five chunks
	for i := range many {
		sess := storetest.BenchSession(i, now)
		sess.Username = "user0"
		must(t, s.InsertSession(ctx, sess, engine.Caps{}, now))
		must(t, s.CreateAccount(ctx, &engine.Account{Username: fmt.Sprintf("lister%05d", i)}))
	}
	made := 0 // changes made, each of its own session or account
	insert := func() error {
		made++
		return s.InsertSession(ctx, storetest.BenchSession(many+made, now), engine.Caps{}, now)
	}
	create := func() error {
		made++
		return s.CreateAccount(ctx, &engine.Account{Username: fmt.Sprintf("new%d", made)})
	}
	tests := []struct {
		name   string
		list   func(ctx context.Context) (int, error)
		change func() error
		want   int // listed at least
	}{
		{"every session", func(ctx context.Context) (int, error) {
			l, err := s.ListSessions(ctx, nil, now)
			return len(l), err
		}, insert, many},
		{"one account's sessions", func(ctx context.Context) (int, error) {
			l, err := s.ListSessions(ctx, []string{"user0"}, now)
			return len(l), err
		}, insert, many},
		{"every account", func(ctx context.Context) (int, error) {
			l, err := s.ListAccounts(ctx, nil)
			return distinctAccounts(l, err)
		}, create, many},
		{"accounts by prefix", func(ctx context.Context) (int, error) {
			l, err := s.ListAccounts(ctx, []string{"lister"})
			return distinctAccounts(l, err)
		}, create, many},
		// Only the walk past every account to find the few that match goes in chunks here.
		{"accounts by a prefix one matches", func(ctx context.Context) (int, error) {
			l, err := s.ListAccounts(ctx, []string{"lister00042"})
			return distinctAccounts(l, err)
		}, create, 1},
	}
	for _, tt := range tests {
		w := &chunkWatch{Context: ctx, t: t, change: tt.change}
		n, err := tt.list(w)
		must(t, err)
		if n < tt.want {
			t.Errorf("%s: %d listed, want at least %d", tt.name, n, tt.want)
		}
		if w.done < 4 {
			t.Errorf("%s: %d changes made between holds of the read lock, want at least 4", tt.name, w.done)
		}
	}
}
