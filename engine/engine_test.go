package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/enginetest"
	"github.com/sessiond/sessiond/engine/memstore"
)

// fakeClock is a settable clock for expiry tests without sleeping.
type fakeClock = enginetest.Clock

func newFakeClock() *fakeClock {
	return enginetest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

const adminPassword = "admin-secret"

type fixture struct {
	t      *testing.T
	e      *engine.Engine
	clock  *fakeClock
	admin  string // an admin token
	client engine.Client
}

func testConfig(clock *fakeClock) engine.Config {
	return engine.Config{
		Defaults: engine.Defaults{
			Settings: engine.SessionSettings{
				DefaultAPI: "admin", DefaultDebug: "none", IdleConnectionTimeoutSeconds: 3600,
				IdleCursorTimeoutSeconds: 600,
			},
			EnablePermanentSessions: true,
		},
		NetX:                 engine.NetXProperties{SessionDurationMinutes: 30, InactivityTimeoutMinutes: 60},
		Hash:                 enginetest.CheapHash,
		HousekeepingInterval: -1,
		Clock:                clock,
	}
}

func newFixture(t *testing.T, configure func(*engine.Config)) *fixture {
	t.Helper()
	return newFixtureOn(t, memstore.New(memstore.Options{}), configure)
}

func newFixtureOn(t *testing.T, store engine.Store, configure func(*engine.Config)) *fixture {
	t.Helper()
	clock := newFakeClock()
	cfg := testConfig(clock)
	if configure != nil {
		configure(&cfg)
	}
	e, err := engine.New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	f := &fixture{t: t, e: e, clock: clock, client: engine.Client{Address: "127.0.0.1"}}
	if _, err := e.Bootstrap(context.Background(), "admin", adminPassword); err != nil {
		t.Fatal(err)
	}
	f.admin = f.login("admin", adminPassword).AuthToken
	return f
}

func (f *fixture) login(user, password string) engine.SessionInfo {
	f.t.Helper()
	s, err := f.e.CreateSession(context.Background(), engine.CreateSessionRequest{Username: user, Password: password, Client: f.client})
	if err != nil {
		f.t.Fatalf("login %s: %v", user, err)
	}
	return s
}

func (f *fixture) createUser(name string) {
	f.t.Helper()
	if _, err := f.e.CreateAccount(context.Background(), f.admin, engine.CreateAccountRequest{Username: name, Password: name + "-pw"}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) valid(token string) bool {
	f.t.Helper()
	_, err := f.e.Validate(context.Background(), token)
	if err != nil && !errors.Is(err, engine.ErrInvalidToken) {
		f.t.Fatal(err)
	}
	return err == nil
}

// alive reports whether a token's session is live without touching it, as a check that is
// not itself a use of the session.
func (f *fixture) alive(token string) bool {
	f.t.Helper()
	p, err := engine.ParseToken(token)
	if err != nil {
		return false
	}
	_, err = f.e.Store().SessionByTokenHash(context.Background(), p.Hash, f.clock.Now())
	if err != nil && !errors.Is(err, engine.ErrSessionNotFound) {
		f.t.Fatal(err)
	}
	return err == nil
}

func ptr[T any](v T) *T { return &v }

// TestSessionClocks checks each clock expiring, tickles against inactivity, sessionNoTickle and
// permanent sessions never expiring.
func TestSessionClocks(t *testing.T) {
	ctx := context.Background()
	type step struct {
		advance time.Duration
		action  string // "use", "ping", "tickle" or ""
		valid   bool
	}
	// idleSession starts a createSession session with that idle timeout.
	idleSession := func(seconds int64) func(f *fixture) string {
		return func(f *fixture) string {
			s, err := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "admin", Password: adminPassword,
				Options: engine.SessionOptions{IdleConnectionTimeoutSeconds: ptr(seconds)}})
			if err != nil {
				t.Fatal(err)
			}
			return s.AuthToken
		}
	}
	tests := []struct {
		name      string
		configure func(*engine.Config)
		start     func(f *fixture) string
		steps     []step
	}{
		{
			name:  "idle clock ends a createSession session after idleConnectionTimeoutSeconds",
			start: idleSession(60),
			steps: []step{{59 * time.Second, "use", true}, {59 * time.Second, "", true}, {time.Second, "", false}},
		},
		{
			name:  "pingSession keeps a session alive and is refused once it has idled out",
			start: idleSession(60),
			steps: []step{{59 * time.Second, "ping", true}, {59 * time.Second, "ping", true}, {60 * time.Second, "ping", false}},
		},
		{
			name:  "idleConnectionTimeoutSeconds 0 never idles out",
			start: idleSession(0),
			steps: []step{{1000 * time.Hour, "", true}},
		},
		{
			name: "authenticate key lasts user.sessionDuration without use",
			start: func(f *fixture) string {
				k, err := f.e.Authenticate(ctx, "admin", adminPassword, f.client)
				if err != nil {
					t.Fatal(err)
				}
				return k
			},
			steps: []step{{29 * time.Minute, "", true}, {time.Minute, "", false}},
		},
		{
			name: "tickles keep a key past sessionDuration but not past inactivity plus one minute",
			start: func(f *fixture) string {
				k, _ := f.e.Authenticate(ctx, "admin", adminPassword, f.client)
				return k
			},
			steps: []step{
				{20 * time.Minute, "tickle", true}, {20 * time.Minute, "tickle", true}, {20 * time.Minute, "tickle", true},
				{time.Minute - time.Second, "", true}, {time.Second, "", false},
			},
		},
		{
			name:      "user.sessionInactivityTimeout 0: tickles keep a key alive for hours, and it idles out once they stop",
			configure: func(c *engine.Config) { c.NetX.InactivityTimeoutMinutes = 0 },
			start: func(f *fixture) string {
				k, _ := f.e.Authenticate(ctx, "admin", adminPassword, f.client)
				return k
			},
			steps: append(slices.Repeat([]step{{29 * time.Minute, "tickle", true}}, 10), // 290 minutes
				step{29 * time.Minute, "", true}, step{time.Minute, "", false}),
		},
		{
			name: "real calls reset the inactivity clock",
			start: func(f *fixture) string {
				k, _ := f.e.Authenticate(ctx, "admin", adminPassword, f.client)
				return k
			},
			steps: []step{{25 * time.Minute, "use", true}, {25 * time.Minute, "use", true}, {25 * time.Minute, "use", true}, {25 * time.Minute, "", true}},
		},
		{
			name: "pingSession resets the inactivity clock, unlike a tickle",
			start: func(f *fixture) string {
				k, _ := f.e.Authenticate(ctx, "admin", adminPassword, f.client)
				return k
			},
			steps: []step{{25 * time.Minute, "ping", true}, {25 * time.Minute, "ping", true}, {25 * time.Minute, "ping", true}, {25 * time.Minute, "", true}},
		},
		{
			name:      "sessionNoTickle: tickles extend nothing",
			configure: func(c *engine.Config) { c.NetX.NoTickle = true },
			start: func(f *fixture) string {
				k, _ := f.e.Authenticate(ctx, "admin", adminPassword, f.client)
				return k
			},
			steps: []step{{20 * time.Minute, "tickle", true}, {10 * time.Minute, "", false}},
		},
		{
			name:      "maxSessionLifetime ends a session however busy",
			configure: func(c *engine.Config) { c.Defaults.MaxSessionLifetime = time.Hour },
			start: func(f *fixture) string {
				return f.login("admin", adminPassword).AuthToken
			},
			steps: []step{{30 * time.Minute, "use", true}, {29 * time.Minute, "use", true}, {time.Minute, "", false}},
		},
		{
			name:      "permanent sessions never expire, whatever the clocks",
			configure: func(c *engine.Config) { c.Defaults.MaxSessionLifetime = time.Hour },
			start: func(f *fixture) string {
				s, err := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "admin", Password: adminPassword, Permanent: true})
				if err != nil {
					t.Fatal(err)
				}
				return s.AuthToken
			},
			steps: []step{{10 * 365 * 24 * time.Hour, "", true}},
		},
	}
	// Each case runs on a store that touches by token hash in one step (engine.TokenToucher)
	// and on one that offers only SessionByTokenHash and Touch.
	stores := []struct {
		name string
		new  func() engine.Store
	}{
		{"TokenToucher", func() engine.Store { return memstore.New(memstore.Options{}) }},
		{"lookup then Touch", func() engine.Store { return plainStore{memstore.New(memstore.Options{})} }},
	}
	for _, tt := range tests {
		for _, store := range stores {
			t.Run(tt.name+"/"+store.name, func(t *testing.T) {
				f := newFixtureOn(t, store.new(), tt.configure)
				token := tt.start(f)
				for i, st := range tt.steps {
					f.clock.Advance(st.advance)
					switch st.action {
					case "tickle":
						ok, err := f.e.SetUserPreference(ctx, token, engine.TickleLabel, time.Now().String())
						if err != nil || !ok {
							t.Fatalf("step %d: tickle = %v, %v", i, ok, err)
						}
						continue
					case "ping":
						err := f.e.PingSession(ctx, token)
						if err != nil && !errors.Is(err, engine.ErrInvalidToken) {
							t.Fatalf("step %d: ping: %v", i, err)
						}
						if got := err == nil; got != st.valid {
							t.Fatalf("step %d (+%v): ping: valid = %v, want %v", i, st.advance, got, st.valid)
						}
						continue
					case "use":
						if got := f.valid(token); got != st.valid {
							t.Fatalf("step %d (+%v): use: valid = %v, want %v", i, st.advance, got, st.valid)
						}
						continue
					}
					if got := f.alive(token); got != st.valid {
						t.Fatalf("step %d (+%v): valid = %v, want %v", i, st.advance, got, st.valid)
					}
				}
			})
		}
	}
}

// plainStore hides the optional methods of the store it wraps, such as TouchByTokenHash.
type plainStore struct{ engine.Store }

// TestCapsExactUnderConcurrency checks that parallel logins never exceed any session cap.
func TestCapsExactUnderConcurrency(t *testing.T) {
	for _, tc := range []struct {
		limit string
		caps  engine.Caps
	}{
		{engine.LimitMaxSessions, engine.Caps{MaxSessions: 10}},
		{engine.LimitMaxSessionsPerAddress, engine.Caps{MaxSessionsPerAddress: 10}},
		{engine.LimitMaxSessionsPerUser, engine.Caps{MaxSessionsPerUser: 10}},
	} {
		t.Run(tc.limit, func(t *testing.T) {
			f := newFixture(t, func(c *engine.Config) { c.Defaults.Caps = tc.caps })
			var wg sync.WaitGroup
			var mu sync.Mutex
			ok, limited := 1, 0 // the fixture's admin session counts
			for i := 0; i < 64; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := f.e.CreateSession(context.Background(), engine.CreateSessionRequest{Username: "admin", Password: adminPassword, Client: f.client})
					mu.Lock()
					defer mu.Unlock()
					var le *engine.LimitError
					switch {
					case err == nil:
						ok++
					case errors.As(err, &le) && le.Limit == tc.limit:
						limited++
					default:
						t.Errorf("unexpected error %v", err)
					}
				}()
			}
			wg.Wait()
			if ok != 10 || limited != 55 {
				t.Fatalf("ok=%d limited=%d, want 10 and 55", ok, limited)
			}
		})
	}
}

// TestExpiredSessionsFreeCaps checks that expired sessions stop counting at once.
func TestExpiredSessionsFreeCaps(t *testing.T) {
	f := newFixture(t, func(c *engine.Config) { c.Defaults.Caps = engine.Caps{MaxSessionsPerUser: 2} })
	f.login("admin", adminPassword)
	if _, err := f.e.CreateSession(context.Background(), engine.CreateSessionRequest{Username: "admin", Password: adminPassword}); err == nil {
		t.Fatal("third session allowed over a cap of 2")
	}
	f.clock.Advance(time.Hour)
	f.login("admin", adminPassword)
	f.login("admin", adminPassword)
}

// TestLockout checks per-account lockout and that a locked account answers like a wrong password.
func TestLockout(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	f.createUser("bob")
	try := func(pw string) error {
		_, err := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "BOB", Password: pw, Client: engine.Client{Address: "10.0.0.9"}})
		return err
	}
	for i := 0; i < 5; i++ {
		if err := try("wrong"); !errors.Is(err, engine.ErrInvalidCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if err := try("bob-pw"); !errors.Is(err, engine.ErrInvalidCredentials) {
		t.Fatalf("locked account let the right password in: %v", err)
	}
	accts, err := f.e.DescribeAccounts(ctx, f.admin, []string{"bob"})
	if err != nil || len(accts) != 1 || accts[0].LockedUntil.IsZero() {
		t.Fatalf("describe locked account: %+v %v", accts, err)
	}
	f.clock.Advance(15 * time.Minute)
	if err := try("bob-pw"); err != nil {
		t.Fatalf("after the wait: %v", err)
	}
}

// TestLoginThrottlePerAddress checks that one address's failures throttle only that address.
func TestLoginThrottlePerAddress(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(c *engine.Config) { c.LoginFailuresPerAddress = 3; c.DefaultLockoutAfter = -1 })
	attacker := engine.Client{Address: "192.0.2.1"}
	for i := 0; i < 3; i++ {
		f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "nobody", Password: "x", Client: attacker})
	}
	if _, err := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "admin", Password: adminPassword, Client: attacker}); !errors.Is(err, engine.ErrLoginThrottled) {
		t.Fatalf("throttled address got %v", err)
	}
	if key, _ := f.e.Authenticate(ctx, "admin", adminPassword, attacker); key != "" {
		t.Fatal("authenticate from a throttled address succeeded")
	}
	f.login("admin", adminPassword) // another address is unaffected
	f.clock.Advance(time.Minute)
	if _, err := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "admin", Password: adminPassword, Client: attacker}); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestVisibility checks that admins see every session and others only their own.
func TestVisibility(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	f.createUser("alice")
	f.createUser("bob")
	alice := f.login("alice", "alice-pw")
	bob := f.login("bob", "bob-pw")

	all, err := f.e.ListSessions(ctx, f.admin, nil)
	if err != nil || len(all) != 3 {
		t.Fatalf("admin list: %d sessions, %v", len(all), err)
	}
	for _, s := range all {
		if s.AuthToken != "" {
			t.Fatal("listSessions returned a token")
		}
	}
	mine, _ := f.e.ListSessions(ctx, alice.AuthToken, []string{"bob"})
	if len(mine) != 0 {
		t.Fatalf("alice listed bob's sessions: %+v", mine)
	}
	mine, _ = f.e.DescribeSessions(ctx, alice.AuthToken, nil, nil)
	if len(mine) != 1 || mine[0].Username != "alice" || mine[0].AuthToken != alice.AuthToken {
		t.Fatalf("alice describe: %+v", mine)
	}
	got, _ := f.e.DescribeSessions(ctx, alice.AuthToken, []string{bob.AuthToken}, []string{bob.ID})
	if len(got) != 0 {
		t.Fatalf("alice described bob's session: %+v", got)
	}
	got, _ = f.e.DescribeSessions(ctx, f.admin, nil, []string{bob.ID})
	if len(got) != 1 || got[0].AuthToken != "" {
		t.Fatalf("admin describe by id: %+v", got)
	}
	n, err := f.e.RevokeSessions(ctx, alice.AuthToken, engine.RevokeRequest{SessionIDs: []string{bob.ID}})
	if err != nil || n != 0 || !f.valid(bob.AuthToken) {
		t.Fatalf("alice revoked bob's session: n=%d err=%v", n, err)
	}
	if _, err := f.e.RevokeSessions(ctx, alice.AuthToken, engine.RevokeRequest{Usernames: []string{"bob"}}); !errors.Is(err, engine.ErrPermissionDenied) {
		t.Fatalf("alice revoking by bob's username: %v", err)
	}
	if _, err := f.e.ListAccounts(ctx, alice.AuthToken, nil); !errors.Is(err, engine.ErrPermissionDenied) {
		t.Fatalf("non-admin listAccounts: %v", err)
	}
}

// TestRevocations checks every way of ending sessions.
func TestRevocations(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	f.createUser("carol")
	a, b, c := f.login("carol", "carol-pw"), f.login("carol", "carol-pw"), f.login("carol", "carol-pw")
	key, err := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "carol", Password: "carol-pw", Permanent: true})
	if err != nil {
		t.Fatal(err)
	}

	if n, err := f.e.RevokeSessions(ctx, a.AuthToken, engine.RevokeRequest{SessionIDs: []string{b.ID}}); err != nil || n != 1 || f.valid(b.AuthToken) {
		t.Fatalf("revoke by id: n=%d err=%v", n, err)
	}
	if n, err := f.e.RevokeSessions(ctx, a.AuthToken, engine.RevokeRequest{AllOthers: true}); err != nil || n != 2 || f.valid(c.AuthToken) || f.valid(key.AuthToken) || !f.valid(a.AuthToken) {
		t.Fatalf("revoke all others: n=%d err=%v", n, err)
	}
	if err := f.e.DeleteSession(ctx, a.AuthToken); err != nil || f.valid(a.AuthToken) {
		t.Fatalf("deleteSession: %v", err)
	}
	if err := f.e.DeleteSession(ctx, a.AuthToken); err != nil {
		t.Fatalf("deleting an already-gone session: %v", err)
	}
	if err := f.e.DeleteSession(ctx, "garbage"); !errors.Is(err, engine.ErrInvalidToken) {
		t.Fatalf("deleting a malformed token: %v", err)
	}

	d := f.login("carol", "carol-pw")
	key2, _ := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "carol", Password: "carol-pw", Permanent: true})
	if n, err := f.e.RevokeSessions(ctx, f.admin, engine.RevokeRequest{Usernames: []string{"CAROL"}}); err != nil || n != 2 || f.valid(d.AuthToken) || f.valid(key2.AuthToken) {
		t.Fatalf("admin revoke by username: n=%d err=%v", n, err)
	}

	// A password change ends the other temporary sessions but keeps API keys and the caller.
	e1, e2 := f.login("carol", "carol-pw"), f.login("carol", "carol-pw")
	key3, _ := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "carol", Password: "carol-pw", Permanent: true})
	if _, err := f.e.AlterAccount(ctx, e1.AuthToken, engine.AlterAccountRequest{Username: "carol", Password: ptr("new"), CurrentPassword: ptr("wrong")}); !errors.Is(err, engine.ErrCurrentPasswordWrong) {
		t.Fatalf("password change with a wrong current password: %v", err)
	}
	if _, err := f.e.AlterAccount(ctx, e1.AuthToken, engine.AlterAccountRequest{Username: "carol", Password: ptr("new"), CurrentPassword: ptr("carol-pw")}); err != nil {
		t.Fatal(err)
	}
	if !f.valid(e1.AuthToken) || f.valid(e2.AuthToken) || !f.valid(key3.AuthToken) {
		t.Fatal("password change did not end exactly the other temporary sessions")
	}

	// Dropping the account ends everything, API keys too.
	if dropped, err := f.e.DropAccounts(ctx, f.admin, []string{"Carol"}); err != nil || len(dropped) != 1 {
		t.Fatalf("drop: %v %v", dropped, err)
	}
	if f.valid(e1.AuthToken) || f.valid(key3.AuthToken) {
		t.Fatal("sessions survived their account")
	}
	if _, err := f.e.DropAccounts(ctx, f.admin, []string{"admin"}); !errors.Is(err, engine.ErrLastAdmin) {
		t.Fatalf("dropping the last admin: %v", err)
	}
	if _, err := f.e.AlterAccount(ctx, f.admin, engine.AlterAccountRequest{Username: "admin", Roles: []string{}}); !errors.Is(err, engine.ErrLastAdmin) {
		t.Fatalf("demoting the last admin: %v", err)
	}
	// Refused with a new password too, before the change would end the other sessions.
	other := f.login("admin", adminPassword)
	newPassword, current := "another-secret", adminPassword
	if _, err := f.e.AlterAccount(ctx, f.admin, engine.AlterAccountRequest{Username: "admin", Roles: []string{},
		Password: &newPassword, CurrentPassword: &current}); !errors.Is(err, engine.ErrLastAdmin) {
		t.Fatalf("demoting the last admin with a new password: %v", err)
	}
	if !f.alive(other.AuthToken) {
		t.Error("a refused demotion with a new password ended the admin's other session")
	}
}

// TestPermanentSessionRules checks the enable switch and that temporary never becomes permanent.
func TestPermanentSessionRules(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(c *engine.Config) { c.Defaults.EnablePermanentSessions = false })
	if _, err := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "admin", Password: adminPassword, Permanent: true}); !errors.Is(err, engine.ErrPermanentDisabled) {
		t.Fatalf("permanent while disabled: %v", err)
	}
	if _, err := f.e.AlterSession(ctx, f.admin, engine.SessionOptions{}, ptr(true)); !errors.Is(err, engine.ErrPermanentNotAllowed) {
		t.Fatalf("temporary → permanent: %v", err)
	}
	s, err := f.e.AlterSession(ctx, f.admin, engine.SessionOptions{Description: ptr("changed"), DefaultDebug: ptr("max"),
		DefaultResponseOptions: &engine.ResponseOptions{NumberFormat: "string"}}, ptr(false))
	if err != nil || s.Settings.Description != "changed" || s.Settings.DefaultDebug != "max" || s.Settings.DefaultResponseOptions.NumberFormat != "string" {
		t.Fatalf("alterSession: %+v %v", s, err)
	}
	for _, tc := range []struct {
		field string
		opts  engine.SessionOptions
	}{
		{"defaultDebug", engine.SessionOptions{DefaultDebug: ptr("loud")}},
		{"defaultDebug", engine.SessionOptions{DefaultDebug: ptr("")}},
		{"defaultBinaryFormat", engine.SessionOptions{DefaultBinaryFormat: ptr("octal")}},
		{"defaultBinaryFormat", engine.SessionOptions{DefaultBinaryFormat: ptr("")}},
	} {
		var ve *engine.ValidationError
		if _, err := f.e.AlterSession(ctx, f.admin, tc.opts, nil); !errors.As(err, &ve) || ve.Field != tc.field {
			t.Errorf("invalid %s %+v: %v", tc.field, tc.opts, err)
		}
		if _, err := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "admin", Password: adminPassword, Options: tc.opts}); !errors.As(err, &ve) || ve.Field != tc.field {
			t.Errorf("createSession with invalid %s %+v: %v", tc.field, tc.opts, err)
		}
	}
}

// TestEnumeratedOptionsIgnoreCase checks that the enumerated session options are matched
// ignoring case, as the FairCom documents say of them, and kept as the spec spells them.
func TestEnumeratedOptionsIgnoreCase(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	s, err := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "admin", Password: adminPassword,
		Options: engine.SessionOptions{DefaultDebug: ptr("MAX"), DefaultBinaryFormat: ptr("BYTEARRAY"),
			DefaultResponseOptions: &engine.ResponseOptions{BinaryFormat: "Base64", DataFormat: "Objects", NumberFormat: "STRING"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := engine.ResponseOptions{BinaryFormat: "base64", DataFormat: "objects", NumberFormat: "string"}
	if got := s.Settings; got.DefaultDebug != "max" || got.DefaultBinaryFormat != "byteArray" || got.DefaultResponseOptions != want {
		t.Errorf("settings %+v; want max, byteArray and %+v", got, want)
	}
	var ve *engine.ValidationError
	if _, err := f.e.AlterSession(ctx, s.AuthToken, engine.SessionOptions{DefaultResponseOptions: &engine.ResponseOptions{DataFormat: "Rows"}}, nil); !errors.As(err, &ve) || ve.Field != "defaultResponseOptions.dataFormat" {
		t.Errorf("an unknown dataFormat: %v", err)
	}
}

// TestPreferences checks the per-user store and NetX's answers for bad keys.
func TestPreferences(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	key, err := f.e.Authenticate(ctx, "admin", adminPassword, f.client)
	if err != nil || key == "" {
		t.Fatal(err)
	}
	if ok, err := f.e.SetUserPreference(ctx, key, "theme", "dark"); !ok || err != nil {
		t.Fatalf("set: %v %v", ok, err)
	}
	if v, ok, err := f.e.GetUserPreference(ctx, f.admin, "theme"); v != "dark" || !ok || err != nil {
		t.Fatalf("get from another session of the same user: %q %v %v", v, ok, err)
	}
	if _, ok, _ := f.e.GetUserPreference(ctx, key, engine.TickleLabel); ok {
		t.Fatal("TickleTime was stored")
	}
	if ok, err := f.e.SetUserPreference(ctx, "sdt_nope", "theme", "x"); ok || err != nil {
		t.Fatalf("bad key: %v %v", ok, err)
	}
	if ok, _ := f.e.SetUserPreference(ctx, "sdt_nope", engine.TickleLabel, "x"); ok {
		t.Fatal("tickle with a bad key returned true")
	}
	if err := f.e.Logout(ctx, key); err != nil || f.valid(key) {
		t.Fatalf("logout: %v", err)
	}
	// A well-formed key that has ended, by logout or by expiry: a tickle returns false and
	// brings nothing back.
	if ok, err := f.e.SetUserPreference(ctx, key, engine.TickleLabel, "x"); ok || err != nil {
		t.Fatalf("tickle with a logged-out key: %v %v", ok, err)
	}
	expired, err := f.e.Authenticate(ctx, "admin", adminPassword, f.client)
	if err != nil || expired == "" {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Hour) // past the 30-minute session duration
	if ok, err := f.e.SetUserPreference(ctx, expired, engine.TickleLabel, "x"); ok || err != nil || f.valid(expired) {
		t.Fatalf("tickle with an expired key: %v %v, valid afterwards: %v", ok, err, f.valid(expired))
	}
}

// TestTokens checks token shape, prefixes and that corrupted tokens are refused.
func TestTokens(t *testing.T) {
	f := newFixture(t, nil)
	key, _ := f.e.CreateSession(context.Background(), engine.CreateSessionRequest{Username: "admin", Password: adminPassword, Permanent: true})
	for _, tc := range []struct {
		token     string
		permanent bool
		ok        bool
	}{
		{f.admin, false, true},
		{key.AuthToken, true, true},
		{f.admin[:len(f.admin)-1] + flip(f.admin[len(f.admin)-1]), false, false},
		{"sdp_" + f.admin[4:], false, false},
		{"", false, false},
		{f.admin + "x", false, false},
	} {
		p, err := engine.ParseToken(tc.token)
		if (err == nil) != tc.ok || (tc.ok && p.Permanent != tc.permanent) {
			t.Errorf("ParseToken(%q) = %+v, %v", tc.token, p, err)
		}
	}
}

// TestMalformedTokenWhateverTheStore checks that a token with a bad checksum is
// ErrInvalidToken for Validate, PingSession and a tickle even when the call is cancelled or
// the store is closed, on a store that checks tokens in memory (which looks the token up
// without checking its checksum first) and on one that does not.
func TestMalformedTokenWhateverTheStore(t *testing.T) {
	for _, inMemory := range []bool{true, false} {
		t.Run(fmt.Sprintf("in memory %v", inMemory), func(t *testing.T) {
			ms := memstore.New(memstore.Options{})
			var store engine.Store = ms
			if !inMemory {
				store = plainStore{ms}
			}
			f := newFixtureOn(t, store, nil)
			last := len(f.admin) - 1
			bad := f.admin[:last] + flip(f.admin[last])
			cancelled, cancel := context.WithCancel(context.Background())
			cancel()
			checks := func(ctx context.Context) []error {
				_, validateErr := f.e.Validate(ctx, bad)
				ok, tickleErr := f.e.SetUserPreference(ctx, bad, engine.TickleLabel, "x")
				if ok {
					tickleErr = errors.New("a tickle with it answered true")
				}
				return []error{validateErr, f.e.PingSession(ctx, bad), tickleErr}
			}
			got := checks(cancelled)
			ms.Close()
			got = append(got, checks(context.Background())...)
			for i, err := range got {
				if i%3 == 2 { // a tickle answers false for an invalid key
					if err != nil {
						t.Errorf("tickle %d: %v, want no error", i/3, err)
					}
					continue
				}
				if !errors.Is(err, engine.ErrInvalidToken) {
					t.Errorf("check %d: %v, want ErrInvalidToken", i, err)
				}
			}
		})
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// insertHookStore runs beforeInsert, once, before the next InsertSession.
type insertHookStore struct {
	engine.Store
	beforeInsert func()
}

func (s *insertHookStore) InsertSession(ctx context.Context, sess *engine.Session, caps engine.Caps, now time.Time) error {
	if hook := s.beforeInsert; hook != nil {
		s.beforeInsert = nil
		hook()
	}
	return s.Store.InsertSession(ctx, sess, caps, now)
}

// TestPasswordChangeRacingLogin checks that a login with the old password that races a
// password change fails and leaves no session, whether the change lands while the old password
// is being hashed or between the check and the session's insert.
func TestPasswordChangeRacingLogin(t *testing.T) {
	for _, when := range []string{"during the hash", "before the insert"} {
		t.Run(when, func(t *testing.T) {
			store := &insertHookStore{Store: memstore.New(memstore.Options{})}
			var armed atomic.Bool
			entered, release := make(chan struct{}), make(chan struct{})
			f := newFixtureOn(t, store, func(cfg *engine.Config) {
				cfg.DeriveKey = func(_ context.Context, password, salt []byte, p engine.HashParams, keyLen uint32) ([]byte, error) {
					if string(password) == "bob-pw" && armed.CompareAndSwap(true, false) {
						close(entered)
						<-release
					}
					return argon2.IDKey(password, salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen), nil
				}
			})
			f.createUser("bob")
			change := func() {
				if _, err := f.e.AlterAccount(context.Background(), f.admin, engine.AlterAccountRequest{Username: "bob", Password: ptr("bob-new-pw")}); err != nil {
					t.Error(err)
				}
			}
			var err error
			login := func() {
				_, err = f.e.CreateSession(context.Background(), engine.CreateSessionRequest{Username: "bob", Password: "bob-pw", Client: f.client})
			}
			if when == "during the hash" {
				armed.Store(true)
				done := make(chan struct{})
				go func() { defer close(done); login() }()
				<-entered
				change()
				close(release)
				<-done
			} else {
				store.beforeInsert = change
				login()
			}
			if !errors.Is(err, engine.ErrInvalidCredentials) {
				t.Errorf("login with the old password: %v, want invalid credentials", err)
			}
			left, lerr := store.ListSessions(context.Background(), []string{engine.UserKey("bob")}, f.clock.Now())
			if lerr != nil || len(left) != 0 {
				t.Errorf("bob's sessions after the change: %d (%v), want none", len(left), lerr)
			}
			f.login("bob", "bob-new-pw")
		})
	}
}

// failAfterUpdateStore fails every DeleteSessions once an account has been updated, as a
// process killed right after storing a new password would leave it.
type failAfterUpdateStore struct {
	engine.Store
	updated atomic.Bool
}

func (s *failAfterUpdateStore) UpdateAccount(ctx context.Context, key string, fn func(*engine.Account) error) (*engine.Account, error) {
	a, err := s.Store.UpdateAccount(ctx, key, fn)
	s.updated.Store(err == nil)
	return a, err
}

func (s *failAfterUpdateStore) DeleteSessions(ctx context.Context, ids []string, now time.Time) (int, error) {
	if s.updated.Load() {
		return 0, errors.New("injected: the process stopped")
	}
	return s.Store.DeleteSessions(ctx, ids, now)
}

// TestPasswordChangeEndsSessionsFirst checks that a password change that stops right after
// storing the new password has already ended the account's other temporary sessions.
func TestPasswordChangeEndsSessionsFirst(t *testing.T) {
	store := &failAfterUpdateStore{Store: memstore.New(memstore.Options{})}
	f := newFixtureOn(t, store, nil)
	f.createUser("bob")
	old := f.login("bob", "bob-pw").AuthToken
	store.updated.Store(false)
	// Whether AlterAccount fails depends on what is left to end after the store; the session
	// must be ended either way.
	_, _ = f.e.AlterAccount(context.Background(), f.admin, engine.AlterAccountRequest{Username: "bob", Password: ptr("bob-new-pw")})
	if f.valid(old) {
		t.Errorf("a session opened with the old password outlived the stored password change")
	}
}

// TestAbandonedHashKeepsItsSlot checks that a login whose client gives up during the hash
// keeps its hash slot until the hash is done, so clients that send a login and leave cannot
// start more hashes at once than MaxConcurrentHashes, and that the attempt still counts.
func TestAbandonedHashKeepsItsSlot(t *testing.T) {
	var running, most atomic.Int32
	started, release := make(chan struct{}, 4), make(chan struct{})
	f := newFixture(t, func(cfg *engine.Config) {
		cfg.MaxConcurrentHashes = 1
		// Like the hash helper: the work goes on until it is done (release), and the caller
		// stops waiting for it if its context ends.
		cfg.DeriveKey = func(ctx context.Context, password, salt []byte, p engine.HashParams, keyLen uint32) ([]byte, error) {
			n := running.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			if string(password) != "wrong-pw" {
				defer running.Add(-1)
				return argon2.IDKey(password, salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen), nil
			}
			done := make(chan struct{})
			go func() {
				<-release
				running.Add(-1)
				close(done)
			}()
			started <- struct{}{}
			select {
			case <-done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return argon2.IDKey(password, salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen), nil
		}
	})
	f.createUser("bob")
	ctx, cancel := context.WithCancel(context.Background())
	abandoned := make(chan error, 1)
	go func() {
		_, err := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "bob", Password: "wrong-pw", Client: f.client})
		abandoned <- err
	}()
	<-started
	cancel() // the client leaves while its hash runs
	second := make(chan error, 1)
	go func() {
		_, err := f.e.CreateSession(context.Background(), engine.CreateSessionRequest{Username: "bob", Password: "bob-pw", Client: f.client})
		second <- err
	}()
	select {
	case err := <-second:
		t.Fatalf("a second login hashed beside the abandoned one: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-abandoned; !errors.Is(err, engine.ErrInvalidCredentials) {
		t.Errorf("abandoned login with a wrong password: %v, want invalid credentials (its hash finished)", err)
	}
	if err := <-second; err != nil {
		t.Errorf("second login: %v", err)
	}
	if m := most.Load(); m > 1 {
		t.Errorf("%d hashes ran at once, want at most 1", m)
	}
}

// TestStuckHashTimesOut checks that a hash that never finishes (a helper that stopped
// answering) fails its login after HashTimeout and frees its slot for the next one.
func TestStuckHashTimesOut(t *testing.T) {
	var stuck atomic.Bool
	f := newFixture(t, func(cfg *engine.Config) {
		cfg.MaxConcurrentHashes = 1
		cfg.HashTimeout = 50 * time.Millisecond
		cfg.DeriveKey = func(ctx context.Context, password, salt []byte, p engine.HashParams, keyLen uint32) ([]byte, error) {
			if stuck.Load() {
				<-ctx.Done() // a helper that answers nothing; the wait ends with the context
				return nil, ctx.Err()
			}
			return argon2.IDKey(password, salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen), nil
		}
	})
	f.createUser("bob")
	stuck.Store(true)
	_, err := f.e.CreateSession(context.Background(), engine.CreateSessionRequest{Username: "bob", Password: "bob-pw", Client: f.client})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("login with a stuck hash: %v, want the hash timeout", err)
	}
	stuck.Store(false)
	f.login("bob", "bob-pw") // the slot is free again
}

// syncStore is a Syncer that counts its Sync calls and fails them with err.
type syncStore struct {
	engine.Store
	syncs atomic.Int32
	err   error
}

func (s *syncStore) Sync(context.Context) error { s.syncs.Add(1); return s.err }

// TestAlreadyDoneWaitsForSync checks that a call that succeeds because it finds its work
// already done (the session gone) first waits until the changes it saw are durable
// (engine.Syncer), and fails if that wait does: the change may be another call's, not yet
// synced.
func TestAlreadyDoneWaitsForSync(t *testing.T) {
	ctx := context.Background()
	failed := errors.New("injected: sync failed")
	for _, tc := range []struct {
		name string
		call func(f *fixture, gone engine.SessionInfo) error
	}{
		{"deleteSession", func(f *fixture, gone engine.SessionInfo) error { return f.e.DeleteSession(ctx, gone.AuthToken) }},
		{"logout", func(f *fixture, gone engine.SessionInfo) error { return f.e.Logout(ctx, gone.AuthToken) }},
		{"revoke by id", func(f *fixture, gone engine.SessionInfo) error {
			_, err := f.e.RevokeSessions(ctx, f.admin, engine.RevokeRequest{SessionIDs: []string{gone.ID}})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &syncStore{Store: memstore.New(memstore.Options{})}
			f := newFixtureOn(t, store, nil)
			f.createUser("alice")
			gone := f.login("alice", "alice-pw")
			if err := f.e.DeleteSession(ctx, gone.AuthToken); err != nil {
				t.Fatal(err)
			}
			before := store.syncs.Load()
			if err := tc.call(f, gone); err != nil {
				t.Fatalf("on a session already gone: %v", err)
			}
			if store.syncs.Load() == before {
				t.Error("succeeded on a session already gone without waiting for the store's sync")
			}
			store.err = failed
			if err := tc.call(f, gone); !errors.Is(err, failed) {
				t.Errorf("with the sync failing: %v, want %v", err, failed)
			}
		})
	}
}

// hangingStore is a memstore whose lookups by token wait for their context, as a Redis
// that accepts connections but never answers makes them.
type hangingStore struct{ engine.Store }

func (hangingStore) SessionByTokenHash(ctx context.Context, _ engine.TokenHash, _ time.Time) (*engine.Session, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// hangingSyncStore is a memstore whose syncs wait until released, as a disk that stops
// answering makes them.
type hangingSyncStore struct {
	engine.Store
	syncs   atomic.Int32
	release chan struct{}
}

func (s *hangingSyncStore) Sync(context.Context) error {
	s.syncs.Add(1)
	<-s.release
	return nil
}

// CheckStore is nil while the store answers lookups (no session found is an answer) and
// syncs, its sync's error once that fails, and ErrUnavailable when either gives no answer
// before the deadline; checks made while a sync hangs wait for that one sync.
func TestCheckStore(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	if err := f.e.CheckStore(ctx); err != nil {
		t.Errorf("CheckStore on a memstore = %v; want nil", err)
	}
	synced := &syncStore{Store: memstore.New(memstore.Options{})}
	s := newFixtureOn(t, synced, nil)
	before := synced.syncs.Load()
	if err := s.e.CheckStore(ctx); err != nil || synced.syncs.Load() != before+1 {
		t.Errorf("CheckStore on a store that syncs = %v after %d syncs; want nil after one", err, synced.syncs.Load()-before)
	}
	synced.err = errors.New("injected: sync failed")
	if err := s.e.CheckStore(ctx); !errors.Is(err, synced.err) {
		t.Errorf("CheckStore on a store whose sync fails = %v; want %v", err, synced.err)
	}

	h := newFixtureOn(t, hangingStore{memstore.New(memstore.Options{})}, nil)
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if err := h.e.CheckStore(short); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("CheckStore on a store whose lookups never answer = %v; want ErrUnavailable", err)
	}

	hanging := &hangingSyncStore{Store: memstore.New(memstore.Options{}), release: make(chan struct{})}
	close(hanging.release) // for the fixture's own syncs
	hs := newFixtureOn(t, hanging, nil)
	hanging.release = make(chan struct{})
	hanging.syncs.Store(0)
	for i := range 3 {
		probe, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		if err := hs.e.CheckStore(probe); !errors.Is(err, engine.ErrUnavailable) {
			t.Errorf("check %d on a store whose sync hangs = %v; want ErrUnavailable", i+1, err)
		}
		cancel()
	}
	if n := hanging.syncs.Load(); n != 1 {
		t.Errorf("three checks while a sync hangs started %d syncs; want the one", n)
	}
	close(hanging.release)
	if err := hs.e.CheckStore(ctx); err != nil {
		t.Errorf("CheckStore once the sync answers again = %v; want nil", err)
	}
}

// A new account's name hides nothing a reader would not see; names of every script, with
// the joiners some of them need, are fine.
func TestNewUsernameRules(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		name, refused string // refused: the reason's start, "" for accepted
	}{
		{"Carol Jones", ""},
		{"josé", ""}, // composed
		{"\u0639\u0644\u06cc\u200c\u0632\u0627\u062f\u0647", ""}, // Persian, with a zero-width non-joiner
		{"\u0915\u094d\u200d\u0937", ""},                         // Devanagari, with a zero-width joiner
		{"Мария", ""},
		{"carol ", "must not begin or end with white space"},
		{" carol", "must not begin or end with white space"},
		{"Carol  Jones", "must not contain two spaces in a row"},
		{"carol\u00a0jones", "must not contain white space other than U+0020 (got U+00A0)"},
		{"car\u200bol", "must not contain invisible characters (got U+200B)"},
		{"carol\u202e", "must not contain invisible characters (got U+202E)"},
		{"\ufeffcarol", "must not contain invisible characters (got U+FEFF)"},
		{"car\u034fol", "must not contain invisible characters (got U+034F)"},
		{"carol\ufe0f", "must not contain invisible characters (got U+FE0F)"},
		{"carol\U000e0100", "must not contain invisible characters (got U+E0100)"},
		{"carol\u3164", "must not contain invisible characters (got U+3164)"},
		{"carol\u2800", "must not contain invisible characters (got U+2800)"},
		{"jose\u0301", "must be in Unicode's composed form (NFC)"},
		{"car\tol", "must not contain control characters"},
	} {
		_, err := f.e.CreateAccount(context.Background(), f.admin, engine.CreateAccountRequest{Username: tc.name, Password: "pw"})
		var ve *engine.ValidationError
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%q: %v; want it accepted", tc.name, err)
		case tc.refused != "" && (!errors.As(err, &ve) || ve.Field != "username" || !strings.HasPrefix(ve.Reason, tc.refused)):
			t.Errorf("%q: %v; want username refused: %s", tc.name, err, tc.refused)
		}
	}
}

// Bootstrap makes the first admin on a store without accounts only: not again, and not on a
// store that holds other accounts.
func TestBootstrap(t *testing.T) {
	ctx := context.Background()
	withUser := memstore.New(memstore.Options{})
	if err := withUser.CreateAccount(ctx, &engine.Account{Username: "someone", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		store engine.Store
		want  []bool
	}{
		{"a new store", memstore.New(memstore.Options{}), []bool{true, false}},
		{"a store with an account", withUser, []bool{false}},
	} {
		e, err := engine.New(tc.store, testConfig(newFakeClock()))
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range tc.want {
			if created, err := e.Bootstrap(ctx, "admin", adminPassword); err != nil || created != want {
				t.Errorf("%s: Bootstrap #%d = %v, %v; want %v", tc.name, i+1, created, err, want)
			}
		}
		_, err = tc.store.GetAccount(ctx, "admin")
		if wantAdmin := tc.want[0]; (err == nil) != wantAdmin {
			t.Errorf("%s: the admin account after Bootstrap: %v; want it there: %v", tc.name, err, wantAdmin)
		}
		e.Close()
	}
}
