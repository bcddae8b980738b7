package rpc_test

// TestAuthorization checks every method of rpc.Methods against every kind of caller (no token,
// malformed, unknown, expired, another account's, own, admin), in each way a token can be
// given, for exactly the outcome API.md and the README prescribe.

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/schemas"
)

// caller is the kind of token a request carries.
type caller string

const (
	noToken        caller = "no token"
	malformedToken caller = "malformed token"
	unknownToken   caller = "unknown token"
	expiredToken   caller = "expired token"
	otherToken     caller = "another account's token"
	ownToken       caller = "own token"
	adminToken     caller = "admin token"
)

var callers = []caller{noToken, malformedToken, unknownToken, expiredToken, otherToken, ownToken, adminToken}

// The 12031 message API.md prescribes, word for word.
const invalidAuthTokenMessage = "'authToken' does not match any existing session. Use a valid 'authToken' or use 'createSession' to create a valid 'authToken'."

// authzFixture has three accounts: admin (the admin role), alice ("own": the account whose
// data every request is about) and bob ("another account", not an admin).
type authzFixture struct {
	*svc
	admin, alice, bob sessionObj
	// target is a second session of alice: the object of the id-based calls.
	target sessionObj
	// expired is a token of alice whose session's idle clock has run out.
	expired string
	// unknown is well formed but was never issued; malformed is alice's token with one
	// character changed, so its checksum fails.
	unknown, malformed string
}

func newAuthzFixture(t *testing.T) *authzFixture {
	t.Helper()
	f := &authzFixture{svc: newSvc(t, nil)}
	f.admin = f.login("admin", adminPassword, nil)
	for _, user := range []string{"alice", "bob"} {
		f.must("createAccount", map[string]any{"authToken": f.admin.AuthToken, "username": user, "password": user + "-password"}, nil)
	}
	f.alice = f.login("alice", "alice-password", nil)
	f.bob = f.login("bob", "bob-password", nil)
	f.target = f.login("alice", "alice-password", map[string]any{"description": "target"})
	short := f.login("alice", "alice-password", map[string]any{"idleConnectionTimeoutSeconds": 60})
	f.expired = short.AuthToken
	var stored bool
	f.must("setUserPreference", []any{f.alice.AuthToken, map[string]string{"label": "theme", "value": "alice-dark"}}, &stored)
	if !stored {
		t.Fatal("setUserPreference for alice returned false")
	}
	f.clock.Advance(2 * time.Minute) // the short session expires; the others have an hour
	if f.alive(f.expired) || !f.alive(f.alice.AuthToken) {
		t.Fatal("fixture: the expired token is still alive or alice's is not")
	}
	tok, err := engine.NewToken(strings.NewReader(strings.Repeat("u", 64)), false)
	if err != nil {
		t.Fatal(err)
	}
	f.unknown = tok
	last := f.alice.AuthToken[len(f.alice.AuthToken)-1]
	flip := byte('A')
	if last == 'A' {
		flip = 'B'
	}
	f.malformed = f.alice.AuthToken[:len(f.alice.AuthToken)-1] + string(flip)
	return f
}

// token returns the token a kind of caller presents ("" for none).
func (f *authzFixture) token(c caller) string {
	switch c {
	case malformedToken:
		return f.malformed
	case unknownToken:
		return f.unknown
	case expiredToken:
		return f.expired
	case otherToken:
		return f.bob.AuthToken
	case ownToken:
		return f.alice.AuthToken
	case adminToken:
		return f.admin.AuthToken
	}
	return ""
}

// session returns the caller's own session, for the valid callers.
func (f *authzFixture) session(c caller) sessionObj {
	switch c {
	case otherToken:
		return f.bob
	case ownToken:
		return f.alice
	case adminToken:
		return f.admin
	}
	f.t.Fatalf("no session for %s", c)
	return sessionObj{}
}

// outcome is what one call must produce: an error code (with data.field for -32602) or a
// result that check accepts.
type outcome struct {
	code  int64
	field string
	check func(t *testing.T, f *authzFixture, c caller, result json.RawMessage)
}

func fails(code int64) outcome { return outcome{code: code} }

// required is -32602 naming the missing token member.
func required(field string) outcome { return outcome{code: jsonrpc2.CodeInvalidParams, field: field} }

func succeeds(check func(t *testing.T, f *authzFixture, c caller, result json.RawMessage)) outcome {
	return outcome{check: check}
}

var (
	invalidToken = fails(rpc.CodeInvalidAuthToken)
	denied       = fails(rpc.CodePermissionDenied)
)

// every gives one outcome for every caller.
func every(o outcome) map[caller]outcome {
	m := map[caller]outcome{}
	for _, c := range callers {
		m[c] = o
	}
	return m
}

// tokenRule builds the usual table of a method that needs a token: none is -32602 naming the
// token member, malformed, unknown and expired tokens are 12031, and the valid callers get
// what is given.
func tokenRule(field string, other, own, admin outcome) map[caller]outcome {
	return map[caller]outcome{
		noToken: required(field), malformedToken: invalidToken, unknownToken: invalidToken, expiredToken: invalidToken,
		otherToken: other, ownToken: own, adminToken: admin,
	}
}

func decode[T any](t *testing.T, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("result %s: %v", raw, err)
	}
	return v
}

func expectJSON(want string) func(*testing.T, *authzFixture, caller, json.RawMessage) {
	return func(t *testing.T, _ *authzFixture, _ caller, result json.RawMessage) {
		t.Helper()
		if string(result) != want {
			t.Errorf("result %s, want %s", result, want)
		}
	}
}

// callerSessionEnded checks the caller's session is gone and alice's target is not.
func callerSessionEnded(t *testing.T, f *authzFixture, c caller) {
	t.Helper()
	if f.alive(f.session(c).AuthToken) {
		t.Errorf("the caller's session is still alive")
	}
	if c != ownToken && !f.alive(f.alice.AuthToken) || !f.alive(f.target.AuthToken) {
		t.Errorf("another session ended too")
	}
}

// nothingEnded checks no valid session was ended by a call with a bad token.
func nothingEnded(t *testing.T, f *authzFixture) {
	t.Helper()
	for _, s := range []sessionObj{f.admin, f.alice, f.bob, f.target} {
		if !f.alive(s.AuthToken) {
			t.Errorf("%s's session %s ended", s.Username, s.SessionID)
		}
	}
}

// authzRow is one method's contract: params are its named params without the token, and
// want the outcome for each kind of caller.
type authzRow struct {
	method string
	params map[string]any
	want   map[caller]outcome
}

// authzTable is the whole contract, one row per method of rpc.Methods, as API.md §2 and the
// README's decisions prescribe.
func authzTable() []authzRow {
	return []authzRow{
		{"createSession", map[string]any{"username": "alice", "password": "alice-password"},
			every(succeeds(func(t *testing.T, f *authzFixture, _ caller, r json.RawMessage) {
				s := decode[sessionObj](t, r)
				if s.Username != "alice" || s.PermanentSession || !f.alive(s.AuthToken) {
					t.Errorf("not a live temporary session of alice: %s", r)
				}
			}))},
		{"alterSession", map[string]any{"description": "altered"},
			tokenRule("authToken", altered, altered, altered)},
		{"deleteSession", nil, map[caller]outcome{
			noToken: required("authToken"), malformedToken: invalidToken,
			// A well-formed token whose session is gone: deleting it again is not an error.
			unknownToken: succeeds(emptyAndNothingEnded), expiredToken: succeeds(emptyAndNothingEnded),
			otherToken: succeeds(emptyAndCallerEnded), ownToken: succeeds(emptyAndCallerEnded), adminToken: succeeds(emptyAndCallerEnded),
		}},
		{"describeSessions", map[string]any{"sessionIds": []string{"$target"}},
			tokenRule("authToken", succeeds(describedNothing), succeeds(describedTarget), succeeds(describedTarget))},
		{"listSessions", nil,
			tokenRule("authToken", succeeds(listedOnly("bob")), succeeds(listedOnly("alice")), succeeds(listedAll))},
		{"pingSession", nil, map[caller]outcome{
			noToken: succeeds(expectJSON(`{}`)), malformedToken: invalidToken, unknownToken: invalidToken, expiredToken: invalidToken,
			otherToken: succeeds(expectJSON(`{}`)), ownToken: succeeds(expectJSON(`{}`)), adminToken: succeeds(expectJSON(`{}`)),
		}},
		{"revokeSessions", map[string]any{"sessionIds": []string{"$target"}},
			tokenRule("authToken", succeeds(revoked(0)), succeeds(revoked(1)), succeeds(revoked(1)))},
		{"createAccount", map[string]any{"username": "carol", "password": "carol-password"},
			tokenRule("authToken", denied, denied, succeeds(func(t *testing.T, f *authzFixture, _ caller, r json.RawMessage) {
				a := decode[accountObj](t, r)
				if a.Username != "carol" || len(a.Roles) != 0 || f.account("carol") == nil {
					t.Errorf("carol not created as a non-admin: %s", r)
				}
			}))},
		{"alterAccount", map[string]any{"username": "alice", "accountDescription": "changed"},
			tokenRule("authToken", denied, succeeds(describedAs("changed")), succeeds(describedAs("changed")))},
		{"dropAccounts", map[string]any{"usernames": []string{"alice"}},
			tokenRule("authToken", denied, denied, succeeds(func(t *testing.T, f *authzFixture, _ caller, r json.RawMessage) {
				expectJSON(`{"dropped":["alice"]}`)(t, f, adminToken, r)
				if f.account("alice") != nil || f.alive(f.alice.AuthToken) || f.alive(f.target.AuthToken) {
					t.Errorf("alice or her sessions survived being dropped")
				}
			}))},
		{"listAccounts", nil,
			tokenRule("authToken", denied, denied, succeeds(accountsNamed("admin", "alice", "bob")))},
		{"describeAccounts", map[string]any{"usernames": []string{"alice"}},
			tokenRule("authToken", denied, succeeds(accountsNamed("alice")), succeeds(accountsNamed("alice")))},
		{"authenticate", map[string]any{"login": "alice", "password": "alice-password"},
			every(succeeds(func(t *testing.T, f *authzFixture, _ caller, r json.RawMessage) {
				key := decode[string](t, r)
				if key == "-1" || !f.alive(key) {
					t.Errorf("authenticate gave %s, want a live session key", r)
				}
			}))},
		{"setUserPreference", map[string]any{"bean": map[string]string{"label": "theme", "value": "light"}}, map[caller]outcome{
			// NetX: false when the key is not valid, never an error.
			noToken: required("sessionKey"), malformedToken: succeeds(prefNotSet), unknownToken: succeeds(prefNotSet), expiredToken: succeeds(prefNotSet),
			otherToken: succeeds(prefSet("bob")), ownToken: succeeds(prefSet("alice")), adminToken: succeeds(prefSet("admin")),
		}},
		{"getUserPreference", map[string]any{"label": "theme"},
			// Preferences are per account: only alice sees hers.
			tokenRule("sessionKey", succeeds(expectJSON(`null`)), succeeds(expectJSON(`"alice-dark"`)), succeeds(expectJSON(`null`)))},
		{"logout", nil, map[caller]outcome{
			// NetX: logout always answers true.
			noToken: required("sessionKey"), malformedToken: succeeds(trueAndNothingEnded), unknownToken: succeeds(trueAndNothingEnded), expiredToken: succeeds(trueAndNothingEnded),
			otherToken: succeeds(trueAndCallerEnded), ownToken: succeeds(trueAndCallerEnded), adminToken: succeeds(trueAndCallerEnded),
		}},
		{"rpc.discover", nil, every(succeeds(func(t *testing.T, _ *authzFixture, _ caller, r json.RawMessage) {
			doc := decode[map[string]any](t, r)
			if doc["openrpc"] == nil || doc["methods"] == nil {
				t.Errorf("not an OpenRPC document: %.100s", r)
			}
		}))},
	}
}

type accountObj struct {
	Username           string   `json:"username"`
	AccountDescription string   `json:"accountDescription"`
	Roles              []string `json:"roles"`
}

func checkAltered(t *testing.T, f *authzFixture, c caller, r json.RawMessage) {
	t.Helper()
	s := decode[sessionObj](t, r)
	mine := f.session(c)
	if s.SessionID != mine.SessionID || s.Username != mine.Username || s.Description != "altered" || s.AuthToken != mine.AuthToken {
		t.Errorf("altered %s, want the caller's own session %s", r, mine.SessionID)
	}
	var described struct{ Sessions []sessionObj }
	f.must("describeSessions", map[string]any{"authToken": f.admin.AuthToken, "sessionIds": []string{f.target.SessionID}}, &described)
	if len(described.Sessions) != 1 || described.Sessions[0].Description != "target" {
		t.Errorf("another session was altered: %+v", described.Sessions)
	}
}

var altered = succeeds(checkAltered)

func emptyAndNothingEnded(t *testing.T, f *authzFixture, _ caller, r json.RawMessage) {
	expectJSON(`{}`)(t, f, "", r)
	nothingEnded(t, f)
}

func emptyAndCallerEnded(t *testing.T, f *authzFixture, c caller, r json.RawMessage) {
	expectJSON(`{}`)(t, f, c, r)
	callerSessionEnded(t, f, c)
}

func trueAndNothingEnded(t *testing.T, f *authzFixture, _ caller, r json.RawMessage) {
	expectJSON(`true`)(t, f, "", r)
	nothingEnded(t, f)
}

func trueAndCallerEnded(t *testing.T, f *authzFixture, c caller, r json.RawMessage) {
	expectJSON(`true`)(t, f, c, r)
	callerSessionEnded(t, f, c)
}

func describedNothing(t *testing.T, f *authzFixture, c caller, r json.RawMessage) {
	expectJSON(`{"sessions":[]}`)(t, f, c, r)
}

func describedTarget(t *testing.T, f *authzFixture, _ caller, r json.RawMessage) {
	t.Helper()
	res := decode[struct{ Sessions []sessionObj }](t, r)
	if len(res.Sessions) != 1 || res.Sessions[0].SessionID != f.target.SessionID || res.Sessions[0].Description != "target" {
		t.Errorf("described %s, want alice's target session", r)
	}
	if strings.Contains(string(r), f.target.AuthToken) {
		t.Errorf("a session described by id carries its token")
	}
}

// listedOnly checks a listing holds exactly user's live sessions, without tokens.
func listedOnly(user string) func(*testing.T, *authzFixture, caller, json.RawMessage) {
	return func(t *testing.T, f *authzFixture, _ caller, r json.RawMessage) {
		t.Helper()
		want := map[string][]string{"alice": {f.alice.SessionID, f.target.SessionID}, "bob": {f.bob.SessionID}}[user]
		checkListed(t, r, want)
	}
}

func listedAll(t *testing.T, f *authzFixture, _ caller, r json.RawMessage) {
	checkListed(t, r, []string{f.admin.SessionID, f.alice.SessionID, f.bob.SessionID, f.target.SessionID})
}

func checkListed(t *testing.T, r json.RawMessage, want []string) {
	t.Helper()
	res := decode[struct{ Sessions []sessionObj }](t, r)
	var got []string
	for _, s := range res.Sessions {
		got = append(got, s.SessionID)
		if s.AuthToken != "" {
			t.Errorf("listed session %s carries a token", s.SessionID)
		}
	}
	sort.Strings(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}
}

func revoked(n int) func(*testing.T, *authzFixture, caller, json.RawMessage) {
	return func(t *testing.T, f *authzFixture, c caller, r json.RawMessage) {
		t.Helper()
		expectJSON(fmt.Sprintf(`{"revoked":%d}`, n))(t, f, c, r)
		if f.alive(f.target.AuthToken) != (n == 0) {
			t.Errorf("target alive = %v after revoking %d", f.alive(f.target.AuthToken), n)
		}
	}
}

func describedAs(description string) func(*testing.T, *authzFixture, caller, json.RawMessage) {
	return func(t *testing.T, f *authzFixture, _ caller, r json.RawMessage) {
		t.Helper()
		a := decode[accountObj](t, r)
		if a.Username != "alice" || a.AccountDescription != description || f.account("alice").Description != description {
			t.Errorf("alterAccount gave %s, want alice described %q", r, description)
		}
	}
}

func accountsNamed(names ...string) func(*testing.T, *authzFixture, caller, json.RawMessage) {
	return func(t *testing.T, _ *authzFixture, _ caller, r json.RawMessage) {
		t.Helper()
		res := decode[struct{ Accounts []accountObj }](t, r)
		var got []string
		for _, a := range res.Accounts {
			got = append(got, a.Username)
		}
		if !slices.Equal(got, names) {
			t.Errorf("accounts %v, want %v", got, names)
		}
		for _, secret := range []string{"password", "Hash", "argon2"} {
			if strings.Contains(string(r), secret) {
				t.Errorf("an account object mentions %q: %s", secret, r)
			}
		}
	}
}

func prefNotSet(t *testing.T, f *authzFixture, c caller, r json.RawMessage) {
	t.Helper()
	expectJSON(`false`)(t, f, c, r)
	for user, want := range map[string]string{"alice": "alice-dark", "bob": "<unset>", "admin": "<unset>"} {
		if got := f.preference(user, "theme"); got != want {
			t.Errorf("%s's theme is %q, want %q", user, got, want)
		}
	}
}

func prefSet(owner string) func(*testing.T, *authzFixture, caller, json.RawMessage) {
	return func(t *testing.T, f *authzFixture, c caller, r json.RawMessage) {
		t.Helper()
		expectJSON(`true`)(t, f, c, r)
		for user, want := range map[string]string{"alice": "alice-dark", "bob": "<unset>", "admin": "<unset>"} {
			if user == owner {
				want = "light"
			}
			if got := f.preference(user, "theme"); got != want {
				t.Errorf("%s's theme is %q, want %q", user, got, want)
			}
		}
	}
}

// delivery is how the token reaches the method: as a named member, in its position (NetX), or
// in an HTTP Authorization: Bearer header.
type delivery string

const (
	named      delivery = "named"
	positional delivery = "positional"
	bearer     delivery = "bearer"
)

// request builds the params and bearer token of one call.
func request(m rpc.Method, params map[string]any, token string, how delivery, f *authzFixture) (json.RawMessage, string) {
	values := map[string]any{}
	for k, v := range params {
		if ids, ok := v.([]string); ok && len(ids) == 1 && ids[0] == "$target" {
			v = []string{f.target.SessionID}
		}
		values[k] = v
	}
	tokenMember := m.TokenField
	if tokenMember == "" {
		tokenMember = "authToken" // a method that takes no token: any token is an unknown member
	}
	var raw []byte
	switch how {
	case bearer:
		raw, _ = json.Marshal(values)
		return raw, token
	case positional:
		items := make([]any, len(m.Positional))
		for i, name := range m.Positional {
			if name == m.TokenField {
				if token != "" {
					items[i] = token
				}
				continue
			}
			items[i] = values[name]
		}
		raw, _ = json.Marshal(items)
	default:
		if token != "" {
			values[tokenMember] = token
		}
		raw, _ = json.Marshal(values)
	}
	return raw, ""
}

func TestAuthorization(t *testing.T) {
	table := authzTable()
	covered := map[string]bool{}
	for _, row := range table {
		covered[row.method] = true
	}
	for _, m := range rpc.Methods {
		if !covered[m.Name] {
			t.Errorf("method %s is not in the authorization table", m.Name)
		}
	}
	if len(table) != len(rpc.Methods) {
		t.Errorf("the table has %d rows for %d methods", len(table), len(rpc.Methods))
	}
	byName := map[string]rpc.Method{}
	for _, m := range rpc.Methods {
		byName[m.Name] = m
	}
	for _, row := range table {
		m, ok := byName[row.method]
		if !ok {
			t.Errorf("the table has %s, which is not a method", row.method)
			continue
		}
		ways := []delivery{named, bearer}
		if m.Positional != nil {
			ways = append(ways, positional)
		}
		for _, how := range ways {
			for _, c := range callers {
				want, ok := row.want[c]
				if !ok {
					t.Errorf("%s: no outcome for %s", row.method, c)
					continue
				}
				if m.TokenField == "" && c != noToken {
					if how == named {
						want = outcome{code: jsonrpc2.CodeInvalidParams, field: "authToken"} // unknown member
					} else if how == bearer {
						want = row.want[noToken] // the header is ignored
					}
				}
				t.Run(fmt.Sprintf("%s/%s/%s", row.method, how, c), func(t *testing.T) {
					f := newAuthzFixture(t)
					params, bearerToken := request(m, row.params, f.token(c), how, f)
					got := f.rawCall(m.Name, params, bearerToken, loopback)
					checkOutcome(t, f, m, c, got, want)
				})
			}
		}
	}
}

func checkOutcome(t *testing.T, f *authzFixture, m rpc.Method, c caller, got reply, want outcome) {
	t.Helper()
	if got.code() != want.code {
		t.Fatalf("got %v, want code %d", got, want.code)
	}
	if got.err == nil {
		if err := schemas.ValidateResult(m.Name, got.result); err != nil {
			t.Errorf("result does not match its schema: %v", err)
		}
		want.check(t, f, c, got.result)
		return
	}
	data := got.data()
	switch {
	case want.code == jsonrpc2.CodeInvalidParams:
		if got.err.Message != "Invalid params" || data["field"] != want.field {
			t.Errorf("got %v, want Invalid params naming %q", got, want.field)
		}
	default:
		if !slices.Contains(m.Errors, int(want.code)) {
			t.Errorf("%s answers %d, which its Errors (the OpenRPC document) do not list: %v", m.Name, want.code, m.Errors)
		}
		for _, ec := range rpc.ErrorCodes {
			if int64(ec.Code) == want.code && (got.err.Message != ec.Message || data["reason"] != ec.Reason || len(data) != 1) {
				t.Errorf("got %v, want message %q and data {reason: %q}", got, ec.Message, ec.Reason)
			}
		}
		if want.code == rpc.CodeInvalidAuthToken && got.err.Message != invalidAuthTokenMessage {
			t.Errorf("12031 message %q, want API.md's", got.err.Message)
		}
	}
	// No call with a bad or foreign token may end a session it does not own.
	if c != ownToken && c != adminToken && c != otherToken {
		nothingEnded(t, f)
	}
}

// TestAuthorizationCrossAccount checks the finer cross-account rules: what a non-admin may not
// do to another account or to its own privileges, and what it is silently not shown.
func TestAuthorizationCrossAccount(t *testing.T) {
	tests := []struct {
		name   string
		method string
		params func(f *authzFixture) map[string]any
		code   int64
		result string // exact JSON result when code is 0 ("" = not checked)
		after  func(t *testing.T, f *authzFixture)
	}{
		{"non-admin grants itself admin", "alterAccount",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.alice.AuthToken, "username": "alice", "roles": []string{"admin"}}
			}, rpc.CodePermissionDenied, "",
			func(t *testing.T, f *authzFixture) {
				if f.account("alice").IsAdmin() {
					t.Error("alice became an admin")
				}
			}},
		{"non-admin turns off its own lockout", "alterAccount",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.alice.AuthToken, "username": "alice", "lockoutAfterNFailedAttempts": 0}
			}, rpc.CodePermissionDenied, "", nil},
		{"non-admin changes another's password", "alterAccount",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.bob.AuthToken, "username": "alice", "password": "owned", "currentPassword": "alice-password"}
			}, rpc.CodePermissionDenied, "",
			func(t *testing.T, f *authzFixture) {
				if !f.alive(f.target.AuthToken) {
					t.Error("alice's sessions ended")
				}
			}},
		{"own password change without currentPassword", "alterAccount",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.alice.AuthToken, "username": "alice", "password": "new-password"}
			}, rpc.CodeCurrentPasswordWrong, "", nil},
		{"own password change with a wrong currentPassword", "alterAccount",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.alice.AuthToken, "username": "alice", "password": "new-password", "currentPassword": "guess"}
			}, rpc.CodeCurrentPasswordWrong, "", nil},
		{"own password change ends the other temporary sessions", "alterAccount",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.alice.AuthToken, "username": "alice", "password": "new-password", "currentPassword": "alice-password"}
			}, 0, "",
			func(t *testing.T, f *authzFixture) {
				if !f.alive(f.alice.AuthToken) || f.alive(f.target.AuthToken) || !f.alive(f.bob.AuthToken) {
					t.Error("want alice's caller session kept, her other session ended, bob's untouched")
				}
			}},
		{"admin changes a password without currentPassword", "alterAccount",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.admin.AuthToken, "username": "alice", "password": "reset-password"}
			}, 0, "",
			func(t *testing.T, f *authzFixture) {
				if f.alive(f.alice.AuthToken) || f.alive(f.target.AuthToken) {
					t.Error("alice's temporary sessions survived a password reset")
				}
			}},
		{"non-admin revokes another account by username", "revokeSessions",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.bob.AuthToken, "usernames": []string{"alice"}}
			}, rpc.CodePermissionDenied, "", nil},
		{"non-admin revokes itself by username", "revokeSessions",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.bob.AuthToken, "usernames": []string{"BOB"}}
			}, 0, `{"revoked":1}`, nil},
		{"admin revokes an account by username", "revokeSessions",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.admin.AuthToken, "usernames": []string{"alice"}}
			}, 0, `{"revoked":2}`, nil},
		{"allOthers ends only the caller's own other sessions", "revokeSessions",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.alice.AuthToken, "allOthers": true}
			}, 0, `{"revoked":1}`,
			func(t *testing.T, f *authzFixture) {
				if !f.alive(f.alice.AuthToken) || f.alive(f.target.AuthToken) || !f.alive(f.bob.AuthToken) || !f.alive(f.admin.AuthToken) {
					t.Error("allOthers ended the wrong sessions")
				}
			}},
		{"non-admin lists another account's sessions", "listSessions",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.bob.AuthToken, "usernameFilter": []string{"alice"}}
			}, 0, `{"sessions":[]}`, nil},
		{"non-admin describes another's session by its token", "describeSessions",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.bob.AuthToken, "authTokens": []string{f.target.AuthToken}}
			}, 0, `{"sessions":[]}`, nil},
		{"non-admin describes accounts including another", "describeAccounts",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.alice.AuthToken, "usernames": []string{"alice", "bob"}}
			}, rpc.CodePermissionDenied, "", nil},
		{"describeAccounts without usernames describes the caller", "describeAccounts",
			func(f *authzFixture) map[string]any { return map[string]any{"authToken": f.bob.AuthToken} }, 0, "",
			nil},
		{"non-admin drops itself", "dropAccounts",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.bob.AuthToken, "usernames": []string{"bob"}}
			}, rpc.CodePermissionDenied, "", nil},
		{"the last admin cannot drop itself", "dropAccounts",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.admin.AuthToken, "usernames": []string{"admin"}}
			}, rpc.CodeLastAdmin, "", nil},
		{"the last admin cannot demote itself", "alterAccount",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.admin.AuthToken, "username": "admin", "roles": []string{}}
			}, rpc.CodeLastAdmin, "", nil},
		{"a temporary session cannot become permanent", "alterSession",
			func(f *authzFixture) map[string]any {
				return map[string]any{"authToken": f.alice.AuthToken, "permanentSession": true}
			}, rpc.CodePermanentNotAllowed, "", nil},
		{"a dropped account's token stops working", "pingSession",
			func(f *authzFixture) map[string]any {
				f.must("dropAccounts", map[string]any{"authToken": f.admin.AuthToken, "usernames": []string{"bob"}}, nil)
				return map[string]any{"authToken": f.bob.AuthToken}
			}, rpc.CodeInvalidAuthToken, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newAuthzFixture(t)
			got := f.call(tc.method, tc.params(f))
			if got.code() != tc.code {
				t.Fatalf("got %v, want code %d", got, tc.code)
			}
			if tc.code == 0 && tc.result != "" && string(got.result) != tc.result {
				t.Errorf("result %s, want %s", got.result, tc.result)
			}
			if tc.code == 0 {
				if err := schemas.ValidateResult(tc.method, got.result); err != nil {
					t.Errorf("result does not match its schema: %v", err)
				}
			}
			if tc.after != nil {
				tc.after(t, f)
			}
		})
	}
}

// TestPermanentSessionsDisabled checks that while enablePermanentJsonApiSessions is false no
// permanent session can be made (1001, in every spelling FairCom accepts), and that with it
// on the same request makes an API key without clocks.
func TestPermanentSessionsDisabled(t *testing.T) {
	for _, spelling := range []any{true, "true"} {
		f := newAuthzFixture(t)
		before := len(decode[struct{ Sessions []sessionObj }](t, f.call("listSessions", map[string]any{"authToken": f.admin.AuthToken}).result).Sessions)
		got := f.call("createSession", map[string]any{"username": "alice", "password": "alice-password", "permanentSession": spelling})
		if got.code() != rpc.CodePermanentSessionsOff || got.data()["reason"] != "permanentSessionsDisabled" {
			t.Errorf("permanentSession %v: got %v, want 1001 permanentSessionsDisabled", spelling, got)
		}
		after := len(decode[struct{ Sessions []sessionObj }](t, f.call("listSessions", map[string]any{"authToken": f.admin.AuthToken}).result).Sessions)
		if after != before {
			t.Errorf("a refused permanent session was created anyway (%d sessions, was %d)", after, before)
		}
		// Asking for a temporary session explicitly is fine.
		f.login("alice", "alice-password", map[string]any{"permanentSession": false})
	}

	on := newSvc(t, func(c *engine.Config) { c.Defaults.EnablePermanentSessions = true })
	key := on.login("admin", adminPassword, map[string]any{"permanentSession": "true"})
	if !key.PermanentSession || key.ExpiresAt != nil || key.IdleConnectionTimeoutSeconds != -1 || !strings.HasPrefix(key.AuthToken, engine.PermanentTokenPrefix) {
		t.Errorf("with permanent sessions enabled: %+v, want an API key that never expires", key)
	}
	on.clock.Advance(1000 * 24 * time.Hour)
	if !on.alive(key.AuthToken) {
		t.Error("the API key expired")
	}
}
