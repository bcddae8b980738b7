package storetest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
)

var sessionTests = []test{
	{"SessionInsertGet", false, testSessionInsertGet},
	{"SessionAllFields", false, testSessionAllFields},
	{"SessionExpiry", false, testSessionExpiry},
	{"SessionPermanent", false, testSessionPermanent},
	{"SessionTouch", false, testSessionTouch},
	{"SessionTouchExtends", false, testSessionTouchExtends},
	{"SessionTouchExpired", false, testSessionTouchExpired},
	{"SessionTouchByTokenHash", false, testSessionTouchByTokenHash},
	{"SessionUpdate", false, testSessionUpdate},
	{"SessionUpdateFnError", false, testSessionUpdateFnError},
	{"SessionUpdateMissing", false, testSessionUpdateMissing},
	{"SessionDelete", false, testSessionDelete},
	{"SessionList", false, testSessionList},
	{"SessionListWhileChanging", false, testSessionListWhileChanging},
	{"SessionPurge", false, testSessionPurge},
	{"SessionConcurrent", false, testSessionConcurrent},
}

// Lookups return what InsertSession stored, as copies isolated from the caller's.
func testSessionInsertGet(t *testing.T, h *harness) {
	h.createAccounts(newAccount("Alice"))
	original := newSession("Alice")
	want := original.Clone()
	h.insert(original)
	original.Settings.Description = "changed after insert"
	original.LastAccessedAt = now.Add(time.Hour)
	h.wantSession(want, now)

	got, err := h.s.SessionByID(h.ctx, want.ID, now)
	if err != nil {
		t.Fatal(err)
	}
	got.Settings.DefaultAPI = "changed after get"
	h.wantSession(want, now)

	other := newSession("Alice")
	h.wantNoSession(other, now)
}

// Every field of Account and Session is kept, including fields added later.
func testSessionAllFields(t *testing.T, h *harness) {
	account := fullAccount("Every-Field")
	h.createAccounts(account)
	h.wantAccount(account)
	session := fullSession("Every-Field")
	h.insert(session)
	h.wantSession(session, now)
	list, err := h.s.ListSessions(h.ctx, nil, now)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListSessions = %q, %v; want one session", sessionIDs(list), err)
	}
	checkSession(t, "ListSessions", list[0], session)
}

// A session is invisible to every lookup from the instant its first clock runs out.
func testSessionExpiry(t *testing.T, h *harness) {
	h.createAccounts(newAccount("u"))
	for _, tc := range []struct {
		name   string
		modify func(*engine.Session)
		end    time.Time
	}{
		{"idle", func(*engine.Session) {}, now.Add(idleTimeout)},
		{"inactivity", func(s *engine.Session) {
			s.Settings.IdleConnectionTimeoutSeconds = 0
			s.InactivitySeconds = 600
			s.LastActiveAt = now.Add(-5 * time.Minute)
		}, now.Add(-5*time.Minute + 10*time.Minute + time.Minute)},
		{"lifetime", func(s *engine.Session) { s.LifetimeEnd = now.Add(10 * time.Minute) }, now.Add(10 * time.Minute)},
		{"earliest clock wins", func(s *engine.Session) {
			s.LifetimeEnd = now.Add(time.Hour)
			s.InactivitySeconds = 60
		}, now.Add(2 * time.Minute)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.on(t)
			s := newSession("u")
			tc.modify(s)
			if end, ok := s.ExpiresAt(); !ok || !end.Equal(tc.end) {
				t.Fatalf("test case is wrong: the session ends at %v, %v; the case says %v", end, ok, tc.end)
			}
			h.insert(s)
			before := tc.end.Add(-time.Nanosecond)
			h.wantSession(s, before)
			h.wantNoSession(s, tc.end)
			h.wantNoSession(s, tc.end.Add(time.Hour))
			called := false
			if _, err := h.s.UpdateSession(h.ctx, s.ID, tc.end, func(*engine.Session) error { called = true; return nil }); !errors.Is(err, engine.ErrSessionNotFound) || called {
				t.Errorf("UpdateSession of an expired session: %v (fn called: %v); want ErrSessionNotFound", err, called)
			}
			if n, err := h.s.DeleteSessions(h.ctx, []string{s.ID}, tc.end); err != nil || n != 0 {
				t.Errorf("DeleteSessions of an expired session = %d, %v; want 0, nil", n, err)
			}
			h.wantNoSession(s, before) // deleted, not merely expired
		})
	}
}

// A permanent session never expires, whatever its clocks say, is listed, and is not purged.
func testSessionPermanent(t *testing.T, h *harness) {
	h.createAccounts(newAccount("app"))
	s := newSession("app")
	s.Permanent = true
	s.Settings.IdleConnectionTimeoutSeconds = 1
	s.InactivitySeconds = 1
	s.LifetimeEnd = now.Add(time.Second)
	s.LastAccessedAt = now.Add(-24 * time.Hour)
	h.insert(s)
	later := now.AddDate(10, 0, 0)
	h.wantSession(s, later)
	if list, err := h.s.ListSessions(h.ctx, nil, later); err != nil || len(list) != 1 || list[0].ID != s.ID {
		t.Errorf("ListSessions = %q, %v; want the permanent session", sessionIDs(list), err)
	}
	if n, err := h.s.PurgeExpired(h.ctx, later); err != nil || n != 0 {
		t.Errorf("PurgeExpired = %d, %v; want 0, nil", n, err)
	}
	h.wantSession(s, later)
}

// Touch moves last-use times forward, never backward, and lookups see it at once.
func testSessionTouch(t *testing.T, h *harness) {
	h.createAccounts(newAccount("u"))
	type touch struct {
		at     time.Duration // after now
		active bool
	}
	for _, tc := range []struct {
		name                     string
		touches                  []touch
		wantAccessed, wantActive time.Duration
	}{
		{"inactive use", []touch{{time.Minute, false}}, time.Minute, 0},
		{"active use", []touch{{time.Minute, true}}, time.Minute, time.Minute},
		{"earlier use is ignored", []touch{{-time.Minute, true}}, 0, 0},
		{"later then earlier", []touch{{2 * time.Minute, true}, {time.Minute, true}}, 2 * time.Minute, 2 * time.Minute},
		{"inactive later, active earlier", []touch{{2 * time.Minute, false}, {time.Minute, true}}, 2 * time.Minute, time.Minute},
		{"same time twice", []touch{{time.Minute, true}, {time.Minute, true}}, time.Minute, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.on(t)
			s := newSession("u")
			h.insert(s)
			for _, touch := range tc.touches {
				if err := h.s.Touch(h.ctx, s.ID, now.Add(touch.at), touch.active); err != nil {
					t.Fatalf("Touch: %v", err)
				}
			}
			want := s.Clone()
			want.LastAccessedAt = now.Add(tc.wantAccessed)
			want.LastActiveAt = now.Add(tc.wantActive)
			h.wantSession(want, now.Add(3*time.Minute))
		})
	}
	if err := h.s.Touch(h.ctx, "no-such-session", now, true); err != nil {
		t.Errorf("Touch of an unknown session: %v; want nil", err)
	}
}

// Touch restarts the idle clock, and the inactivity clock only for active use.
func testSessionTouchExtends(t *testing.T, h *harness) {
	h.createAccounts(newAccount("u"))
	idle := newSession("u") // ends at now+30m unless used
	h.insert(idle)
	if err := h.s.Touch(h.ctx, idle.ID, now.Add(29*time.Minute), false); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.SessionByTokenHash(h.ctx, idle.TokenHash, now.Add(58*time.Minute)); err != nil {
		t.Errorf("idle session used at +29m is gone at +58m: %v", err)
	}
	h.wantNoSession(idle, now.Add(59*time.Minute))

	for _, active := range []bool{false, true} {
		inactive := newSession("u") // inactivity 10m + 1m grace, from now
		inactive.Settings.IdleConnectionTimeoutSeconds = 0
		inactive.InactivitySeconds = 600
		h.insert(inactive)
		if err := h.s.Touch(h.ctx, inactive.ID, now.Add(5*time.Minute), active); err != nil {
			t.Fatal(err)
		}
		_, err := h.s.SessionByID(h.ctx, inactive.ID, now.Add(12*time.Minute))
		if alive := err == nil; alive != active {
			t.Errorf("inactivity clock after Touch(active=%v) at +5m: alive at +12m = %v (%v)", active, alive, err)
		}
	}
}

// Touch cannot revive a session that has expired by the time of use, also when earlier uses
// are not yet written, and a use the session was live at counts also when it comes after a
// later one it was not: each use is checked against the session as the uses before it left
// it, before and after Flush.
func testSessionTouchExpired(t *testing.T, h *harness) {
	h.createAccounts(newAccount("u"))
	type use struct {
		at     time.Duration // after now
		active bool
	}
	const unchecked = -1
	for _, tc := range []struct {
		name  string
		setup func(*engine.Session)
		uses  []use
		gone  time.Duration // the session is gone from then on
		// At at, the session is as the uses left it: with these last-use times (unchecked
		// when at is: a store may then show a use past the session's end that revived nothing).
		at, wantAccessed, wantActive time.Duration
	}{
		{"use at the idle end", nil, []use{{idleTimeout, true}}, idleTimeout, 0, 0, 0},
		{"idle end between two uses", nil, []use{{10 * time.Minute, false}, {50 * time.Minute, true}},
			40 * time.Minute, 39 * time.Minute, 10 * time.Minute, 0},
		{"idle end under two seconds after the last use", func(s *engine.Session) { s.Settings.IdleConnectionTimeoutSeconds = 1 },
			[]use{{500 * time.Millisecond, false}, {1300 * time.Millisecond, false}, {2400 * time.Millisecond, false}},
			2300 * time.Millisecond, 2200 * time.Millisecond, 1300 * time.Millisecond, 0},
		{"a use before a later one past the idle end", nil,
			[]use{{idleTimeout + 500*time.Millisecond, true}, {idleTimeout - 200*time.Millisecond, true}},
			2*idleTimeout - 200*time.Millisecond, 2*idleTimeout - time.Second, idleTimeout - 200*time.Millisecond, idleTimeout - 200*time.Millisecond},
		{"inactivity end before an active use", inactivityOnly, []use{{5 * time.Minute, false}, {12 * time.Minute, true}},
			11 * time.Minute, 10 * time.Minute, 5 * time.Minute, 0},
		{"inactivity end under a second before an active use", inactivityOnly,
			[]use{{11*time.Minute - 500*time.Millisecond, false}, {11*time.Minute + 200*time.Millisecond, true}},
			11 * time.Minute, 11*time.Minute - 100*time.Millisecond, 11*time.Minute - 500*time.Millisecond, 0},
		{"inactivity end before an active use timed before an inactive one", inactivityOnly,
			[]use{{11*time.Minute - 500*time.Millisecond, false}, {11*time.Minute + 400*time.Millisecond, false}, {11*time.Minute + 200*time.Millisecond, true}},
			11 * time.Minute, unchecked, 0, 0},
		{"inactivity end between two active uses", inactivityOnly, []use{{5 * time.Minute, true}, {17 * time.Minute, true}},
			16 * time.Minute, 15 * time.Minute, 5 * time.Minute, 5 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.on(t)
			s := newSession("u")
			if tc.setup != nil {
				tc.setup(s)
			}
			h.insert(s)
			for _, u := range tc.uses {
				if err := h.s.Touch(h.ctx, s.ID, now.Add(u.at), u.active); err != nil {
					t.Fatalf("Touch at +%v: %v", u.at, err)
				}
			}
			want := s.Clone()
			want.LastAccessedAt = now.Add(tc.wantAccessed)
			want.LastActiveAt = now.Add(tc.wantActive)
			for _, flushed := range []bool{false, true} {
				if flushed {
					if err := h.s.Flush(h.ctx); err != nil {
						t.Fatalf("Flush: %v", err)
					}
				}
				h.wantNoSession(s, now.Add(tc.gone))
				h.wantNoSession(s, now.Add(tc.gone+time.Hour))
				if tc.at != unchecked {
					h.wantSession(want, now.Add(tc.at))
				}
			}
		})
	}
}

// inactivityOnly gives a session the NetX inactivity timeout alone: it ends 10 minutes and
// the one-minute grace after its last active use.
func inactivityOnly(s *engine.Session) {
	s.Settings.IdleConnectionTimeoutSeconds = 0
	s.InactivitySeconds = 600
}

// A store that touches by token hash (engine.TokenToucher) does what SessionByTokenHash then
// Touch do, in one step, with TouchByTokenHash and with TouchToken: the same times stored,
// the session returned as it is afterwards (TouchByTokenHash), and ErrSessionNotFound for an
// unknown or expired token, which it does not revive.
func testSessionTouchByTokenHash(t *testing.T, h *harness) {
	tt, ok := h.s.(engine.TokenToucher)
	if !ok {
		t.Skip("the store does not implement engine.TokenToucher; the engine uses SessionByTokenHash and Touch")
	}
	h.createAccounts(newAccount("u"))
	for _, via := range []struct {
		name string
		// touch returns the session TouchByTokenHash returns, or nil from TouchToken.
		touch func(h engine.TokenHash, at time.Time, active bool) (*engine.Session, error)
	}{
		{"TouchByTokenHash", func(th engine.TokenHash, at time.Time, active bool) (*engine.Session, error) {
			return tt.TouchByTokenHash(h.ctx, th, at, active)
		}},
		{"TouchToken", func(th engine.TokenHash, at time.Time, active bool) (*engine.Session, error) {
			return nil, tt.TouchToken(h.ctx, th, at, active)
		}},
	} {
		for _, tc := range []struct {
			name                     string
			at                       []time.Duration // after now
			active                   []bool
			wantAccessed, wantActive time.Duration
		}{
			{"inactive use", []time.Duration{time.Minute}, []bool{false}, time.Minute, 0},
			{"active use", []time.Duration{time.Minute}, []bool{true}, time.Minute, time.Minute},
			{"earlier use is ignored", []time.Duration{-time.Minute}, []bool{true}, 0, 0},
			{"later then earlier", []time.Duration{2 * time.Minute, time.Minute}, []bool{true, true}, 2 * time.Minute, 2 * time.Minute},
		} {
			t.Run(via.name+"/"+tc.name, func(t *testing.T) {
				h := h.on(t)
				s := newSession("u")
				h.insert(s)
				want := s.Clone()
				for i, at := range tc.at {
					got, err := via.touch(s.TokenHash, now.Add(at), tc.active[i])
					if err != nil {
						t.Fatalf("%s: %v", via.name, err)
					}
					if via.name == "TouchByTokenHash" {
						lookup, err := h.s.SessionByTokenHash(h.ctx, s.TokenHash, now.Add(at))
						if err != nil {
							t.Fatal(err)
						}
						checkSession(t, via.name, got, lookup)
					}
				}
				want.LastAccessedAt = now.Add(tc.wantAccessed)
				want.LastActiveAt = now.Add(tc.wantActive)
				h.wantSession(want, now.Add(3*time.Minute))
			})
		}
		var unknown engine.TokenHash
		unknown[0] = 1
		if _, err := via.touch(unknown, now, true); !errors.Is(err, engine.ErrSessionNotFound) {
			t.Errorf("%s of an unknown token: %v; want ErrSessionNotFound", via.name, err)
		}
		s := newSession("u")
		h.insert(s)
		if _, err := via.touch(s.TokenHash, now.Add(idleTimeout), true); !errors.Is(err, engine.ErrSessionNotFound) {
			t.Errorf("%s of an expired session: %v; want ErrSessionNotFound", via.name, err)
		}
		h.wantSession(s, now) // not revived, not changed
	}
}

// UpdateSession stores and returns what fn made of the session; new clocks apply.
func testSessionUpdate(t *testing.T, h *harness) {
	h.createAccounts(newAccount("u"))
	s := newSession("u")
	h.insert(s)
	want := s.Clone()
	want.Settings.Description = "renamed"
	want.Settings.DefaultResponseOptions.NumberFormat = "string"
	want.Settings.IdleConnectionTimeoutSeconds = 3600
	got, err := h.s.UpdateSession(h.ctx, s.ID, now, func(s *engine.Session) error {
		s.Settings.Description = want.Settings.Description
		s.Settings.DefaultResponseOptions.NumberFormat = want.Settings.DefaultResponseOptions.NumberFormat
		s.Settings.IdleConnectionTimeoutSeconds = want.Settings.IdleConnectionTimeoutSeconds
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateSession: %v", err)
	}
	checkSession(t, "UpdateSession", got, want)
	h.wantSession(want, now.Add(45*time.Minute)) // the longer idle timeout applies

	// Shortening a clock takes effect too.
	if _, err := h.s.UpdateSession(h.ctx, s.ID, now, func(s *engine.Session) error {
		s.Settings.IdleConnectionTimeoutSeconds = 60
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.wantNoSession(s, now.Add(time.Minute))
	if n, err := h.s.PurgeExpired(h.ctx, now.Add(time.Minute)); err != nil || n != 1 {
		t.Errorf("PurgeExpired after shortening the idle timeout = %d, %v; want 1, nil", n, err)
	}
}

// UpdateSession writes nothing and returns fn's error when fn fails.
func testSessionUpdateFnError(t *testing.T, h *harness) {
	h.createAccounts(newAccount("u"))
	s := newSession("u")
	h.insert(s)
	errFn := errors.New("fn refused")
	got, err := h.s.UpdateSession(h.ctx, s.ID, now, func(s *engine.Session) error {
		s.Settings.Description = "must not be stored"
		s.Settings.IdleConnectionTimeoutSeconds = 1
		return errFn
	})
	if !errors.Is(err, errFn) || got != nil {
		t.Errorf("UpdateSession with a failing fn = %v, %v; want nil, fn's error", got, err)
	}
	h.wantSession(s, now.Add(time.Minute))
}

// UpdateSession of an unknown session returns ErrSessionNotFound without calling fn.
func testSessionUpdateMissing(t *testing.T, h *harness) {
	called := false
	_, err := h.s.UpdateSession(h.ctx, "no-such-session", now, func(*engine.Session) error { called = true; return nil })
	if !errors.Is(err, engine.ErrSessionNotFound) || called {
		t.Errorf("UpdateSession of an unknown session: %v (fn called: %v); want ErrSessionNotFound", err, called)
	}
}

// DeleteSessions removes live and expired sessions but counts only live ones.
func testSessionDelete(t *testing.T, h *harness) {
	h.createAccounts(newAccount("u"))
	live, kept, expired := newSession("u"), newSession("u"), newSession("u")
	expired.LifetimeEnd = now.Add(time.Minute)
	h.insert(live, kept, expired)
	at := now.Add(2 * time.Minute)
	n, err := h.s.DeleteSessions(h.ctx, []string{live.ID, expired.ID, "no-such-session", live.ID}, at)
	if err != nil || n != 1 {
		t.Fatalf("DeleteSessions = %d, %v; want 1, nil", n, err)
	}
	h.wantNoSession(live, now)
	h.wantNoSession(expired, now) // gone, not merely expired
	h.wantSession(kept, at)
	if n, err := h.s.DeleteSessions(h.ctx, nil, at); err != nil || n != 0 {
		t.Errorf("DeleteSessions(nil) = %d, %v; want 0, nil", n, err)
	}
}

// ListSessions returns live sessions of the given accounts, by creation time then id.
func testSessionList(t *testing.T, h *harness) {
	h.createAccounts(newAccount("u1"), newAccount("U2"), newAccount("u3"), newAccount("idle"))
	sessionAt := func(user, id string, created time.Duration) *engine.Session {
		s := newSession(user)
		s.ID = id + "-" + s.ID
		s.CreatedAt = now.Add(created)
		return s
	}
	sessions := []*engine.Session{
		sessionAt("u1", "c", -3*time.Minute),
		sessionAt("U2", "b", -2*time.Minute),
		sessionAt("u1", "a", -2*time.Minute), // same creation time: sorted by id
		sessionAt("u3", "d", -time.Minute),
		sessionAt("u1", "e", -4*time.Minute),
	}
	h.insert(sessions...)
	expired := sessionAt("u1", "f", -5*time.Minute)
	expired.LifetimeEnd = now.Add(time.Second)
	h.insert(expired)
	at := now.Add(time.Minute)

	sorted := func(users ...string) []string {
		var out []*engine.Session
		for _, s := range sessions {
			if len(users) == 0 || slices.Contains(users, s.UserKey()) {
				out = append(out, s)
			}
		}
		slices.SortFunc(out, func(a, b *engine.Session) int {
			return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
		})
		return sessionIDs(out)
	}
	for _, tc := range []struct {
		users []string
		want  []string
	}{
		{nil, sorted()},
		{[]string{}, sorted()},
		{[]string{"u1"}, sorted("u1")},
		{[]string{"u2"}, sorted("u2")},
		{[]string{"u3", "u1"}, sorted("u1", "u3")},
		{[]string{"u1", "u1"}, sorted("u1")},
		{[]string{"idle"}, []string{}},
		{[]string{"nobody"}, []string{}},
	} {
		got, err := h.s.ListSessions(h.ctx, tc.users, at)
		if err != nil {
			t.Fatalf("ListSessions(%q): %v", tc.users, err)
		}
		if ids := sessionIDs(got); !slices.Equal(ids, tc.want) {
			t.Errorf("ListSessions(%q) = %q; want %q", tc.users, ids, tc.want)
		}
	}
	list, _ := h.s.ListSessions(h.ctx, []string{"u3"}, at)
	if len(list) == 1 {
		checkSession(t, "ListSessions", list[0], sessions[3])
	}
}

// A listing longer than a store's step (memstore copies 1,024 sessions a hold, redisstore
// reads 1,000 index entries a step) made while sessions are created, ended, used and
// changed lists each session live throughout it exactly once, and only the listed users'.
// The changes move sessions within the store's own order: a removal fills the hole with
// another session (memstore), a use makes a session end later and a shorter idle timeout
// earlier (redisstore's index is ordered by the end).
func testSessionListWhileChanging(t *testing.T, h *harness) {
	h.createAccounts(newAccount("u"), newAccount("v"))
	const each = 1_500
	var stable, doomed []*engine.Session
	for range each {
		a, b := newSession("u"), newSession("u")
		h.insert(a, b)
		stable, doomed = append(stable, a), append(doomed, b)
	}
	others := make([]*engine.Session, each)
	for i := range others {
		others[i] = newSession([]string{"u", "v"}[i%2])
	}
	done := make(chan struct{})
	defer func() { <-done }() // a failed listing ends the test once the changes have ended
	go func() {
		defer close(done)
		for i, d := range doomed {
			if _, err := h.s.DeleteSessions(h.ctx, []string{d.ID}, now); err != nil {
				t.Error(err)
				return
			}
			if err := h.s.InsertSession(h.ctx, others[i], engine.Caps{}, now); err != nil {
				t.Error(err)
				return
			}
			moved := stable[(i*7)%each]
			if i%2 == 0 {
				err := h.s.Touch(h.ctx, moved.ID, now.Add(time.Second), true)
				if err != nil {
					t.Error(err)
					return
				}
				continue
			}
			_, err := h.s.UpdateSession(h.ctx, moved.ID, now, func(s *engine.Session) error {
				s.Settings.IdleConnectionTimeoutSeconds--
				return nil
			})
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	untilDone(done, func() {
		for _, users := range [][]string{{"u"}, nil} {
			list, err := h.s.ListSessions(h.ctx, users, now)
			if err != nil {
				t.Fatal(err)
			}
			seen := make(map[string]bool, len(list))
			for _, sess := range list {
				if seen[sess.ID] || users != nil && sess.Username != "u" {
					t.Fatalf("ListSessions(%q): %s of %s listed twice or not for u", users, sess.ID, sess.Username)
				}
				seen[sess.ID] = true
			}
			for _, sess := range stable {
				if !seen[sess.ID] {
					t.Fatalf("ListSessions(%q): %s, live throughout, not listed (%d listed)", users, sess.ID, len(list))
				}
			}
		}
	})
}

// PurgeExpired removes exactly the expired sessions and reports how many.
func testSessionPurge(t *testing.T, h *harness) {
	h.createAccounts(newAccount("u"), newAccount("v"))
	live, permanent := newSession("u"), newSession("v")
	permanent.Permanent = true
	permanent.LastAccessedAt = now.Add(-48 * time.Hour)
	var expired []*engine.Session
	for i := range 3 {
		s := newSession([]string{"u", "v"}[i%2])
		s.LifetimeEnd = now.Add(time.Duration(i+1) * time.Minute)
		expired = append(expired, s)
	}
	idle := newSession("v")
	idle.LastAccessedAt = now.Add(-idleTimeout + time.Minute) // ends at now+1m
	expired = append(expired, idle)
	h.insert(live, permanent)
	h.insert(expired...)

	if n, err := h.s.PurgeExpired(h.ctx, now); err != nil || n != 0 {
		t.Errorf("PurgeExpired(now) = %d, %v; want 0, nil", n, err)
	}
	at := now.Add(3 * time.Minute)
	if n, err := h.s.PurgeExpired(h.ctx, at); err != nil || n != len(expired) {
		t.Errorf("PurgeExpired(+3m) = %d, %v; want %d, nil", n, err, len(expired))
	}
	if n, err := h.s.PurgeExpired(h.ctx, at); err != nil || n != 0 {
		t.Errorf("second PurgeExpired(+3m) = %d, %v; want 0, nil", n, err)
	}
	for _, s := range expired {
		h.wantNoSession(s, now) // removed, so not even visible at an earlier time
	}
	h.wantSession(live, at)
	h.wantSession(permanent, at)
}

// Concurrent inserts, lookups, touches, updates and deletes keep indexes consistent.
func testSessionConcurrent(t *testing.T, h *harness) {
	const workers, rounds = 8, 40
	users := []string{"w0", "w1", "w2"}
	for _, u := range users {
		h.createAccounts(newAccount(u))
	}
	var mu sync.Mutex
	alive := map[string]*engine.Session{}
	errs := parallel(workers, func(w int) error {
		var mine []*engine.Session
		for i := range rounds {
			s := newSession(users[(w+i)%len(users)])
			s.ClientAddress = fmt.Sprintf("198.51.100.%d", i%4)
			if err := h.s.InsertSession(h.ctx, s, engine.Caps{}, now); err != nil {
				return fmt.Errorf("InsertSession: %w", err)
			}
			mine = append(mine, s)
			got, err := h.s.SessionByTokenHash(h.ctx, s.TokenHash, now)
			if err != nil || got.ID != s.ID {
				return fmt.Errorf("SessionByTokenHash right after insert: %v, %v", got, err)
			}
			at := now.Add(time.Duration(i) * time.Second)
			if err := h.s.Touch(h.ctx, mine[len(mine)/2].ID, at, i%2 == 0); err != nil {
				return fmt.Errorf("Touch: %w", err)
			}
			if _, err := h.s.ListSessions(h.ctx, []string{s.UserKey()}, now); err != nil {
				return fmt.Errorf("ListSessions: %w", err)
			}
			if i%3 == 0 {
				victim := mine[0]
				mine = mine[1:]
				if n, err := h.s.DeleteSessions(h.ctx, []string{victim.ID}, now); err != nil || n != 1 {
					return fmt.Errorf("DeleteSessions = %d, %v", n, err)
				}
			}
			if i%5 == 0 && len(mine) > 0 {
				if _, err := h.s.UpdateSession(h.ctx, mine[len(mine)-1].ID, now, func(s *engine.Session) error {
					s.Settings.Description = "updated"
					return nil
				}); err != nil {
					return fmt.Errorf("UpdateSession: %w", err)
				}
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, s := range mine {
			alive[s.ID] = s
		}
		return nil
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	list, err := h.s.ListSessions(h.ctx, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(alive) {
		t.Fatalf("ListSessions has %d sessions; want %d", len(list), len(alive))
	}
	for _, got := range list {
		want, ok := alive[got.ID]
		if !ok {
			t.Fatalf("ListSessions lists deleted session %s", got.ID)
		}
		byToken, err := h.s.SessionByTokenHash(h.ctx, want.TokenHash, now)
		if err != nil || byToken.ID != want.ID {
			t.Fatalf("SessionByTokenHash(%s) = %v, %v", want.ID, byToken, err)
		}
	}
	perUser := 0
	for _, u := range users {
		l, _ := h.s.ListSessions(h.ctx, []string{u}, now)
		perUser += len(l)
	}
	if perUser != len(alive) {
		t.Errorf("per-account lists hold %d sessions; want %d", perUser, len(alive))
	}
}
