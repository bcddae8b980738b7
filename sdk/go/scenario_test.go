package sessiond_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	sessiond "github.com/sessiond/sessiond/sdk/go"
	"github.com/sessiond/sessiond/sdk/sdktest"
)

// checkedTransport checks every call against the contract: each result against the method's
// result schema, and each params against its params schema unless the server refused them
// as invalid params too. It counts the methods called and the error codes seen.
//
// The TypeScript and Python SDKs record their calls instead, and sdk/sdktest checks them.
type checkedTransport struct {
	t     *testing.T
	inner sessiond.Transport
	// bearer is the HTTP bearer token inner sends, if any: the server puts it in the params
	// member named by the method's x-token-field when the params leave that out.
	bearer string

	mu      sync.Mutex
	methods map[string]int
	codes   map[int]int
}

func check(t *testing.T, inner sessiond.Transport) *checkedTransport {
	return &checkedTransport{t: t, inner: inner, methods: map[string]int{}, codes: map[int]int{}}
}

func (c *checkedTransport) RoundTrip(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	result, err := c.inner.RoundTrip(ctx, method, params)
	if err == nil {
		if verr := sdktest.CheckResult(method, result); verr != nil {
			c.t.Errorf("result of %s %s does not match its schema: %v", method, result, verr)
		}
	}
	if !errors.Is(err, sessiond.ErrInvalidParams) {
		if verr := sdktest.CheckParams(method, params, c.bearer); verr != nil {
			c.t.Errorf("the SDK sent params of %s that do not match their schema: %s: %v", method, params, verr)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.methods[method]++
	if e, ok := errors.AsType[*sessiond.Error](err); ok {
		c.codes[e.Code]++
	}
	return result, err
}

func (c *checkedTransport) Close() error { return c.inner.Close() }

// TestScenario runs the SDK scenario over TCP, HTTP and stdio against a live sessiond,
// checking every params and result against the schemas.
func TestScenario(t *testing.T) {
	server := sdktest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("tcp", func(t *testing.T) {
		stream, err := sessiond.DialStream(ctx, server.TCPAddr)
		if err != nil {
			t.Fatal(err)
		}
		runScenario(ctx, t, check(t, stream), "go-tcp", nil)
	})
	t.Run("http", func(t *testing.T) {
		withBearer := func(token string) sessiond.Transport {
			return &sessiond.HTTPTransport{URL: server.HTTPURL, BearerToken: token}
		}
		runScenario(ctx, t, check(t, &sessiond.HTTPTransport{URL: server.HTTPURL}), "go-http", withBearer)
	})
	t.Run("stdio", func(t *testing.T) {
		stdio, err := sessiond.StartStdioTransport(sdktest.StdioCommand())
		if err != nil {
			t.Fatal(err)
		}
		runScenario(ctx, t, check(t, stdio), "go-stdio", nil)
	})
}

// runScenario is the scenario every SDK runs: an admin creates an account; the account logs
// in, describes and alters its session, tickles it, creates an API key, lists its sessions and
// revokes the key; then three errors come back typed. withBearer, for HTTP, makes a transport
// that sends a bearer token.
func runScenario(ctx context.Context, t *testing.T, transport *checkedTransport, user string, withBearer func(token string) sessiond.Transport) {
	client := sessiond.NewClient(transport)
	defer client.Close()
	const password = "scenario-password"

	admin, err := client.CreateSession(ctx, sessiond.CreateSessionParams{Username: "admin", Password: sdktest.AdminPassword})
	if err != nil {
		t.Fatalf("admin createSession: %v", err)
	}
	account, err := client.CreateAccount(ctx, sessiond.CreateAccountParams{AuthToken: admin.AuthToken,
		Username: user, Password: password, AccountDescription: sessiond.Ptr("made by the " + user + " scenario")})
	if err != nil {
		t.Fatalf("createAccount: %v", err)
	}
	if account.Username != user || len(account.Roles) != 0 || account.LastLoginTimestamp != nil {
		t.Errorf("createAccount = %+v", account)
	}

	login, err := client.CreateSession(ctx, sessiond.CreateSessionParams{Username: user, Password: password,
		Description: sessiond.Ptr("scenario login")})
	if err != nil {
		t.Fatalf("createSession: %v", err)
	}
	if login.AuthToken == "" || login.Username != user || login.PermanentSession || login.ExpiresAt == nil {
		t.Errorf("createSession = %+v", login)
	}

	described, err := client.DescribeSessions(ctx, sessiond.DescribeSessionsParams{AuthToken: login.AuthToken,
		SessionIDs: []string{login.SessionID}})
	if err != nil {
		t.Fatalf("describeSessions: %v", err)
	}
	if len(described.Sessions) != 1 || described.Sessions[0].SessionID != login.SessionID ||
		described.Sessions[0].Description != "scenario login" {
		t.Errorf("describeSessions = %+v", described.Sessions)
	}

	altered, err := client.AlterSession(ctx, sessiond.AlterSessionParams{AuthToken: login.AuthToken,
		Description: sessiond.Ptr("altered"), IdleConnectionTimeoutSeconds: sessiond.Ptr(120),
		DefaultResponseOptions: &sessiond.ResponseOptions{DataFormat: "objects"}})
	if err != nil {
		t.Fatalf("alterSession: %v", err)
	}
	if altered.Description != "altered" || altered.IdleConnectionTimeoutSeconds != 120 ||
		altered.DefaultResponseOptions.DataFormat != "objects" || altered.SessionID != login.SessionID {
		t.Errorf("alterSession = %+v", altered)
	}

	// A tickle, with the authToken as the session key (they are the same kind of credential).
	tickled, err := client.SetUserPreference(ctx, sessiond.SetUserPreferenceParams{SessionKey: login.AuthToken,
		Bean: sessiond.LabelValue{Label: "TickleTime", Value: time.Now().UTC().Format(time.RFC3339)}})
	if err != nil || !tickled {
		t.Fatalf("setUserPreference TickleTime = %v, %v; want true", tickled, err)
	}
	// The NetX methods, positional on the wire.
	key, err := client.Authenticate(ctx, sessiond.AuthenticateParams{Login: user, Password: password})
	if err != nil || key == "-1" || key == "" {
		t.Fatalf("authenticate = %q, %v", key, err)
	}
	if ok, err := client.SetUserPreference(ctx, sessiond.SetUserPreferenceParams{SessionKey: key,
		Bean: sessiond.LabelValue{Label: "color", Value: "blue"}}); err != nil || !ok {
		t.Errorf("setUserPreference color = %v, %v", ok, err)
	}
	if v, err := client.GetUserPreference(ctx, sessiond.GetUserPreferenceParams{SessionKey: key, Label: "color"}); err != nil || v == nil || *v != "blue" {
		t.Errorf("getUserPreference color = %v, %v; want blue", v, err)
	}
	if v, err := client.GetUserPreference(ctx, sessiond.GetUserPreferenceParams{SessionKey: key, Label: "unset"}); err != nil || v != nil {
		t.Errorf("getUserPreference unset = %v, %v; want nil", v, err)
	}
	if ok, err := client.Logout(ctx, sessiond.LogoutParams{SessionKey: key}); err != nil || !ok {
		t.Errorf("logout = %v, %v", ok, err)
	}

	apiKey, err := client.CreateSession(ctx, sessiond.CreateSessionParams{Username: user, Password: password,
		Description: sessiond.Ptr("scenario API key"), PermanentSession: sessiond.Ptr(true)})
	if err != nil {
		t.Fatalf("createSession permanent: %v", err)
	}
	if !apiKey.PermanentSession || apiKey.IdleConnectionTimeoutSeconds != -1 || apiKey.ExpiresAt != nil {
		t.Errorf("permanent session = %+v", apiKey)
	}

	listed, err := client.ListSessions(ctx, sessiond.ListSessionsParams{AuthToken: login.AuthToken})
	if err != nil {
		t.Fatalf("listSessions: %v", err)
	}
	var ids []string
	for _, s := range listed.Sessions {
		ids = append(ids, s.SessionID)
		if s.AuthToken != "" {
			t.Errorf("listSessions shows the token of %s", s.SessionID)
		}
	}
	if !slices.Contains(ids, login.SessionID) || !slices.Contains(ids, apiKey.SessionID) {
		t.Errorf("listSessions = %v; want %s and %s among them", ids, login.SessionID, apiKey.SessionID)
	}
	if withBearer != nil {
		// Over HTTP the API key can stand in for authToken as a bearer token.
		bearer := check(t, withBearer(apiKey.AuthToken))
		bearer.bearer = apiKey.AuthToken
		keyed := sessiond.NewClient(bearer)
		byKey, err := keyed.ListSessions(ctx, sessiond.ListSessionsParams{})
		if err != nil || len(byKey.Sessions) != len(listed.Sessions) {
			t.Errorf("listSessions with a bearer token = %v, %v; want %d sessions", byKey, err, len(listed.Sessions))
		}
		if ok, err := keyed.SetUserPreference(ctx, sessiond.SetUserPreferenceParams{Bean: sessiond.LabelValue{Label: "TickleTime", Value: "x"}}); err != nil || !ok {
			t.Errorf("setUserPreference with a bearer token = %v, %v", ok, err)
		}
		keyed.Close()
	}

	revoked, err := client.RevokeSessions(ctx, sessiond.RevokeSessionsParams{AuthToken: login.AuthToken,
		SessionIDs: []string{apiKey.SessionID}})
	if err != nil || revoked.Revoked != 1 {
		t.Fatalf("revokeSessions = %+v, %v; want 1 revoked", revoked, err)
	}
	if err := client.PingSession(ctx, sessiond.PingSessionParams{AuthToken: apiKey.AuthToken}); !errors.Is(err, sessiond.ErrInvalidAuthToken) {
		t.Errorf("pingSession with a revoked API key: %v; want ErrInvalidAuthToken", err)
	}

	// Three errors, typed.
	_, err = client.CreateSession(ctx, sessiond.CreateSessionParams{Username: user, Password: "wrong"})
	if e, ok := errors.AsType[*sessiond.Error](err); !errors.Is(err, sessiond.ErrInvalidCredentials) || !ok ||
		e.Code != 450 || e.Reason() != "invalidCredentials" {
		t.Errorf("createSession with a bad password: %v; want ErrInvalidCredentials (450)", err)
	}
	err = client.PingSession(ctx, sessiond.PingSessionParams{AuthToken: "not-a-token"})
	if !errors.Is(err, sessiond.ErrInvalidAuthToken) || errors.Is(err, sessiond.ErrInvalidCredentials) {
		t.Errorf("pingSession with a bad token: %v; want ErrInvalidAuthToken (12031)", err)
	}
	_, err = client.CreateSession(ctx, sessiond.CreateSessionParams{Username: "", Password: password})
	if e, ok := errors.AsType[*sessiond.Error](err); !errors.Is(err, sessiond.ErrInvalidParams) || !ok || e.Field() != "username" {
		t.Errorf("createSession with an empty username: %v; want ErrInvalidParams (-32602) about username", err)
	}

	doc, err := client.Discover(ctx)
	if err != nil || doc.OpenRPC != "1.3.2" || len(doc.Methods) == 0 || doc.Extra["components"] == nil {
		t.Errorf("rpc.discover = %v, %v", doc, err)
	}
	if err := client.DeleteSession(ctx, sessiond.DeleteSessionParams{AuthToken: login.AuthToken}); err != nil {
		t.Errorf("deleteSession: %v", err)
	}
	dropped, err := client.DropAccounts(ctx, sessiond.DropAccountsParams{AuthToken: admin.AuthToken, Usernames: []string{user}})
	if err != nil || !slices.Equal(dropped.Dropped, []string{user}) {
		t.Errorf("dropAccounts = %+v, %v", dropped, err)
	}

	transport.mu.Lock()
	defer transport.mu.Unlock()
	for _, m := range sdktest.ScenarioMethods {
		if transport.methods[m] == 0 {
			t.Errorf("the scenario never called %s", m)
		}
	}
	for _, code := range sdktest.ScenarioErrors {
		if transport.codes[code] == 0 {
			t.Errorf("the scenario never saw error %d", code)
		}
	}
}

// TestPipelining makes many concurrent calls on one TCP connection and checks that each gets
// its own reply.
func TestPipelining(t *testing.T) {
	_, client, ctx := startDialed(t)
	admin, err := client.CreateSession(ctx, sessiond.CreateSessionParams{Username: "admin", Password: sdktest.AdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	var sessions []*sessiond.SessionWithToken
	for i := range 8 {
		s, err := client.CreateSession(ctx, sessiond.CreateSessionParams{Username: "admin",
			Password: sdktest.AdminPassword, Description: sessiond.Ptr(fmt.Sprint("session ", i))})
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			want := sessions[i%len(sessions)]
			got, err := client.DescribeSessions(ctx, sessiond.DescribeSessionsParams{AuthToken: admin.AuthToken,
				SessionIDs: []string{want.SessionID}})
			if err != nil {
				t.Errorf("call %d: %v", i, err)
				return
			}
			if len(got.Sessions) != 1 || got.Sessions[0].Description != want.Description {
				t.Errorf("call %d asked for %q and got %+v", i, want.Description, got.Sessions)
			}
		})
	}
	wg.Wait()
}
