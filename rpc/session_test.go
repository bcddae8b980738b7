package rpc_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/sessiond/sessiond/rpc"
)

// TestPingSessionTokenGiven checks that pingSession tells a token left out (no token: it
// succeeds) from one given empty, which is a malformed token (12031) as for every method that
// needs one, so a client whose token variable is empty is not told its session was kept alive.
func TestPingSessionTokenGiven(t *testing.T) {
	tests := []struct {
		name   string
		params string // $TOKEN is a live session's token
		bearer bool   // send the live token as an HTTP Bearer token too
		code   int64  // 0: the result is {}
		kept   bool   // the session's idle clock was reset
	}{
		{"params left out", ``, false, 0, false},
		{"no members", `{}`, false, 0, false},
		{"null token", `{"authToken":null}`, false, 0, false},
		{"live token", `{"authToken":"$TOKEN"}`, false, 0, true},
		{"empty token", `{"authToken":""}`, false, rpc.CodeInvalidAuthToken, false},
		{"empty token, spaced", ` { "authToken" : "" } `, false, rpc.CodeInvalidAuthToken, false},
		{"bearer only", `{}`, true, 0, true},
		{"null token and a bearer", `{"authToken":null}`, true, 0, true}, // null is left out
		// The member is given, so the header does not fill it in.
		{"empty token and a bearer", `{"authToken":""}`, true, rpc.CodeInvalidAuthToken, false},
		// Params are checked before the token: an unknown member is -32602 first.
		{"empty token and an unknown member", `{"authToken":"","x":1}`, false, jsonrpc2.CodeInvalidParams, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSvc(t, nil)
			token := s.login("admin", adminPassword, map[string]any{"idleConnectionTimeoutSeconds": 60}).AuthToken
			s.clock.Advance(40 * time.Second)
			bearer := ""
			if tc.bearer {
				bearer = token
			}
			params := strings.ReplaceAll(tc.params, "$TOKEN", token)
			r := s.rawCall("pingSession", []byte(params), bearer, loopback)
			if r.code() != tc.code {
				t.Fatalf("got %v, want code %d", r, tc.code)
			}
			if tc.code == 0 && string(r.result) != `{}` {
				t.Errorf("result %s, want {}", r.result)
			}
			s.clock.Advance(40 * time.Second) // 80 s after login, 40 s after the ping
			if s.alive(token) != tc.kept {
				t.Errorf("session alive = %v after the ping, want %v", s.alive(token), tc.kept)
			}
		})
	}
}

// A NetX positional call skips its session key with null; an HTTP Bearer token fills it in,
// as it fills a key left out.
func TestBearerFillsNullSessionKey(t *testing.T) {
	s := newSvc(t, nil)
	token := s.login("admin", adminPassword, nil).AuthToken
	if r := s.rawCall("setUserPreference", []byte(`[null,{"label":"theme","value":"dark"}]`), token, loopback); r.err != nil || string(r.result) != "true" {
		t.Fatalf("setUserPreference with a null key and a bearer: %v", r)
	}
	if r := s.rawCall("getUserPreference", []byte(`[null,"theme"]`), token, loopback); r.err != nil || string(r.result) != `"dark"` {
		t.Errorf("getUserPreference with a null key and a bearer: %v", r)
	}
	if r := s.rawCall("getUserPreference", []byte(`[null,"theme"]`), "", loopback); r.code() != jsonrpc2.CodeInvalidParams || r.data()["field"] != "sessionKey" {
		t.Errorf("getUserPreference with a null key and no bearer: %v, want -32602 naming sessionKey", r)
	}
}

// permanentSession null is left out, as null is for every optional member: a temporary session.
func TestPermanentSessionNull(t *testing.T) {
	s := newSvc(t, nil)
	r := s.rawCall("createSession", []byte(`{"username":"admin","password":"`+adminPassword+`","permanentSession":null}`), "", loopback)
	if r.err != nil || !strings.Contains(string(r.result), `"permanentSession":false`) {
		t.Errorf("createSession with permanentSession null: %v %s; want a temporary session", r, r.result)
	}
}
