package main

import (
	"bufio"
	"encoding/json"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/schemas"
)

// lineClient is a minimal newline-delimited JSON-RPC client for end-to-end tests.
type lineClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	id   atomic.Int64
}

func dialLine(t *testing.T, addr string) *lineClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &lineClient{t: t, conn: conn, r: bufio.NewReader(conn)}
}

type rpcReply struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

// call sends one request and waits for its reply.
func (c *lineClient) call(method string, params any) rpcReply {
	c.t.Helper()
	id := c.id.Add(1)
	req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": params, "id": id})
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.conn.Write(append(req, '\n')); err != nil {
		c.t.Fatal(err)
	}
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	var rep rpcReply
	if err := json.Unmarshal(line, &rep); err != nil {
		c.t.Fatalf("%s: bad reply %q: %v", method, line, err)
	}
	if rep.Error == nil {
		if err := schemas.ValidateResult(method, rep.Result); err != nil {
			c.t.Fatalf("%s: result does not match its schema: %v", method, err)
		}
	}
	return rep
}

// mustCall fails the test unless the call succeeds, and decodes its result into out.
func (c *lineClient) mustCall(method string, params any, out any) {
	c.t.Helper()
	rep := c.call(method, params)
	if rep.Error != nil {
		c.t.Fatalf("%s: error %d %s %s", method, rep.Error.Code, rep.Error.Message, rep.Error.Data)
	}
	if out != nil {
		if err := json.Unmarshal(rep.Result, out); err != nil {
			c.t.Fatalf("%s: result %s: %v", method, rep.Result, err)
		}
	}
}

type sessionResult struct {
	AuthToken        string `json:"authToken"`
	SessionID        string `json:"sessionId"`
	Description      string `json:"description"`
	PermanentSession bool   `json:"permanentSession"`
}

// TestRestartAfterSIGKILL checks that every acknowledged session survives a crash: it logs in,
// creates an API key, alters and deletes sessions, kills the server with SIGKILL and restarts
// it on the same directory.
func TestRestartAfterSIGKILL(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--data", dir, "--tcp", "127.0.0.1:0", "--http", "off"}
	p := startServer(t, args...)
	c := dialLine(t, p.tcpAddr)

	var admin, key, altered, deleted sessionResult
	c.mustCall("createSession", map[string]any{"username": "admin", "password": testAdminPassword}, &admin)
	c.mustCall("createSession", map[string]any{"username": "admin", "password": testAdminPassword, "permanentSession": true, "description": "api key"}, &key)
	c.mustCall("createSession", map[string]any{"username": "admin", "password": testAdminPassword}, &altered)
	c.mustCall("alterSession", map[string]any{"authToken": altered.AuthToken, "description": "altered before the crash"}, nil)
	c.mustCall("createSession", map[string]any{"username": "admin", "password": testAdminPassword}, &deleted)
	c.mustCall("deleteSession", map[string]any{"authToken": deleted.AuthToken}, nil)
	c.mustCall("createAccount", map[string]any{"authToken": admin.AuthToken, "username": "survivor", "password": "pw"}, nil)
	var nkey string
	c.mustCall("authenticate", []any{"survivor", "pw"}, &nkey)
	var stored bool
	c.mustCall("setUserPreference", []any{nkey, map[string]string{"label": "theme", "value": "dark"}}, &stored)
	if !stored {
		t.Fatal("setUserPreference returned false")
	}
	p.kill()

	p2 := startServer(t, args...)
	c2 := dialLine(t, p2.tcpAddr)
	for _, tok := range []string{admin.AuthToken, key.AuthToken, altered.AuthToken, nkey} {
		if rep := c2.call("pingSession", map[string]any{"authToken": tok}); rep.Error != nil {
			t.Errorf("session %s… lost in the crash: %d %s", tok[:8], rep.Error.Code, rep.Error.Message)
		}
	}
	if rep := c2.call("pingSession", map[string]any{"authToken": deleted.AuthToken}); rep.Error == nil || rep.Error.Code != 12031 {
		t.Errorf("a deleted session came back after the crash: %+v", rep)
	}
	var described struct{ Sessions []sessionResult }
	c2.mustCall("describeSessions", map[string]any{"authToken": admin.AuthToken, "authTokens": []string{altered.AuthToken, key.AuthToken}}, &described)
	got := map[string]sessionResult{}
	for _, s := range described.Sessions {
		got[s.SessionID] = s
	}
	if got[altered.SessionID].Description != "altered before the crash" {
		t.Errorf("alteration lost: %+v", got[altered.SessionID])
	}
	if !got[key.SessionID].PermanentSession {
		t.Errorf("API key not permanent after restart: %+v", got[key.SessionID])
	}
	var pref *string
	c2.mustCall("getUserPreference", []any{nkey, "theme"}, &pref)
	if pref == nil || *pref != "dark" {
		t.Errorf("preference lost: %v", pref)
	}
	if code := p2.terminate(); code != 0 {
		t.Errorf("SIGTERM exit code %d, want 0; logs:\n%s", code, p2.logs.String())
	}
}

// TestLogsHideSecrets checks that no token or password appears in the server's logs.
func TestLogsHideSecrets(t *testing.T) {
	p := startServer(t, "--in-memory", "--tcp", "127.0.0.1:0", "--http", "off", "--log-level", "debug")
	c := dialLine(t, p.tcpAddr)
	var admin, key sessionResult
	c.mustCall("createSession", map[string]any{"username": "admin", "password": testAdminPassword}, &admin)
	c.mustCall("createSession", map[string]any{"username": "admin", "password": testAdminPassword, "permanentSession": true}, &key)
	c.call("createSession", map[string]any{"username": "admin", "password": "a-wrong-password"})
	c.mustCall("createAccount", map[string]any{"authToken": admin.AuthToken, "username": "x", "password": "x-secret-pw"}, nil)
	c.mustCall("deleteSession", map[string]any{"authToken": key.AuthToken}, nil)
	p.terminate()
	logs := p.logs.String()
	for _, secret := range []string{testAdminPassword, "a-wrong-password", "x-secret-pw", admin.AuthToken, key.AuthToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a secret %q", secret[:6]+"…")
		}
	}
	if !strings.Contains(logs, "session created") {
		t.Errorf("expected session logs; got:\n%s", logs)
	}
}

// sessionTimes are the clocks describeSessions reports of a session.
type sessionTimes struct {
	SessionStartTimestamp        time.Time `json:"sessionStartTimestamp"`
	SessionLastAccessedTimestamp time.Time `json:"sessionLastAccessedTimestamp"`
}

// sessionAfterRestart starts sessiond again with args, logs in as admin there (a session of
// its own, so the one described is not touched) and returns the server and the times it
// reports of session id. The test fails if the session is gone; after says after what.
func sessionAfterRestart(t *testing.T, args []string, id, after string) (*proc, sessionTimes) {
	t.Helper()
	p := startServer(t, args...)
	c := dialLine(t, p.tcpAddr)
	var other sessionResult
	c.mustCall("createSession", map[string]any{"username": "admin", "password": testAdminPassword}, &other)
	var described struct{ Sessions []sessionTimes }
	c.mustCall("describeSessions", map[string]any{"authToken": other.AuthToken, "sessionIds": []string{id}}, &described)
	if len(described.Sessions) != 1 {
		t.Fatalf("the session is gone after %s: %+v", after, described)
	}
	return p, described.Sessions[0]
}
