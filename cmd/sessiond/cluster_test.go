package main

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine/redisstore/redistest"
)

// clusterConfigPath shares session keys between nodes (user.sessionPersistence) and caps
// sessions at 5 per account.
const clusterConfigPath = "../../testdata/config/cluster.json"

// startCluster starts n sessiond nodes at the same time on one redis-server: the last names
// it in SESSIOND_STORE, the others with --store.
func startCluster(t *testing.T, srv *redistest.Server, n int) []*proc {
	t.Helper()
	nodes := make([]*proc, n)
	for i := range nodes {
		args := []string{"--config", clusterConfigPath, "--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0"}
		if i < n-1 {
			nodes[i] = launchServer(t, append(args, "--store", srv.URL(0))...)
			continue
		}
		nodes[i] = launchServerWith(t, func(cmd *exec.Cmd) { cmd.Env = append(cmd.Env, "SESSIOND_STORE="+srv.URL(0)) }, args...)
	}
	for _, p := range nodes {
		p.waitReady()
	}
	return nodes
}

// errorCode returns the JSON-RPC error code of a reply, 0 for a result.
func errorCode(rep rpcReply) int {
	if rep.Error == nil {
		return 0
	}
	return rep.Error.Code
}

// healthStatus returns the HTTP status of GET /health on a node.
func healthStatus(t *testing.T, p *proc) int {
	t.Helper()
	resp, err := http.Get("http://" + p.httpAddr + "/health")
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestCluster runs three sessiond processes on one Redis: they bootstrap one admin between
// them, share sessions, keys, revocations, keep-alives and caps, survive the loss of a node,
// and recover by themselves when Redis restarts.
func TestCluster(t *testing.T) {
	srv := redistest.Start(t)
	nodes := startCluster(t, srv, 3)
	clients := make([]*lineClient, len(nodes))
	for i, p := range nodes {
		clients[i] = dialLine(t, p.tcpAddr)
	}
	a, b, c := clients[0], clients[1], clients[2]
	var admin sessionResult

	t.Run("one admin bootstrapped", func(t *testing.T) {
		created := 0
		for _, p := range nodes {
			created += strings.Count(p.logs.String(), `"msg":"created the admin account"`)
		}
		if created != 1 {
			t.Errorf("%d of 3 nodes started at once on an empty Redis created the admin; want exactly 1", created)
		}
		ignored := 0
		for _, p := range nodes {
			ignored += strings.Count(p.logs.String(), `"msg":"SESSIOND_ADMIN_PASSWORD not used`)
		}
		if ignored != 2 {
			t.Errorf("%d of the 2 nodes that found the admin made said that SESSIOND_ADMIN_PASSWORD was not used", ignored)
		}
		b.mustCall("createSession", map[string]any{"username": "admin", "password": testAdminPassword}, &admin)
		var list struct{ Accounts []struct{ Username string } }
		c.mustCall("listAccounts", map[string]any{"authToken": admin.AuthToken}, &list)
		if len(list.Accounts) != 1 || list.Accounts[0].Username != "admin" {
			t.Errorf("accounts: %+v; want only admin", list.Accounts)
		}
	})

	t.Run("sessions shared and revoked everywhere", func(t *testing.T) {
		a.mustCall("createAccount", map[string]any{"authToken": admin.AuthToken, "username": "alice", "password": "alice-pw"}, nil)
		var login sessionResult
		a.mustCall("createSession", map[string]any{"username": "alice", "password": "alice-pw"}, &login)
		for i, cl := range clients {
			if rep := cl.call("pingSession", map[string]any{"authToken": login.AuthToken}); rep.Error != nil {
				t.Errorf("node %d refuses a session created on node 0: %d %s", i, rep.Error.Code, rep.Error.Message)
			}
		}
		b.mustCall("alterSession", map[string]any{"authToken": login.AuthToken, "description": "altered on B"}, nil)
		var described struct{ Sessions []sessionResult }
		a.mustCall("describeSessions", map[string]any{"authToken": login.AuthToken}, &described)
		if len(described.Sessions) != 1 || described.Sessions[0].Description != "altered on B" {
			t.Errorf("node 0 describes %+v; want the description set on node 1", described.Sessions)
		}

		var revoked struct{ Revoked int }
		c.mustCall("revokeSessions", map[string]any{"authToken": admin.AuthToken, "sessionIds": []string{login.SessionID}}, &revoked)
		if revoked.Revoked != 1 {
			t.Errorf("revoked %d; want 1", revoked.Revoked)
		}
		for i, cl := range clients[:2] {
			if rep := cl.call("pingSession", map[string]any{"authToken": login.AuthToken}); errorCode(rep) != 12031 {
				t.Errorf("node %d right after a revocation on node 2: %+v; want error 12031", i, rep)
			}
		}

		var key string
		b.mustCall("authenticate", []any{"alice", "alice-pw"}, &key)
		var stored bool
		c.mustCall("setUserPreference", []any{key, map[string]string{"label": "theme", "value": "dark"}}, &stored)
		var theme *string
		a.mustCall("getUserPreference", []any{key, "theme"}, &theme)
		if !stored || theme == nil || *theme != "dark" {
			t.Errorf("a preference set on node 2 with a key from node 1 reads %v on node 0", theme)
		}
		c.mustCall("logout", []any{key}, nil)
		if rep := a.call("getUserPreference", []any{key, "theme"}); errorCode(rep) != 12031 {
			t.Errorf("a key logged out on node 2 still works on node 0: %+v", rep)
		}
	})

	t.Run("a session used on one node stays alive on all", func(t *testing.T) {
		var short sessionResult
		a.mustCall("createSession", map[string]any{"username": "alice", "password": "alice-pw", "idleConnectionTimeoutSeconds": 3}, &short)
		ping := func(cl *lineClient) int {
			return errorCode(cl.call("pingSession", map[string]any{"authToken": short.AuthToken}))
		}
		for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(400 * time.Millisecond) {
			if code := ping(b); code != 0 {
				t.Fatalf("node 1 lost a session it keeps using: error %d", code)
			}
		}
		if code := ping(c); code != 0 {
			t.Errorf("4 s into a 3 s idle timeout, kept alive by node 1, node 2 answers %d", code)
		}
		time.Sleep(3500 * time.Millisecond)
		for i, cl := range clients {
			if code := ping(cl); code != 12031 {
				t.Errorf("node %d after 3.5 s without use of a 3 s session: code %d; want 12031", i, code)
			}
		}
	})

	t.Run("caps counted across nodes", func(t *testing.T) {
		a.mustCall("createAccount", map[string]any{"authToken": admin.AuthToken, "username": "capped", "password": "pw"}, nil)
		const logins = 24
		replies := make([]rpcReply, logins)
		errs := make([]error, logins)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range logins {
			wg.Go(func() {
				conn, err := dialRPC(nodes[i%3].tcpAddr)
				if err != nil {
					errs[i] = err
					return
				}
				defer conn.close()
				<-start
				replies[i], errs[i] = conn.call("createSession", map[string]any{"username": "capped", "password": "pw"})
			})
		}
		close(start)
		wg.Wait()
		ok := 0
		for i, rep := range replies {
			var data struct{ Limit string }
			switch {
			case errs[i] != nil:
				t.Errorf("login %d: %v", i, errs[i])
			case rep.Error == nil:
				ok++
			case rep.Error.Code == 84 && json.Unmarshal(rep.Error.Data, &data) == nil && data.Limit == "maxJsonApiSessionsPerUsername":
			default:
				t.Errorf("login %d: %d %s %s; want success or error 84 for maxJsonApiSessionsPerUsername", i, rep.Error.Code, rep.Error.Message, rep.Error.Data)
			}
		}
		if ok != 5 {
			t.Errorf("%d of %d parallel logins on 3 nodes succeeded; the per-account cap is 5", ok, logins)
		}
		var list struct{ Sessions []sessionResult }
		c.mustCall("listSessions", map[string]any{"authToken": admin.AuthToken, "usernameFilter": []string{"capped"}}, &list)
		if len(list.Sessions) != 5 {
			t.Errorf("node 2 lists %d sessions of the capped account; want 5", len(list.Sessions))
		}
	})

	var tokens []string // every live session, created on node 0
	t.Run("a node killed, the others serve its sessions", func(t *testing.T) {
		var temporary, apiKey sessionResult
		a.mustCall("createAccount", map[string]any{"authToken": admin.AuthToken, "username": "bob", "password": "bob-pw"}, nil)
		a.mustCall("createSession", map[string]any{"username": "bob", "password": "bob-pw"}, &temporary)
		a.mustCall("createSession", map[string]any{"username": "bob", "password": "bob-pw", "permanentSession": true}, &apiKey)
		var key string
		a.mustCall("authenticate", []any{"bob", "bob-pw"}, &key)
		tokens = []string{admin.AuthToken, temporary.AuthToken, apiKey.AuthToken, key}
		for _, tok := range tokens {
			a.mustCall("pingSession", map[string]any{"authToken": tok}, nil)
		}
		nodes[0].kill()
		for i, cl := range clients[1:] {
			for _, tok := range tokens {
				if rep := cl.call("pingSession", map[string]any{"authToken": tok}); rep.Error != nil {
					t.Errorf("node %d after node 0 was killed: session %s…: %d %s", i+1, tok[:8], rep.Error.Code, rep.Error.Message)
				}
			}
		}
		b.mustCall("createSession", map[string]any{"username": "bob", "password": "bob-pw"}, nil)
	})

	t.Run("Redis restarted, the nodes recover", func(t *testing.T) {
		for i, p := range nodes[1:] {
			if code := healthStatus(t, p); code != http.StatusOK {
				t.Errorf("node %d with Redis up: GET /health %d; want 200", i+1, code)
			}
		}
		srv.Kill()
		began := time.Now()
		for i, p := range nodes[1:] {
			if code := healthStatus(t, p); code != http.StatusServiceUnavailable {
				t.Errorf("node %d with Redis down: GET /health %d; want 503", i+1, code)
			}
		}
		for i, cl := range clients[1:] {
			if rep := cl.call("pingSession", map[string]any{"authToken": admin.AuthToken}); errorCode(rep) != 1010 {
				t.Errorf("node %d with Redis down: %+v; want error 1010", i+1, rep)
			}
			if rep := cl.call("createSession", map[string]any{"username": "bob", "password": "bob-pw"}); errorCode(rep) != 1010 {
				t.Errorf("node %d login with Redis down: %+v; want error 1010", i+1, rep)
			}
		}
		if took := time.Since(began); took > 10*time.Second {
			t.Errorf("two health checks and four calls with Redis down took %v; want them to fail fast", took)
		}
		srv.Restart()
		deadline := time.Now().Add(15 * time.Second)
		for i, cl := range clients[1:] {
			for {
				rep := cl.call("pingSession", map[string]any{"authToken": admin.AuthToken})
				if rep.Error == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node %d still failing 15 s after Redis came back: %d %s", i+1, rep.Error.Code, rep.Error.Message)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if code := healthStatus(t, nodes[i+1]); code != http.StatusOK {
				t.Errorf("node %d after the Redis restart: GET /health %d; want 200", i+1, code)
			}
			for _, tok := range tokens {
				if rep := cl.call("pingSession", map[string]any{"authToken": tok}); rep.Error != nil {
					t.Errorf("node %d after the Redis restart: session %s… lost: %d %s", i+1, tok[:8], rep.Error.Code, rep.Error.Message)
				}
			}
		}
		c.mustCall("createSession", map[string]any{"username": "bob", "password": "bob-pw"}, nil)
	})

	for i, p := range nodes[1:] {
		if code := p.terminate(); code != 0 {
			t.Errorf("node %d: SIGTERM exit code %d; logs:\n%s", i+1, code, p.logs.String())
		}
	}
	if t.Failed() {
		for i, p := range nodes {
			t.Logf("node %d logs:\n%s", i, p.logs.String())
		}
	}
}

// A node refuses to start when Redis cannot be reached, saying so.
func TestClusterRedisUnreachable(t *testing.T) {
	srv := redistest.Start(t)
	url := srv.URL(0)
	srv.Kill()
	p := launchServer(t, "--config", clusterConfigPath, "--store", url, "--tcp", "127.0.0.1:0", "--http", "off")
	select {
	case err := <-p.ready: // sent once stderr is read to its end
		if err == nil {
			t.Fatal("sessiond became ready with Redis unreachable")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sessiond did not exit with Redis unreachable")
	}
	<-p.exited
	if code := p.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(p.logs.String(), "does not answer") {
		t.Errorf("exit code %d, logs %q; want 1 and a message saying Redis does not answer", code, p.logs.String())
	}
}
