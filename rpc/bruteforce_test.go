package rpc_test

// TestLoginFailuresLookAlike checks that an unknown user, a wrong password and a locked account
// (even with the right password) get byte-for-byte the same answer on the wire, apart from the
// username the message repeats; the lockout and throttling tests check those rules over the wire.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/rpc"
)

// bruteFixture has "victim" (default lockout: 5 failures, 15 minutes) and "locked", locked
// now by failures from another address.
func bruteFixture(t *testing.T) (*svc, string) {
	t.Helper()
	s := newSvc(t, nil)
	admin := s.login("admin", adminPassword, nil)
	for _, user := range []string{"victim", "locked"} {
		s.must("createAccount", map[string]any{"authToken": admin.AuthToken, "username": user, "password": user + "-password"}, nil)
	}
	for range 5 {
		s.rawCall("createSession", mustJSON(map[string]any{"username": "locked", "password": "guess"}), "", "10.9.9.9")
	}
	if err := s.eng.Settle(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s.account("locked").LockedUntil.IsZero() {
		t.Fatal("fixture: locked is not locked")
	}
	return s, admin.AuthToken
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// wireBytes renders an error reply the way the protocol layer sends it, with the username
// the message repeats replaced by NAME.
func wireBytes(t *testing.T, r reply, username string) string {
	t.Helper()
	if r.err == nil {
		return "result " + string(r.result)
	}
	b, err := json.Marshal(r.err)
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.ReplaceAll(b, []byte("["+username+"]"), []byte("[NAME]")))
}

func TestLoginFailuresLookAlike(t *testing.T) {
	s, _ := bruteFixture(t)
	cases := []struct{ name, username, password string }{
		{"unknown user", "nobody", "victim-password"},
		{"unknown user, mixed case", "NoBody", "pw-Qx7-unknown"},
		{"wrong password", "victim", "not-the-password"},
		{"wrong password, other case", "VICTIM", "not-the-password"},
		{"empty password", "victim", ""},
		{"long password", "victim", strings.Repeat("pw-Qx7-long", 23)},
		{"locked account, wrong password", "locked", "guess"},
		{"locked account, right password", "locked", "locked-password"},
	}
	var first string
	for i, tc := range cases {
		// Each from its own address, so throttling plays no part.
		addr := fmt.Sprintf("10.0.0.%d", i+1)
		r := s.rawCall("createSession", mustJSON(map[string]any{"username": tc.username, "password": tc.password}), "", addr)
		if r.code() != rpc.CodeInvalidCredentials {
			t.Fatalf("%s: got %v, want 450", tc.name, r)
		}
		if want := "Not able to validate the credentials for user [" + tc.username + "]."; r.err.Message != want {
			t.Errorf("%s: message %q, want %q", tc.name, r.err.Message, want)
		}
		got := wireBytes(t, r, tc.username)
		if first == "" {
			first = got
		} else if got != first {
			t.Errorf("%s: answer differs on the wire:\n got %s\nwant %s", tc.name, got, first)
		}
		if tc.password != "" && strings.Contains(got, tc.password) {
			t.Errorf("%s: the answer repeats the password", tc.name)
		}

		// NetX: every failure is the string "-1", not an error.
		r = s.rawCall("authenticate", mustJSON([]string{tc.username, tc.password}), "", addr)
		if r.err != nil || string(r.result) != `"-1"` {
			t.Errorf("%s: authenticate gave %v, want \"-1\"", tc.name, r)
		}
	}
	// victim has failed more than five times above (createSession and authenticate both
	// count), so it is locked now: its right password gets the same answer too.
	if err := s.eng.Settle(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s.account("victim").LockedUntil.IsZero() {
		t.Fatal("victim is not locked after its failures")
	}
	r := s.rawCall("createSession", mustJSON(map[string]any{"username": "victim", "password": "victim-password"}), "", "10.0.1.1")
	if got := wireBytes(t, r, "victim"); got != first {
		t.Errorf("victim once locked: %s, want %s", got, first)
	}
}

// TestLockoutOverTheWire checks per-account lockout: five failures lock the account for 15
// minutes whatever the password and from whatever address, describeAccounts shows it, and it
// ends on time.
func TestLockoutOverTheWire(t *testing.T) {
	s := newSvc(t, nil)
	admin := s.login("admin", adminPassword, nil)
	s.must("createAccount", map[string]any{"authToken": admin.AuthToken, "username": "victim", "password": "victim-password"}, nil)
	good := mustJSON(map[string]any{"username": "victim", "password": "victim-password"})
	bad := mustJSON(map[string]any{"username": "victim", "password": "guess"})
	for i := range 4 {
		if r := s.rawCall("createSession", bad, "", fmt.Sprintf("10.1.0.%d", i)); r.code() != rpc.CodeInvalidCredentials {
			t.Fatalf("failure %d: %v", i+1, r)
		}
	}
	// Four failures do not lock, and a success resets the count.
	if r := s.rawCall("createSession", good, "", "10.1.1.1"); r.err != nil {
		t.Fatalf("after 4 failures: %v", r)
	}
	for i := range 5 {
		s.rawCall("createSession", bad, "", fmt.Sprintf("10.1.2.%d", i))
	}
	if r := s.rawCall("createSession", good, "", "10.1.3.1"); r.code() != rpc.CodeInvalidCredentials {
		t.Fatalf("right password on a locked account: %v, want 450", r)
	}
	if r := s.rawCall("authenticate", mustJSON([]string{"victim", "victim-password"}), "", "10.1.3.2"); string(r.result) != `"-1"` {
		t.Fatalf("authenticate on a locked account: %v", r)
	}
	var described struct {
		Accounts []struct {
			LockedUntil *string `json:"lockedUntil"`
		}
	}
	s.must("describeAccounts", map[string]any{"authToken": admin.AuthToken, "usernames": []string{"victim"}}, &described)
	wantUntil := s.clock.Now().Add(15 * time.Minute).UTC().Format(time.RFC3339)
	if len(described.Accounts) != 1 || described.Accounts[0].LockedUntil == nil || *described.Accounts[0].LockedUntil != wantUntil {
		t.Errorf("describeAccounts: %+v, want lockedUntil %s", described.Accounts, wantUntil)
	}
	s.clock.Advance(15*time.Minute - time.Second)
	if r := s.rawCall("createSession", good, "", "10.1.4.1"); r.code() != rpc.CodeInvalidCredentials {
		t.Fatalf("a second before the lockout ends: %v", r)
	}
	s.clock.Advance(time.Second)
	if r := s.rawCall("createSession", good, "", "10.1.4.2"); r.err != nil {
		t.Fatalf("after the lockout: %v", r)
	}
}

// TestThrottlePerAddress checks per-address throttling: 20 failed logins from one address in a
// minute make its logins fail (1008, or "-1" for authenticate) even with the right password,
// while other addresses are unaffected, until the window is over.
func TestThrottlePerAddress(t *testing.T) {
	s := newSvc(t, nil)
	admin := s.login("admin", adminPassword, nil)
	s.must("createAccount", map[string]any{"authToken": admin.AuthToken, "username": "user", "password": "user-password"}, nil)
	const attacker = "203.0.113.7"
	for i := range 20 {
		// Different unknown usernames: no account lockout is involved.
		r := s.rawCall("createSession", mustJSON(map[string]any{"username": fmt.Sprintf("guess%d", i), "password": "x"}), "", attacker)
		if r.code() != rpc.CodeInvalidCredentials {
			t.Fatalf("failure %d: %v", i+1, r)
		}
	}
	good := mustJSON(map[string]any{"username": "user", "password": "user-password"})
	r := s.rawCall("createSession", good, "", attacker)
	if r.code() != rpc.CodeLoginThrottled || r.data()["reason"] != "loginThrottled" {
		t.Fatalf("throttled address, right password: %v, want 1008 loginThrottled", r)
	}
	if r := s.rawCall("authenticate", mustJSON([]string{"user", "user-password"}), "", attacker); string(r.result) != `"-1"` {
		t.Fatalf("throttled authenticate: %v, want \"-1\"", r)
	}
	if r := s.rawCall("createSession", good, "", "203.0.113.8"); r.err != nil {
		t.Fatalf("another address: %v", r)
	}
	if s.account("user").LockedUntil.After(s.clock.Now()) {
		t.Fatal("throttling locked the account")
	}
	s.clock.Advance(time.Minute)
	if r := s.rawCall("createSession", good, "", attacker); r.err != nil {
		t.Fatalf("after the window: %v", r)
	}
	// Only logins are throttled: a session keeps working from a throttled address.
	for range 20 {
		s.rawCall("createSession", mustJSON(map[string]any{"username": "nobody", "password": "x"}), "", attacker)
	}
	if r := s.rawCall("createSession", good, "", attacker); r.code() != rpc.CodeLoginThrottled {
		t.Fatalf("throttled again: %v", r)
	}
	if r := s.rawCall("pingSession", mustJSON(map[string]any{"authToken": admin.AuthToken}), "", attacker); r.err != nil {
		t.Fatalf("a valid session from a throttled address: %v", r)
	}
}
