package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
)

var persistenceTests = []test{
	{"PersistEverything", true, testPersistEverything},
	{"PersistTouch", true, testPersistTouch},
	{"PersistLargeDelete", true, testPersistLargeDelete},
}

// state is what the persistence tests compare before and after reopening.
type state struct {
	accounts []*engine.Account
	sessions []*engine.Session
}

func (h *harness) state(at time.Time) state {
	h.t.Helper()
	accounts, err := h.s.ListAccounts(h.ctx, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	sessions, err := h.s.ListSessions(h.ctx, nil, at)
	if err != nil {
		h.t.Fatal(err)
	}
	return state{accounts, sessions}
}

func (h *harness) wantState(want state, at time.Time) {
	h.t.Helper()
	got := h.state(at)
	if len(got.accounts) != len(want.accounts) {
		h.t.Fatalf("%d accounts; want %d: %q", len(got.accounts), len(want.accounts), accountKeys(got.accounts))
	}
	for i := range got.accounts {
		checkAccount(h.t, "ListAccounts", got.accounts[i], want.accounts[i])
	}
	if len(got.sessions) != len(want.sessions) {
		h.t.Fatalf("%d sessions; want %d", len(got.sessions), len(want.sessions))
	}
	for i := range got.sessions {
		checkSession(h.t, "ListSessions", got.sessions[i], want.sessions[i])
		h.wantSession(want.sessions[i], at)
	}
}

// Everything written, updated and deleted is the same after reopening, twice.
func testPersistEverything(t *testing.T, h *harness) {
	root, user, gone := fullAccount("Root"), newAccount("user"), newAccount("gone")
	h.createAccounts(root, user, gone)
	if _, err := h.s.UpdateAccount(h.ctx, "user", func(a *engine.Account) error {
		a.Description = "updated"
		a.FailedAttempts = 2
		a.LastLoginAt = now
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	temporary, permanent, full := newSession("user"), newSession("user"), fullSession("Root")
	permanent.Permanent = true
	permanent.LastAccessedAt = now.Add(-72 * time.Hour)
	updated, deleted, purged, ofGone := newSession("Root"), newSession("user"), newSession("user"), newSession("gone")
	purged.LifetimeEnd = now.Add(time.Minute)
	h.insert(temporary, permanent, full, updated, deleted, purged, ofGone)
	if _, err := h.s.UpdateSession(h.ctx, updated.ID, now, func(s *engine.Session) error {
		s.Settings.Description = "updated"
		s.Settings.IdleConnectionTimeoutSeconds = 7200
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ user, label, value string }{
		{"user", "theme", "dark"}, {"root", "lang", "en"}, {"gone", "theme", "light"}, {"user", "theme", "light"},
	} {
		if err := h.s.SetPreference(h.ctx, p.user, p.label, p.value, 10); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.s.DeleteAccounts(h.ctx, []string{"gone"}); err != nil {
		t.Fatal(err)
	}
	if n, err := h.s.DeleteSessions(h.ctx, []string{deleted.ID}, now); err != nil || n != 1 {
		t.Fatalf("DeleteSessions = %d, %v", n, err)
	}
	if n, err := h.s.PurgeExpired(h.ctx, now.Add(2*time.Minute)); err != nil || n != 1 {
		t.Fatalf("PurgeExpired = %d, %v; want 1", n, err)
	}
	before := h.state(now)
	if len(before.accounts) != 2 || len(before.sessions) != 4 {
		t.Fatalf("before reopening: %d accounts and %d sessions; want 2 and 4", len(before.accounts), len(before.sessions))
	}

	h.reopen()
	h.wantState(before, now)
	h.wantPreference("user", "theme", "light", true)
	h.wantPreference("root", "lang", "en", true)
	h.wantPreference("gone", "theme", "", false)
	if _, err := h.s.GetAccount(h.ctx, "gone"); !errors.Is(err, engine.ErrAccountNotFound) {
		t.Errorf("deleted account after reopening: %v; want ErrAccountNotFound", err)
	}
	for _, s := range []*engine.Session{deleted, purged, ofGone} {
		h.wantNoSession(s, now) // purged would be live at now had it been kept
	}
	// The indexes the caps use are rebuilt.
	err := h.s.InsertSession(h.ctx, newSession("user"), engine.Caps{MaxSessionsPerUser: 2}, now)
	if le := limitOf(err); le == nil || le.Limit != engine.LimitMaxSessionsPerUser {
		t.Errorf("per-user cap after reopening: %v; want a *LimitError", err)
	}

	// A reopened store writes as well as a new one.
	another := newSession("user")
	h.insert(another)
	if _, err := h.s.DeleteSessions(h.ctx, []string{temporary.ID}, now); err != nil {
		t.Fatal(err)
	}
	if err := h.s.SetPreference(h.ctx, "user", "theme", "again", 10); err != nil {
		t.Fatal(err)
	}
	before = h.state(now)
	h.reopen()
	h.wantState(before, now)
	h.wantPreference("user", "theme", "again", true)
	h.wantNoSession(temporary, now)
}

// Touch times written by Flush or by Close survive reopening and keep sessions alive.
func testPersistTouch(t *testing.T, h *harness) {
	for _, flush := range []bool{true, false} {
		t.Run(fmt.Sprintf("flush=%v", flush), func(t *testing.T) {
			h := h.fresh(t)
			h.createAccounts(newAccount("u"))
			s := newSession("u")
			s.InactivitySeconds = 3600
			h.insert(s)
			if err := h.s.Touch(h.ctx, s.ID, now.Add(10*time.Minute), false); err != nil {
				t.Fatal(err)
			}
			if err := h.s.Touch(h.ctx, s.ID, now.Add(5*time.Minute), true); err != nil {
				t.Fatal(err)
			}
			if flush {
				if err := h.s.Flush(h.ctx); err != nil {
					t.Fatalf("Flush: %v", err)
				}
			}
			h.reopen()
			want := s.Clone()
			want.LastAccessedAt = now.Add(10 * time.Minute)
			want.LastActiveAt = now.Add(5 * time.Minute)
			h.wantSession(want, now.Add(39*time.Minute)) // idle timeout from +10m
			h.wantNoSession(want, now.Add(40*time.Minute))
		})
	}
}

// Deleting an account with many sessions and a large purge stay done after reopening.
func testPersistLargeDelete(t *testing.T, h *harness) {
	const n = 300
	h.createAccounts(newAccount("many"), newAccount("expiring"), newAccount("kept"))
	for range n {
		h.insert(newSession("many"))
		s := newSession("expiring")
		s.LifetimeEnd = now.Add(time.Minute)
		h.insert(s)
	}
	kept := newSession("kept")
	h.insert(kept)
	if _, err := h.s.DeleteAccounts(h.ctx, []string{"many"}); err != nil {
		t.Fatal(err)
	}
	if purged, err := h.s.PurgeExpired(h.ctx, now.Add(time.Minute)); err != nil || purged != n {
		t.Fatalf("PurgeExpired = %d, %v; want %d", purged, err, n)
	}
	h.reopen()
	list, err := h.s.ListSessions(h.ctx, nil, now)
	if err != nil || len(list) != 1 || list[0].ID != kept.ID {
		t.Fatalf("sessions after reopening: %q, %v; want only %s", sessionIDs(list), err, kept.ID)
	}
}
