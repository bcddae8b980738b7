package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creachadair/jrpc2"
	"github.com/creachadair/jrpc2/channel"
	"github.com/creachadair/jrpc2/jhttp"

	"github.com/sessiond/sessiond/internal/syncbuf"
)

// interopDir holds the third-party client scripts and their npm lock file.
const interopDir = "../../testdata/interop"

// interopSession is the part of the session object the interop tests look at.
type interopSession struct {
	AuthToken             string `json:"authToken"`
	SessionID             string `json:"sessionId"`
	Username              string `json:"username"`
	PermanentSession      bool   `json:"permanentSession"`
	SessionStartTimestamp string `json:"sessionStartTimestamp"`
}

// newJrpc2Client returns a jrpc2 client on ch whose debug log is kept in logs. The client is
// closed when the test ends.
func newJrpc2Client(t *testing.T, ch channel.Channel, logs *syncbuf.Buffer) *jrpc2.Client {
	t.Helper()
	cli := jrpc2.NewClient(ch, &jrpc2.ClientOptions{
		Logger: func(text string) { logs.Write([]byte(text + "\n")) },
	})
	t.Cleanup(func() { cli.Close() })
	return cli
}

// checkJrpc2Log fails the test if jrpc2 saw a reply it could not use: a reply to an id it did
// not send (for example a reply to a notification), a malformed reply, or undecodable bytes.
func checkJrpc2Log(t *testing.T, logs *syncbuf.Buffer) {
	t.Helper()
	for _, line := range strings.Split(logs.String(), "\n") {
		for _, bad := range []string{"Discarding response", "Invalid response", "Decoding error", "Discarding notification", "Discarding callback"} {
			if strings.Contains(line, bad) {
				t.Errorf("jrpc2 client rejected something the server sent: %s", line)
			}
		}
	}
}

// wantJrpc2Error checks that err is a *jrpc2.Error with the given code and returns it.
func wantJrpc2Error(t *testing.T, what string, err error, code jrpc2.Code) *jrpc2.Error {
	t.Helper()
	var e *jrpc2.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: got %v (%T), want a *jrpc2.Error with code %d", what, err, err, code)
	}
	if e.Code != code {
		t.Fatalf("%s: code %d (%s), want %d", what, e.Code, e.Message, code)
	}
	if jrpc2.ErrorCode(err) != code {
		t.Fatalf("%s: jrpc2.ErrorCode = %d, want %d", what, jrpc2.ErrorCode(err), code)
	}
	return e
}

// TestInteropJrpc2 checks that github.com/creachadair/jrpc2, a strict third-party client, works against the real server over TCP (newline framing) and HTTP: named and positional params, notifications, batches, pipelined calls and error codes.
func TestInteropJrpc2(t *testing.T) {
	p := startServer(t, "--in-memory", "--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0")
	if p.tcpAddr == "" || p.httpAddr == "" {
		t.Fatalf("listen addresses not logged (tcp %q, http %q); logs:\n%s", p.tcpAddr, p.httpAddr, p.logs.String())
	}

	t.Run("tcp", func(t *testing.T) {
		conn, err := net.Dial("tcp", p.tcpAddr)
		if err != nil {
			t.Fatal(err)
		}
		logs := &syncbuf.Buffer{}
		cli := newJrpc2Client(t, channel.Line(conn, conn), logs)
		defer checkJrpc2Log(t, logs)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()

		// createSession with named params.
		var sess interopSession
		if err := cli.CallResult(ctx, "createSession", map[string]any{
			"username": "admin", "password": testAdminPassword, "description": "jrpc2 interop",
		}, &sess); err != nil {
			t.Fatalf("createSession: %v", err)
		}
		if sess.AuthToken == "" || sess.SessionID == "" || sess.Username != "admin" || sess.PermanentSession {
			t.Fatalf("createSession: unexpected session %+v", sess)
		}
		if _, err := time.Parse(time.RFC3339, sess.SessionStartTimestamp); err != nil || !strings.HasSuffix(sess.SessionStartTimestamp, "Z") {
			t.Errorf("createSession: sessionStartTimestamp %q is not UTC RFC 3339", sess.SessionStartTimestamp)
		}

		// authenticate with positional params; a wrong password is "-1", not an error.
		var key string
		if err := cli.CallResult(ctx, "authenticate", []string{"admin", testAdminPassword}, &key); err != nil {
			t.Fatalf("authenticate: %v", err)
		}
		if key == "" || key == "-1" || key == sess.AuthToken {
			t.Fatalf("authenticate: unexpected session key %q", key)
		}
		var refused string
		if err := cli.CallResult(ctx, "authenticate", []string{"admin", "not-the-password"}, &refused); err != nil {
			t.Fatalf("authenticate with a wrong password: %v", err)
		}
		if refused != "-1" {
			t.Fatalf(`authenticate with a wrong password: got %q, want "-1"`, refused)
		}

		// pingSession with the token, and with the session key used as an authToken.
		for _, tok := range []string{sess.AuthToken, key} {
			var pong map[string]any
			if err := cli.CallResult(ctx, "pingSession", map[string]any{"authToken": tok}, &pong); err != nil {
				t.Fatalf("pingSession: %v", err)
			}
			if pong == nil || len(pong) != 0 {
				t.Fatalf("pingSession: got %v, want {}", pong)
			}
		}

		// describeSessions with the token sees both sessions.
		var described struct {
			Sessions []interopSession `json:"sessions"`
		}
		if err := cli.CallResult(ctx, "describeSessions", map[string]any{
			"authToken": sess.AuthToken, "authTokens": []string{sess.AuthToken, key},
		}, &described); err != nil {
			t.Fatalf("describeSessions: %v", err)
		}
		seen := map[string]bool{}
		for _, s := range described.Sessions {
			seen[s.SessionID] = true
			if s.Username != "admin" {
				t.Errorf("describeSessions: session %s has username %q", s.SessionID, s.Username)
			}
		}
		if !seen[sess.SessionID] || len(described.Sessions) != 2 {
			t.Fatalf("describeSessions: got %+v, want the createSession session and the authenticate session", described.Sessions)
		}

		// A notification gets no reply: a reply would show up in the client log as a response
		// for an unknown id (checked at the end), and the next call still works.
		if err := cli.Notify(ctx, "pingSession", map[string]any{"authToken": sess.AuthToken}); err != nil {
			t.Fatalf("notify: %v", err)
		}

		// Errors come back as *jrpc2.Error with the right codes.
		_, err = cli.Call(ctx, "pingSession", map[string]any{"authToken": "sdt_not-a-real-token"})
		e := wantJrpc2Error(t, "pingSession with a bad token", err, 12031)
		var data struct {
			Reason string `json:"reason"`
		}
		if json.Unmarshal(e.Data, &data) != nil || data.Reason == "" {
			t.Errorf("pingSession with a bad token: data %s has no reason", e.Data)
		}
		_, err = cli.Call(ctx, "noSuchMethod", map[string]any{})
		wantJrpc2Error(t, "unknown method", err, jrpc2.MethodNotFound)
		_, err = cli.Call(ctx, "createSession", []string{"admin", testAdminPassword})
		e = wantJrpc2Error(t, "createSession with positional params", err, jrpc2.InvalidParams)
		if len(e.Data) == 0 {
			t.Errorf("createSession with positional params: -32602 without data")
		}
		_, err = cli.Call(ctx, "createSession", map[string]any{"username": "admin", "password": "wrong"})
		wantJrpc2Error(t, "createSession with a wrong password", err, 450)

		// A batch with a notification in it: one reply per call, matched by id.
		rsps, err := cli.Batch(ctx, []jrpc2.Spec{
			{Method: "pingSession", Params: map[string]any{"authToken": sess.AuthToken}},
			{Method: "authenticate", Params: []string{"admin", testAdminPassword}},
			{Method: "pingSession", Params: map[string]any{"authToken": key}, Notify: true},
			{Method: "noSuchMethod"},
			{Method: "pingSession", Params: map[string]any{"authToken": "sdt_not-a-real-token"}},
			{Method: "describeSessions", Params: map[string]any{"authToken": key, "authTokens": []string{key}}},
		})
		if err != nil {
			t.Fatalf("batch: %v", err)
		}
		if len(rsps) != 5 {
			t.Fatalf("batch: %d responses, want 5 (six specs, one a notification)", len(rsps))
		}
		ids := map[string]bool{}
		for _, r := range rsps {
			if ids[r.ID()] {
				t.Errorf("batch: id %s answered twice", r.ID())
			}
			ids[r.ID()] = true
		}
		var pong map[string]any
		if err := rsps[0].UnmarshalResult(&pong); err != nil || len(pong) != 0 {
			t.Errorf("batch pingSession: %v %v", pong, err)
		}
		var key2 string
		if err := rsps[1].UnmarshalResult(&key2); err != nil || key2 == "" || key2 == "-1" || key2 == key {
			t.Errorf("batch authenticate: %q %v", key2, err)
		}
		if err := rsps[2].Error(); err == nil || err.Code != jrpc2.MethodNotFound {
			t.Errorf("batch unknown method: got %v (result %s), want -32601", err, rsps[2].ResultString())
		}
		if err := rsps[3].Error(); err == nil || err.Code != 12031 {
			t.Errorf("batch bad token: got %v (result %s), want 12031", err, rsps[3].ResultString())
		}
		var batchDescribed struct {
			Sessions []interopSession `json:"sessions"`
		}
		if err := rsps[4].UnmarshalResult(&batchDescribed); err != nil || len(batchDescribed.Sessions) != 1 || batchDescribed.Sessions[0].Username != "admin" {
			t.Errorf("batch describeSessions: %+v %v", batchDescribed, err)
		}

		// Pipelining: many calls in flight on one connection, replies matched by id.
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for i := range 32 {
			wg.Go(func() {
				if i%2 == 0 {
					var k string
					if err := cli.CallResult(ctx, "authenticate", []string{"admin", testAdminPassword}, &k); err != nil || k == "-1" {
						errs <- fmt.Errorf("pipelined authenticate %d: %q %v", i, k, err)
					}
					return
				}
				var pong map[string]any
				if err := cli.CallResult(ctx, "pingSession", map[string]any{"authToken": key}, &pong); err != nil || len(pong) != 0 {
					errs <- fmt.Errorf("pipelined pingSession %d: %v %v", i, pong, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}

		// The connection is still healthy after all of the above.
		if err := cli.CallResult(ctx, "pingSession", map[string]any{"authToken": sess.AuthToken}, &pong); err != nil {
			t.Fatalf("final pingSession: %v", err)
		}
		if cli.IsStopped() {
			t.Fatal("the jrpc2 client stopped")
		}
	})

	t.Run("http", func(t *testing.T) {
		logs := &syncbuf.Buffer{}
		cli := newJrpc2Client(t, jhttp.NewChannel("http://"+p.httpAddr+"/", nil), logs)
		defer checkJrpc2Log(t, logs)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()

		var sess interopSession
		if err := cli.CallResult(ctx, "createSession", map[string]any{"username": "admin", "password": testAdminPassword}, &sess); err != nil {
			t.Fatalf("createSession: %v", err)
		}
		var key string
		if err := cli.CallResult(ctx, "authenticate", []string{"admin", testAdminPassword}, &key); err != nil || key == "-1" {
			t.Fatalf("authenticate: %q %v", key, err)
		}
		if err := cli.Notify(ctx, "pingSession", map[string]any{"authToken": key}); err != nil {
			t.Fatalf("notify: %v", err)
		}
		_, err := cli.Call(ctx, "pingSession", map[string]any{"authToken": "sdt_not-a-real-token"})
		wantJrpc2Error(t, "pingSession with a bad token", err, 12031)
		rsps, err := cli.Batch(ctx, []jrpc2.Spec{
			{Method: "pingSession", Params: map[string]any{"authToken": sess.AuthToken}},
			{Method: "pingSession", Params: map[string]any{"authToken": key}, Notify: true},
			{Method: "noSuchMethod"},
			{Method: "authenticate", Params: []string{"admin", "wrong"}},
		})
		if err != nil {
			t.Fatalf("batch: %v", err)
		}
		if len(rsps) != 3 {
			t.Fatalf("batch: %d responses, want 3", len(rsps))
		}
		var pong map[string]any
		if err := rsps[0].UnmarshalResult(&pong); err != nil || len(pong) != 0 {
			t.Errorf("batch pingSession: %v %v", pong, err)
		}
		if err := rsps[1].Error(); err == nil || err.Code != jrpc2.MethodNotFound {
			t.Errorf("batch unknown method: got %v, want -32601", err)
		}
		var refused string
		if err := rsps[2].UnmarshalResult(&refused); err != nil || refused != "-1" {
			t.Errorf(`batch authenticate with a wrong password: %q %v, want "-1"`, refused, err)
		}
		// An all-notification batch is acknowledged with 204 and no body (jhttp relies on it).
		if _, err := cli.Batch(ctx, []jrpc2.Spec{
			{Method: "pingSession", Notify: true},
			{Method: "pingSession", Params: map[string]any{"authToken": key}, Notify: true},
		}); err != nil {
			t.Fatalf("all-notification batch: %v", err)
		}
		if err := cli.CallResult(ctx, "pingSession", map[string]any{"authToken": key}, &pong); err != nil {
			t.Fatalf("final pingSession: %v", err)
		}
	})
}

// TestInteropJayson checks that the Node.js jayson TCP client (testdata/interop/jayson.mjs) works against the real server: named and positional params, a notification and a mixed batch.
func TestInteropJayson(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; install Node.js >= 20 to run the jayson interop test")
	}
	if _, err := os.Stat(filepath.Join(interopDir, "node_modules", "jayson", "package.json")); err != nil {
		t.Skip("testdata/interop/node_modules is missing; run `npm ci --prefix testdata/interop` to run the jayson interop test")
	}
	p := startServer(t, "--in-memory", "--tcp", "127.0.0.1:0", "--http", "off")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(interopDir, "jayson.mjs"), p.tcpAddr, testAdminPassword)
	out, err := cmd.CombinedOutput()
	t.Logf("jayson.mjs output:\n%s", out)
	if err != nil {
		t.Fatalf("jayson.mjs failed: %v; server logs:\n%s", err, p.logs.String())
	}
	if !strings.Contains(string(out), "jayson interop: ok") {
		t.Fatalf("jayson.mjs exited 0 without its summary line")
	}
}
