package sessiond_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	sessiond "github.com/sessiond/sessiond/sdk/go"
)

// fakeRequest is a request as a fake server reads it.
type fakeRequest struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// fakeServer returns a client on one end of a pipe, and the reader and writer of the other.
func fakeServer(t *testing.T) (*sessiond.Client, *bufio.Reader, net.Conn) {
	t.Helper()
	clientEnd, serverEnd := net.Pipe()
	client := sessiond.NewClient(sessiond.NewStreamTransport(clientEnd, clientEnd))
	t.Cleanup(func() { client.Close(); serverEnd.Close() })
	return client, bufio.NewReader(serverEnd), serverEnd
}

func readRequest(t *testing.T, r *bufio.Reader) fakeRequest {
	t.Helper()
	line, err := r.ReadBytes('\n')
	if err != nil {
		t.Errorf("fake server: %v", err)
		return fakeRequest{}
	}
	var req fakeRequest
	if err := json.Unmarshal(line, &req); err != nil {
		t.Errorf("fake server: %q: %v", line, err)
	}
	return req
}

func reply(t *testing.T, w net.Conn, id json.RawMessage, member string) {
	t.Helper()
	if _, err := fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,%s}`+"\n", id, member); err != nil {
		t.Errorf("fake server: %v", err)
	}
}

// TestStreamMatchesRepliesOutOfOrder checks that pipelined calls get their own replies when
// the server answers in reverse order.
func TestStreamMatchesRepliesOutOfOrder(t *testing.T) {
	client, r, w := fakeServer(t)
	methods := []string{"first", "second", "third"}
	go func() {
		var reqs []fakeRequest
		for range methods {
			reqs = append(reqs, readRequest(t, r))
		}
		for i := len(reqs) - 1; i >= 0; i-- {
			reply(t, w, reqs[i].ID, fmt.Sprintf(`"result":%q`, reqs[i].Method))
		}
	}()
	var wg sync.WaitGroup
	for _, m := range methods {
		wg.Go(func() {
			var got string
			if err := client.Call(context.Background(), m, nil, &got); err != nil || got != m {
				t.Errorf("Call(%s) = %q, %v", m, got, err)
			}
		})
	}
	wg.Wait()
}

// TestPositionalParams checks that NetX methods send their params by position, and by name
// when the session key is left to an HTTP bearer token; and that an empty list is sent, a
// nil one left out.
func TestPositionalParams(t *testing.T) {
	client, r, w := fakeServer(t)
	ctx := context.Background()
	bean := sessiond.LabelValue{Label: "TickleTime", Value: "now"}
	for _, tc := range []struct {
		call func() error
		want string
	}{
		{func() error {
			_, err := client.SetUserPreference(ctx, sessiond.SetUserPreferenceParams{SessionKey: "key", Bean: bean})
			return err
		}, `["key",{"label":"TickleTime","value":"now"}]`},
		{func() error {
			_, err := client.SetUserPreference(ctx, sessiond.SetUserPreferenceParams{Bean: bean})
			return err
		}, `{"bean":{"label":"TickleTime","value":"now"}}`},
		{func() error {
			_, err := client.Authenticate(ctx, sessiond.AuthenticateParams{Login: "alice", Password: ""})
			return err
		}, `["alice",""]`},
		{func() error { _, err := client.Logout(ctx, sessiond.LogoutParams{SessionKey: "key"}); return err }, `["key"]`},
		{func() error { _, err := client.Logout(ctx, sessiond.LogoutParams{}); return err }, `{}`},
		// An empty list is sent (no roles: not an admin any more); a nil one is left out.
		{func() error {
			_, err := client.AlterAccount(ctx, sessiond.AlterAccountParams{Username: "carol", Roles: []string{}})
			return err
		}, `{"username":"carol","roles":[]}`},
		{func() error {
			_, err := client.AlterAccount(ctx, sessiond.AlterAccountParams{Username: "carol"})
			return err
		}, `{"username":"carol"}`},
	} {
		done := make(chan fakeRequest)
		go func() {
			req := readRequest(t, r)
			reply(t, w, req.ID, `"result":true`)
			done <- req
		}()
		if err := tc.call(); err != nil && !strings.Contains(err.Error(), "decoding the result") {
			t.Errorf("call: %v", err)
		}
		if req := <-done; string(req.Params) != tc.want {
			t.Errorf("%s sent params %s; want %s", req.Method, req.Params, tc.want)
		}
	}
}

// TestStreamNullIDError checks that an error with id null, which the server sends for a
// request it could not read, reaches the call when it is the only one unanswered.
func TestStreamNullIDError(t *testing.T) {
	client, r, w := fakeServer(t)
	go func() {
		readRequest(t, r)
		reply(t, w, json.RawMessage("null"), `"error":{"code":-32600,"message":"Invalid Request","data":{"reason":"requestTooLarge","limit":1048576}}`)
	}()
	err := client.Call(context.Background(), "pingSession", map[string]string{}, nil)
	if e, ok := errors.AsType[*sessiond.Error](err); !errors.Is(err, sessiond.ErrInvalidRequest) || !ok || e.Reason() != "requestTooLarge" {
		t.Errorf("err = %v; want ErrInvalidRequest, requestTooLarge", err)
	}
}

// TestStreamConnectionLost checks that calls fail, untyped, when the server goes away.
func TestStreamConnectionLost(t *testing.T) {
	client, r, w := fakeServer(t)
	go func() {
		readRequest(t, r)
		w.Close()
	}()
	err := client.Ping(context.Background())
	if err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Errorf("err = %v; want connection lost", err)
	}
	if _, ok := errors.AsType[*sessiond.Error](err); ok {
		t.Errorf("a lost connection is an *Error: %v", err)
	}
	if err := client.Ping(context.Background()); err == nil {
		t.Error("a call after the connection was lost succeeded")
	}
}

// TestStreamContextAndClose checks that a call waiting for a reply gives up with its context,
// and that Close fails the calls still waiting with ErrClosed.
func TestStreamContextAndClose(t *testing.T) {
	client, r, _ := fakeServer(t)
	go func() {
		for {
			if _, err := r.ReadBytes('\n'); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := client.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v; want context.DeadlineExceeded", err)
	}
	waiting := make(chan error)
	go func() { waiting <- client.Ping(context.Background()) }()
	time.Sleep(20 * time.Millisecond)
	client.Close()
	if err := <-waiting; !errors.Is(err, sessiond.ErrClosed) {
		t.Errorf("err = %v; want ErrClosed", err)
	}
	if err := client.Ping(context.Background()); !errors.Is(err, sessiond.ErrClosed) {
		t.Errorf("after Close: %v; want ErrClosed", err)
	}
}

// TestStreamContextBoundsWriting checks that calls whose requests a server does not read
// (a pipe, whose writes wait for the reader) give up with their contexts, a call made behind
// them too, and that the connection serves once the server reads again.
func TestStreamContextBoundsWriting(t *testing.T) {
	client, r, w := fakeServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			big := strings.Repeat("x", 1<<20)
			_, errs[i] = client.SetUserPreference(ctx, sessiond.SetUserPreferenceParams{Bean: sessiond.LabelValue{Label: "big", Value: big}})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("call %d: %v; want context.DeadlineExceeded", i, err)
		}
	}
	go func() {
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return // the test is over
			}
			var req fakeRequest
			if json.Unmarshal(line, &req) == nil && req.Method == "pingSession" {
				fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{}}`+"\n", req.ID)
			}
		}
	}()
	if err := client.Ping(context.Background()); err != nil {
		t.Errorf("a call once the server reads: %v", err)
	}
}

// TestErrorIs checks that errors.Is compares codes and nothing else, and what Error() says.
func TestErrorIs(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", &sessiond.Error{Code: 12031, Message: "other text"})
	if !errors.Is(err, sessiond.ErrInvalidAuthToken) {
		t.Error("a 12031 error is not ErrInvalidAuthToken")
	}
	if errors.Is(err, sessiond.ErrInvalidCredentials) {
		t.Error("a 12031 error is ErrInvalidCredentials")
	}
	e := &sessiond.Error{Code: -32602, Message: "Invalid params", Data: json.RawMessage(`{"reason":"must be 1 to 64 bytes","field":"username"}`)}
	if got, want := e.Error(), "sessiond: Invalid params (code -32602): username: must be 1 to 64 bytes"; got != want {
		t.Errorf("Error() = %q; want %q", got, want)
	}
	// The reason is said without a field too.
	e = &sessiond.Error{Code: -32000, Message: "Server unavailable", Data: json.RawMessage(`{"reason":"tooManyConnections","limit":1}`)}
	if got, want := e.Error(), "sessiond: Server unavailable (code -32000): tooManyConnections"; got != want {
		t.Errorf("Error() = %q; want %q", got, want)
	}
}

// TestStreamRefusedConnection checks that a server's refusal of the connection, an error with
// id null sent before any call and followed by the end of the stream, is what calls fail
// with, not "connection lost", whether it comes before or after the call is sent.
func TestStreamRefusedConnection(t *testing.T) {
	refusal := `"error":{"code":-32000,"message":"Server unavailable","data":{"reason":"tooManyConnections","limit":1}}`
	for _, before := range []bool{true, false} {
		client, r, w := fakeServer(t)
		sent := make(chan struct{})
		go func() {
			if !before {
				readRequest(t, r)
			}
			reply(t, w, json.RawMessage("null"), refusal)
			if before {
				close(sent)
			}
			w.Close()
		}()
		if before {
			<-sent
		}
		err := client.Ping(context.Background())
		if e, ok := errors.AsType[*sessiond.Error](err); !ok || e.Code != -32000 || e.Reason() != "tooManyConnections" {
			t.Errorf("refusal sent before the call %v: err = %v; want the -32000 tooManyConnections error", before, err)
		}
	}
}
