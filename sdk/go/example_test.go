package sessiond_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"

	sessiond "github.com/sessiond/sessiond/sdk/go"
	"github.com/sessiond/sessiond/sdk/sdktest"
)

// The examples start a sessiond of their own on its standard input and output, in memory.
// Outside these examples, sessiondPath would be "sessiond" and configPath your services.json
// (this one turns on permanent sessions and makes password hashing cheap, for tests).
var (
	sessiondPath  = sdktest.Binary
	configPath    = sdktest.ConfigPath
	adminPassword = sdktest.AdminPassword
)

// startServer runs `sessiond serve --stdio --in-memory` and returns a client speaking to it.
func startServer() *sessiond.Client {
	cmd := exec.Command(sessiondPath(), "serve", "--stdio", "--in-memory", "--config", configPath())
	cmd.Env = append(os.Environ(), "SESSIOND_ADMIN_PASSWORD="+adminPassword)
	client, err := sessiond.StartStdio(cmd)
	if err != nil {
		log.Fatal(err)
	}
	return client
}

// An administrator creates an account, which then logs in and lists its sessions.
func Example() {
	ctx := context.Background()
	client := startServer()
	defer client.Close()

	admin, err := client.CreateSession(ctx, sessiond.CreateSessionParams{Username: "admin", Password: adminPassword})
	if err != nil {
		log.Fatal(err)
	}
	account, err := client.CreateAccount(ctx, sessiond.CreateAccountParams{
		AuthToken: admin.AuthToken, Username: "alice", Password: "correct horse",
		AccountDescription: sessiond.Ptr("Alice's account"),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created", account.Username, account.Roles)

	session, err := client.CreateSession(ctx, sessiond.CreateSessionParams{
		Username: "alice", Password: "correct horse", Description: sessiond.Ptr("example"),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("logged in as", session.Username, "for", session.IdleConnectionTimeoutSeconds, "idle seconds")

	list, err := client.ListSessions(ctx, sessiond.ListSessionsParams{AuthToken: session.AuthToken})
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range list.Sessions {
		fmt.Println("session:", s.Description, s.SessionID == session.SessionID)
	}
	// Output:
	// created alice []
	// logged in as alice for 3600 idle seconds
	// session: example true
}

// A permanent session is an API key: it has no clocks and ends only when it is revoked.
func ExampleClient_CreateSession_apiKey() {
	ctx := context.Background()
	client := startServer()
	defer client.Close()

	key, err := client.CreateSession(ctx, sessiond.CreateSessionParams{
		Username: "admin", Password: adminPassword, PermanentSession: sessiond.Ptr(true),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(key.PermanentSession, key.IdleConnectionTimeoutSeconds, key.ExpiresAt == nil)

	revoked, err := client.RevokeSessions(ctx, sessiond.RevokeSessionsParams{
		AuthToken: key.AuthToken, SessionIDs: []string{key.SessionID},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("revoked", revoked.Revoked)

	err = client.PingSession(ctx, sessiond.PingSessionParams{AuthToken: key.AuthToken})
	fmt.Println(errors.Is(err, sessiond.ErrInvalidAuthToken))
	// Output:
	// true -1 true
	// revoked 1
	// true
}

// Errors the server answers with are *sessiond.Error values: errors.Is compares their codes
// with the Err variables, and errors.As gives their data.
func ExampleError() {
	ctx := context.Background()
	client := startServer()
	defer client.Close()

	_, err := client.CreateSession(ctx, sessiond.CreateSessionParams{Username: "admin", Password: "wrong"})
	fmt.Println(errors.Is(err, sessiond.ErrInvalidCredentials))
	if e, ok := errors.AsType[*sessiond.Error](err); ok {
		fmt.Println(e.Code, e.Reason(), e.Message)
	}

	_, err = client.CreateSession(ctx, sessiond.CreateSessionParams{Username: "", Password: "x"})
	if e, ok := errors.AsType[*sessiond.Error](err); ok {
		fmt.Println(errors.Is(err, sessiond.ErrInvalidParams), e.Code, e.Field())
	}
	// Output:
	// true
	// 450 invalidCredentials Not able to validate the credentials for user [admin].
	// true -32602 username
}

// The NetX methods: a session key, a preference, a tickle that keeps the session alive, and
// logout.
func ExampleClient_Authenticate() {
	ctx := context.Background()
	client := startServer()
	defer client.Close()

	key, err := client.Authenticate(ctx, sessiond.AuthenticateParams{Login: "admin", Password: adminPassword})
	if err != nil || key == "-1" {
		log.Fatal("authenticate failed: ", err)
	}
	ok, err := client.SetUserPreference(ctx, sessiond.SetUserPreferenceParams{
		SessionKey: key, Bean: sessiond.LabelValue{Label: "theme", Value: "dark"},
	})
	if err != nil {
		log.Fatal(err)
	}
	value, err := client.GetUserPreference(ctx, sessiond.GetUserPreferenceParams{SessionKey: key, Label: "theme"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ok, *value)

	tickled, err := client.SetUserPreference(ctx, sessiond.SetUserPreferenceParams{
		SessionKey: key, Bean: sessiond.LabelValue{Label: "TickleTime", Value: "now"},
	})
	if err != nil {
		log.Fatal(err)
	}
	loggedOut, err := client.Logout(ctx, sessiond.LogoutParams{SessionKey: key})
	if err != nil {
		log.Fatal(err)
	}
	stale, err := client.SetUserPreference(ctx, sessiond.SetUserPreferenceParams{
		SessionKey: key, Bean: sessiond.LabelValue{Label: "TickleTime", Value: "later"},
	})
	fmt.Println(tickled, loggedOut, stale, err)
	// Output:
	// true dark
	// true true false <nil>
}
