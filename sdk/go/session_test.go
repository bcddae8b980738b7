package sessiond_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	sessiond "github.com/sessiond/sessiond/sdk/go"
	"github.com/sessiond/sessiond/sdk/sdktest"
)

// TestPingSessionEmptyToken checks that PingSession with an empty token fails with
// ErrInvalidAuthToken over TCP, HTTP (a bearer token too) and stdio, as the other SDKs do,
// and that Ping pings without a token, checking the bearer token over HTTP.
func TestPingSessionEmptyToken(t *testing.T) {
	server, tcp, ctx := startDialed(t)
	stdio, err := sessiond.StartStdio(sdktest.StdioCommand())
	if err != nil {
		t.Fatal(err)
	}
	defer stdio.Close()
	http := sessiond.NewHTTPClient(server.HTTPURL)
	defer http.Close()
	for name, client := range map[string]*sessiond.Client{"tcp": tcp, "http": http, "stdio": stdio} {
		if err := client.PingSession(ctx, sessiond.PingSessionParams{AuthToken: ""}); !errors.Is(err, sessiond.ErrInvalidAuthToken) {
			t.Errorf("%s: PingSession with an empty token: %v; want ErrInvalidAuthToken", name, err)
		}
		if err := client.Ping(ctx); err != nil {
			t.Errorf("%s: Ping: %v", name, err)
		}
	}

	session, err := tcp.CreateSession(ctx, sessiond.CreateSessionParams{Username: "admin", Password: sdktest.AdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.DeleteSession(ctx, sessiond.DeleteSessionParams{AuthToken: session.AuthToken})
	bearer := sessiond.NewClient(&sessiond.HTTPTransport{URL: server.HTTPURL, BearerToken: session.AuthToken})
	defer bearer.Close()
	if err := bearer.PingSession(ctx, sessiond.PingSessionParams{AuthToken: ""}); !errors.Is(err, sessiond.ErrInvalidAuthToken) {
		t.Errorf("PingSession with an empty token and a valid bearer token: %v; want ErrInvalidAuthToken", err)
	}
	if err := bearer.Ping(ctx); err != nil {
		t.Errorf("Ping with a valid bearer token: %v", err)
	}
	badBearer := sessiond.NewClient(&sessiond.HTTPTransport{URL: server.HTTPURL, BearerToken: "not-a-token"})
	defer badBearer.Close()
	if err := badBearer.Ping(ctx); !errors.Is(err, sessiond.ErrInvalidAuthToken) {
		t.Errorf("Ping with an invalid bearer token: %v; want ErrInvalidAuthToken", err)
	}
}

// TestSessionWithTokenIsASession checks that CreateSession's result, which embeds Session,
// reads the server's flat JSON object with the token in the embedded Session, so that
// result.Session is a whole session object, and writes back the same object.
func TestSessionWithTokenIsASession(t *testing.T) {
	_, client, ctx := startDialed(t)

	params := sessiond.CreateSessionParams{Username: "admin", Password: sdktest.AdminPassword}
	var wire json.RawMessage
	if err := client.Call(ctx, "createSession", params, &wire); err != nil {
		t.Fatal(err)
	}
	var login sessiond.SessionWithToken
	if err := json.Unmarshal(wire, &login); err != nil {
		t.Fatal(err)
	}
	var session sessiond.Session = login.Session
	if session.AuthToken == "" || session.SessionID == "" || session.Username != "admin" {
		t.Errorf("the embedded Session lacks members: %+v", session)
	}
	again, err := json.Marshal(login)
	if err != nil {
		t.Fatal(err)
	}
	var sent, written map[string]any
	if err := json.Unmarshal(wire, &sent); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(again, &written); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(written, sent) {
		t.Errorf("SessionWithToken writes\n%s\nbut the server sent\n%s", again, wire)
	}
	if err := sdktest.CheckResult("createSession", again); err != nil {
		t.Errorf("the object written does not match the result schema: %v", err)
	}

	altered, err := client.AlterSession(ctx, sessiond.AlterSessionParams{AuthToken: session.AuthToken, Description: sessiond.Ptr("altered")})
	if err != nil {
		t.Fatal(err)
	}
	if altered.AuthToken != session.AuthToken || altered.Session.Description != "altered" {
		t.Errorf("AlterSession returned token %q, description %q", altered.AuthToken, altered.Session.Description)
	}
}
