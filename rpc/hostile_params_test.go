package rpc_test

// TestHostileParams checks how the real methods answer hostile params that the protocol layer
// passes on as valid JSON: duplicate members (which would let a proxy and sessiond read
// different values), huge and long numbers, deep nesting and control characters are each
// -32602 naming the member, and nothing is created.

import (
	"strings"
	"testing"

	"github.com/sourcegraph/jsonrpc2"
)

func TestHostileParams(t *testing.T) {
	deep := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	tests := []struct {
		name   string
		method string
		params string // $ADMIN is an admin token, $PW the admin password
		field  string // the path of the member named
	}{
		{"duplicate username, the last one an admin", "createSession", `{"username":"nobody","username":"admin","password":"$PW"}`, "username"},
		{"duplicate password", "createSession", `{"username":"admin","password":"x","password":"$PW"}`, "password"},
		{"duplicate escaped the same", "createSession", `{"username":"admin","user\u006eame":"nobody","password":"$PW"}`, "username"},
		{"duplicate in a nested object", "createSession", `{"username":"admin","password":"$PW","defaultResponseOptions":{"dataFormat":"arrays","dataFormat":"objects"}}`, "defaultResponseOptions.dataFormat"},
		{"duplicate token", "createAccount", `{"authToken":"junk","authToken":"$ADMIN","username":"mallory","password":"x"}`, "authToken"},
		{"duplicate roles", "createAccount", `{"authToken":"$ADMIN","username":"mallory","password":"x","roles":[],"roles":["admin"]}`, "roles"},
		{"duplicate in a NetX bean", "setUserPreference", `["$ADMIN",{"label":"a","label":"b","value":"c"}]`, "bean.label"},
		{"duplicate NetX login", "authenticate", `{"login":"nobody","login":"admin","password":"$PW"}`, "login"},
		{"duplicate escaped in a nested object", "createSession", `{"username":"admin","password":"$PW","defaultResponseOptions":{"dataFormat":"arrays","data\u0046ormat":"objects"}}`, "defaultResponseOptions.dataFormat"},
		{"duplicate in an object of an array", "createSession", `{"x":[{"a":1},{"b":1,"b":2}]}`, "x.b"},
		{"unknown member in a nested object", "alterSession", `{"authToken":"$ADMIN","defaultResponseOptions":{"foo":1}}`, "defaultResponseOptions.foo"},
		{"unknown member in the bean", "setUserPreference", `["$ADMIN",{"label":"a","value":"b","extra":1}]`, "bean.extra"},
		{"duplicate among many members", "createSession", `{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k18":18,"k19":19,"k3":0}`, "k3"},
		{"same name in sibling objects is no duplicate", "createSession", `{"username":"admin","password":"$PW","defaultResponseOptions":{"dataFormat":"objects"},"description":{"dataFormat":1}}`, "description"},
		{"huge number", "createSession", `{"username":"admin","password":"$PW","idleConnectionTimeoutSeconds":1e999}`, "idleConnectionTimeoutSeconds"},
		{"long number", "createSession", `{"username":"admin","password":"$PW","idleCursorTimeoutSeconds":` + strings.Repeat("9", 5000) + `}`, "idleCursorTimeoutSeconds"},
		{"fraction for an integer", "createAccount", `{"authToken":"$ADMIN","username":"mallory","password":"x","lockoutWaitMinutes":1.5}`, "lockoutWaitMinutes"},
		{"negative zero overflow", "createSession", `{"username":"admin","password":"$PW","idleConnectionTimeoutSeconds":-9223372036854775809}`, "idleConnectionTimeoutSeconds"},
		{"deep nesting in a member", "createSession", `{"username":"admin","password":"$PW","description":` + deep + `}`, "description"},
		{"NUL in a username", "createSession", `{"username":"ad\u0000min","password":"$PW"}`, "username"},
		{"control character in a new username", "createAccount", `{"authToken":"$ADMIN","username":"mal\u001blory","password":"x"}`, "username"},
		{"null for a required member", "createSession", `{"username":null,"password":"$PW"}`, "username"},
	}
	// Member names inside strings are not members: these succeed.
	s := newSvc(t, nil)
	for _, description := range []string{`"username":"x","username":"y"`, `{\"a\":1,\"a\":2}`, `\\":"`} {
		r := s.call("createSession", map[string]any{"username": "admin", "password": adminPassword, "description": description})
		if r.err != nil {
			t.Errorf("description %q: %v", description, r)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSvc(t, nil)
			admin := s.login("admin", adminPassword, nil)
			before := len(s.call("listSessions", map[string]any{"authToken": admin.AuthToken}).result)
			params := strings.NewReplacer("$ADMIN", admin.AuthToken, "$PW", adminPassword).Replace(tc.params)
			r := s.rawCall(tc.method, []byte(params), "", loopback)
			if r.code() != jsonrpc2.CodeInvalidParams || r.data()["field"] != tc.field {
				t.Fatalf("got %v, want -32602 naming %q", r, tc.field)
			}
			if s.account("mallory") != nil {
				t.Error("an account was created")
			}
			if after := len(s.call("listSessions", map[string]any{"authToken": admin.AuthToken}).result); after != before {
				t.Error("a session was created")
			}
		})
	}
}
