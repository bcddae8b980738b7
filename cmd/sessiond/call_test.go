package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/rpc"
)

// fakeTCPServer is a stand-in sessiond: it reads one request line per connection, records it
// and lets the test's handler answer.
type fakeTCPServer struct {
	addr     string
	mu       sync.Mutex
	requests []string
	done     chan struct{} // closed at cleanup, releasing handlers that hang
}

func startFakeTCP(t *testing.T, handle func(s *fakeTCPServer, conn net.Conn, request string)) *fakeTCPServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeTCPServer{addr: ln.Addr().String(), done: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() { close(s.done); ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				line, err := bufio.NewReader(conn).ReadString('\n')
				if err != nil {
					return
				}
				request := strings.TrimSuffix(line, "\n")
				s.mu.Lock()
				s.requests = append(s.requests, request)
				s.mu.Unlock()
				handle(s, conn, request)
			}()
		}
	}()
	return s
}

func (s *fakeTCPServer) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// replyWith answers every request with the same line.
func replyWith(line string) func(*fakeTCPServer, net.Conn, string) {
	return func(_ *fakeTCPServer, conn net.Conn, _ string) { io.WriteString(conn, line+"\n") }
}

// runCallForTest runs `sessiond call` with args, an empty stdin, and neither SESSIOND_TOKEN
// nor SESSIOND_PASSWORD in the environment.
func runCallForTest(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCallWithStdin(t, "", args...)
}

// runCallWithStdin is runCallForTest with stdin.
func runCallWithStdin(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("SESSIOND_TOKEN", "")
	t.Setenv("SESSIOND_PASSWORD", "")
	var out, errOut bytes.Buffer
	code = runCall(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestCallTCP checks requests sent over TCP and how each kind of reply is printed.
func TestCallTCP(t *testing.T) {
	for _, tc := range []struct {
		name        string
		args        []string // after --addr ADDR
		reply       string
		wantRequest string
		wantCode    int
		wantStdout  string
		wantStderr  string
	}{
		{
			name:        "result printed as indented JSON",
			args:        []string{"createSession", `{"username": "admin", "password": "pw"}`},
			reply:       `{"jsonrpc":"2.0","id":1,"result":{"authToken":"tok","permanentSession":false,"hostIpAddresses":["10.0.0.5"]}}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"createSession","params":{"username":"admin","password":"pw"}}`,
			wantStdout:  "{\n  \"authToken\": \"tok\",\n  \"permanentSession\": false,\n  \"hostIpAddresses\": [\n    \"10.0.0.5\"\n  ]\n}\n",
		},
		{
			name:        "params characters are sent as typed",
			args:        []string{"createSession", `{"username":"admin","password":"<p&w>\u00e9"}`},
			reply:       `{"jsonrpc":"2.0","id":1,"result":{}}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"createSession","params":{"username":"admin","password":"<p&w>\u00e9"}}`,
			wantStdout:  "{}\n",
		},
		{
			name:        "no params, no params member",
			args:        []string{"pingSession"},
			reply:       `{"jsonrpc":"2.0","id":1,"result":{}}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"pingSession"}`,
			wantStdout:  "{}\n",
		},
		{
			name:        "token becomes params when there are none",
			args:        []string{"--token", "T1", "describeSessions"},
			reply:       `{"jsonrpc":"2.0","id":1,"result":{"sessions":[]}}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"describeSessions","params":{"authToken":"T1"}}`,
			wantStdout:  "{\n  \"sessions\": []\n}\n",
		},
		{
			name:        "token goes first into named params without one",
			args:        []string{"--token", "T1", "listSessions", `{"usernameFilter":["bob"]}`},
			reply:       `{"jsonrpc":"2.0","id":1,"result":{"sessions":[]}}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"listSessions","params":{"authToken":"T1","usernameFilter":["bob"]}}`,
			wantStdout:  "{\n  \"sessions\": []\n}\n",
		},
		{
			name:        "token into empty named params",
			args:        []string{"listSessions", "{ }", "--token=T1"},
			reply:       `{"jsonrpc":"2.0","id":1,"result":{}}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"listSessions","params":{"authToken":"T1"}}`,
			wantStdout:  "{}\n",
		},
		{
			name:        "an authToken in the params wins over --token",
			args:        []string{"--token", "T1", "pingSession", `{"authToken":"T2"}`},
			reply:       `{"jsonrpc":"2.0","id":1,"result":{}}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"pingSession","params":{"authToken":"T2"}}`,
			wantStdout:  "{}\n",
		},
		{
			name:        "a sessionKey in the params wins over --token",
			args:        []string{"--token", "T1", "logout", `{"sessionKey":"K"}`},
			reply:       `{"jsonrpc":"2.0","id":1,"result":true}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"logout","params":{"sessionKey":"K"}}`,
			wantStdout:  "true\n",
		},
		{
			name:        "positional params are sent as they are",
			args:        []string{"--token", "T1", "authenticate", `["admin", "pw"]`},
			reply:       `{"jsonrpc":"2.0","id":1,"result":"sk_1"}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"authenticate","params":["admin","pw"]}`,
			wantStdout:  "\"sk_1\"\n",
		},
		{
			name:        "authenticate's -1 is printed and exits 1",
			args:        []string{"authenticate", `["admin", "pw"]`},
			reply:       `{"jsonrpc":"2.0","id":1,"result":"-1"}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"authenticate","params":["admin","pw"]}`,
			wantCode:    1,
			wantStdout:  "\"-1\"\n",
			wantStderr:  "sessiond call: authenticate answered \"-1\": the login failed (unknown user, wrong password or a locked account)\n",
		},
		{
			name:        "setUserPreference's false is printed and exits 1",
			args:        []string{"setUserPreference", `["K",{"label":"TickleTime","value":"x"}]`},
			reply:       `{"jsonrpc":"2.0","id":1,"result":false}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"setUserPreference","params":["K",{"label":"TickleTime","value":"x"}]}`,
			wantCode:    1,
			wantStdout:  "false\n",
			wantStderr:  "sessiond call: setUserPreference answered false: the session key is not valid\n",
		},
		{
			name:        "a login without a password says where to give it",
			args:        []string{"createSession", `{"username":"admin"}`},
			reply:       `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Invalid params","data":{"field":"password","reason":"required"}}}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"createSession","params":{"username":"admin"}}`,
			wantCode:    1,
			wantStderr:  "error -32602: Invalid params\n{\n  \"field\": \"password\",\n  \"reason\": \"required\"\n}\nsessiond call: give the password with SESSIOND_PASSWORD, --password-file FILE or --password-stdin\n",
		},
		{
			name:        "null result",
			args:        []string{"getUserPreference", `["K","colour"]`},
			reply:       `{"jsonrpc":"2.0","id":1,"result":null}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"getUserPreference","params":["K","colour"]}`,
			wantStdout:  "null\n",
		},
		{
			name:        "JSON-RPC error with data on stderr, exit 1",
			args:        []string{"pingSession", `{"authToken":"bad"}`},
			reply:       `{"jsonrpc":"2.0","id":1,"error":{"code":12031,"message":"'authToken' does not match any existing session.","data":{"reason":"invalidAuthToken"}}}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"pingSession","params":{"authToken":"bad"}}`,
			wantCode:    1,
			wantStderr:  "error 12031: 'authToken' does not match any existing session.\n{\n  \"reason\": \"invalidAuthToken\"\n}\n",
		},
		{
			name:        "JSON-RPC error without data",
			args:        []string{"nosuch"},
			reply:       `{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"nosuch"}`,
			wantCode:    1,
			wantStderr:  "error -32601: Method not found\n",
		},
		{
			name:        "error for an unreadable request comes with id null",
			args:        []string{"pingSession"},
			reply:       `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"pingSession"}`,
			wantCode:    1,
			wantStderr:  "error -32600: Invalid Request\n",
		},
		{
			name:        "reply to another id",
			args:        []string{"pingSession"},
			reply:       `{"jsonrpc":"2.0","id":7,"result":{}}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"pingSession"}`,
			wantCode:    2,
			wantStderr:  "sessiond call: reply is for id 7, not 1\n",
		},
		{
			name:        "reply with neither result nor error",
			args:        []string{"pingSession"},
			reply:       `{"jsonrpc":"2.0","id":1}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"pingSession"}`,
			wantCode:    2,
			wantStderr:  "sessiond call: malformed reply (neither result nor error): {\"jsonrpc\":\"2.0\",\"id\":1}\n",
		},
		{
			name:        "reply that is not a response object",
			args:        []string{"pingSession"},
			reply:       `[{"jsonrpc":"2.0","id":1,"result":{}}]`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"pingSession"}`,
			wantCode:    2,
			wantStderr:  "sessiond call: malformed reply (not a JSON-RPC response object): [{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}]\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFakeTCP(t, replyWith(tc.reply))
			code, stdout, stderr := runCallForTest(t, append([]string{"--addr", srv.addr}, tc.args...)...)
			if code != tc.wantCode || stdout != tc.wantStdout || stderr != tc.wantStderr {
				t.Errorf("exit %d, stdout %q, stderr %q\nwant exit %d, stdout %q, stderr %q", code, stdout, stderr, tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
			if got := srv.received(); len(got) != 1 || got[0] != tc.wantRequest {
				t.Errorf("server received %q\nwant %q", got, tc.wantRequest)
			}
		})
	}
}

// TestCallTokenFromEnvironment checks that SESSIOND_TOKEN stands in for --token.
func TestCallTokenFromEnvironment(t *testing.T) {
	srv := startFakeTCP(t, replyWith(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	t.Setenv("SESSIOND_TOKEN", "ENV")
	var out, errOut bytes.Buffer
	if code := runCall([]string{"--addr", srv.addr, "pingSession"}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if got := srv.received(); len(got) != 1 || !strings.Contains(got[0], `"params":{"authToken":"ENV"}`) {
		t.Errorf("server received %q", got)
	}
}

// TestCallTokenOnlyWhereTaken checks that a token from SESSIOND_TOKEN is not added to the
// params of a method that takes none, such as a login, which would refuse the unknown member.
func TestCallTokenOnlyWhereTaken(t *testing.T) {
	srv := startFakeTCP(t, replyWith(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	t.Setenv("SESSIOND_TOKEN", "ENV")
	t.Setenv("SESSIOND_PASSWORD", "")
	var out, errOut bytes.Buffer
	params := `{"username":"admin","password":"pw"}`
	if code := runCall([]string{"--addr", srv.addr, "createSession", params}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if got := srv.received(); len(got) != 1 || !strings.Contains(got[0], `"params":`+params) {
		t.Errorf("server received %q, want the params as given", got)
	}
}

// TestCallConnectionFailures checks that an unreachable, silent or hanging server gives a
// clear message and exit 2.
func TestCallConnectionFailures(t *testing.T) {
	closedAddr := refusingAddr(t)

	silent := startFakeTCP(t, func(*fakeTCPServer, net.Conn, string) {})
	hanging := startFakeTCP(t, func(s *fakeTCPServer, _ net.Conn, _ string) { <-s.done })
	garbage := startFakeTCP(t, replyWith(`{"jsonrpc":"2.0",`+"\x00"))
	partial := startFakeTCP(t, func(_ *fakeTCPServer, conn net.Conn, _ string) { io.WriteString(conn, `{"jsonrpc":"2.0","id":1,"res`) })
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()
	webAddr := strings.TrimPrefix(web.URL, "http://")

	for _, tc := range []struct {
		name, addr, want string
	}{
		{"nothing listening", closedAddr, "sessiond call: cannot connect to " + closedAddr + ": "},
		{"closed without a reply", silent.addr, "sessiond call: " + silent.addr + " closed the connection without replying\n"},
		{"no reply in time", hanging.addr, "sessiond call: no reply from " + hanging.addr + " within the timeout (--timeout)\n"},
		{"malformed reply", garbage.addr, "sessiond call: malformed reply from " + garbage.addr + ": invalid character"},
		{"reply cut short", partial.addr, "sessiond call: " + partial.addr + " closed the connection in the middle of its reply\n"},
		{"an HTTP listener", webAddr, "sessiond call: " + webAddr + " answers HTTP, not JSON-RPC over TCP: use --http http://" + webAddr + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := runCallForTest(t, "--addr", tc.addr, "--timeout", "300ms", "pingSession")
			if code != 2 || stdout != "" || !strings.HasPrefix(stderr, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and stderr starting %q", code, stdout, stderr, tc.want)
			}
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("took %v", elapsed)
			}
		})
	}
}

// TestCallUsageErrors checks that bad arguments exit 2 with a message and never connect.
func TestCallUsageErrors(t *testing.T) {
	srv := startFakeTCP(t, replyWith(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no method", nil, "sessiond call: missing METHOD\n"},
		{"too many arguments", []string{"createSession", `{"username":`, `"admin"}`}, "sessiond call: too many arguments (3); quote PARAMS_JSON as one argument\n"},
		{"invalid JSON", []string{"createSession", `{"username":}`}, "sessiond call: PARAMS_JSON is not valid JSON: unexpected character at byte 13 looking for beginning of value\n"},
		{"cut-short JSON", []string{"createSession", `{"username":"a"`}, "sessiond call: PARAMS_JSON is not valid JSON: unexpected EOF\n"},
		{"a string", []string{"createSession", `"admin"`}, "sessiond call: PARAMS_JSON must be a JSON object {…} or array […], got a string\n"},
		{"a number", []string{"createSession", `42`}, "sessiond call: PARAMS_JSON must be a JSON object {…} or array […], got a number\n"},
		{"two values", []string{"createSession", `{} []`}, "sessiond call: PARAMS_JSON has more after the first JSON value; give one object or array\n"},
		{"empty", []string{"createSession", ` `}, "sessiond call: PARAMS_JSON is empty; leave it out for no params\n"},
		{"unknown flag", []string{"--adress", "x", "pingSession"}, "sessiond call: unknown flag: --adress\n"},
		{"both transports", []string{"--addr", "127.0.0.1:1", "--http", "http://127.0.0.1:1", "pingSession"}, "sessiond call: give --addr or --http, not both\n"},
		{"zero timeout", []string{"--timeout", "0s", "pingSession"}, "sessiond call: --timeout must be positive\n"},
		{"bad HTTP URL", []string{"--http", "ftp://x", "pingSession"}, "sessiond call: --http \"ftp://x\" is not an http:// or https:// URL such as http://127.0.0.1:7401\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.name != "both transports" && tc.name != "bad HTTP URL" {
				args = append([]string{"--addr", srv.addr}, args...)
			}
			code, stdout, stderr := runCallForTest(t, args...)
			if code != 2 || stdout != "" || !strings.HasPrefix(stderr, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2, stderr starting %q", code, stdout, stderr, tc.want)
			}
		})
	}
	if got := srv.received(); len(got) != 0 {
		t.Errorf("usage errors reached the server: %q", got)
	}
}

// TestCallHelp checks that --help prints the usage with examples on stdout and exits 0.
func TestCallHelp(t *testing.T) {
	for _, flag := range []string{"--help", "-h"} {
		code, stdout, stderr := runCallForTest(t, flag)
		if code != 0 || stderr != "" {
			t.Errorf("%s: exit %d, stderr %q", flag, code, stderr)
		}
		for _, want := range []string{"Usage: sessiond call [flags] METHOD [PARAMS_JSON | -]", "Examples:", "--addr string", "--http string", "--token string", "--password-file string", "--password-stdin", "SESSIOND_PASSWORD", "--timeout duration", "(default 10s)", "Exit status:"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%s: usage lacks %q:\n%s", flag, want, stdout)
			}
		}
	}
}

// TestCallHelpOnSecrets checks that the usage offers no way to keep a secret off the command
// line that puts it there, and says that only stderr hides secrets, not the result.
func TestCallHelpOnSecrets(t *testing.T) {
	_, stdout, _ := runCallForTest(t, "--help")
	ways, _, _ := strings.Cut(stdout, "Exit status:")
	_, ways, _ = strings.Cut(ways, "so sessiond call can take them from elsewhere:")
	_, examples, _ := strings.Cut(stdout, "Examples:")
	examples, _, _ = strings.Cut(examples, "Flags:")
	if !strings.Contains(ways, "a token: SESSIOND_TOKEN (--token TOKEN puts it on the command line)") {
		t.Errorf("the ways to keep secrets off the command line should give the token as SESSIOND_TOKEN, --token as what puts it there:\n%s", ways)
	}
	if strings.Contains(examples, "--token") {
		t.Errorf("an example puts the token on the command line:\n%s", examples)
	}
	if !strings.Contains(ways, "The result on stdout is printed as the server sent it") {
		t.Errorf("the usage does not say that the result on stdout hides nothing:\n%s", ways)
	}
}

// TestCallHTTP checks requests sent as HTTP POSTs (headers, bearer token, URL forms) and how
// HTTP-level failures are reported.
func TestCallHTTP(t *testing.T) {
	type seen struct {
		method, path, contentType, authorization, body string
	}
	var (
		mu   sync.Mutex
		last seen
	)
	mux := http.NewServeMux()
	record := func(r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		last = seen{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), string(body)}
		mu.Unlock()
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"ok":true}}`)
	})
	mux.HandleFunc("/rpc-error", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}`)
	})
	mux.HandleFunc("/bad-gateway", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		http.Error(w, "upstream down", http.StatusBadGateway)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	hostPort := strings.TrimPrefix(srv.URL, "http://")

	for _, tc := range []struct {
		name       string
		args       []string
		want       seen
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{
			name:       "bearer token and authToken",
			args:       []string{"--http", srv.URL, "--token", "T1", "describeSessions"},
			want:       seen{"POST", "/", "application/json", "Bearer T1", `{"jsonrpc":"2.0","id":1,"method":"describeSessions","params":{"authToken":"T1"}}`},
			wantStdout: "{\n  \"ok\": true\n}\n",
		},
		{
			name:       "host:port without a scheme, no token",
			args:       []string{"--http", hostPort, "authenticate", `["admin","pw"]`},
			want:       seen{"POST", "/", "application/json", "", `{"jsonrpc":"2.0","id":1,"method":"authenticate","params":["admin","pw"]}`},
			wantStdout: "{\n  \"ok\": true\n}\n",
		},
		{
			name:       "bearer token with positional params",
			args:       []string{"--http", srv.URL + "/", "--token", "K", "logout", `["K"]`},
			want:       seen{"POST", "/", "application/json", "Bearer K", `{"jsonrpc":"2.0","id":1,"method":"logout","params":["K"]}`},
			wantStdout: "{\n  \"ok\": true\n}\n",
		},
		{
			name:       "JSON-RPC error under an HTTP error status",
			args:       []string{"--http", srv.URL + "/rpc-error", "pingSession"},
			want:       seen{"POST", "/rpc-error", "application/json", "", `{"jsonrpc":"2.0","id":1,"method":"pingSession"}`},
			wantCode:   1,
			wantStderr: "error -32700: Parse error\n",
		},
		{
			name:       "HTTP failure without a JSON-RPC body",
			args:       []string{"--http", srv.URL + "/bad-gateway", "pingSession"},
			want:       seen{"POST", "/bad-gateway", "application/json", "", `{"jsonrpc":"2.0","id":1,"method":"pingSession"}`},
			wantCode:   2,
			wantStderr: "sessiond call: " + srv.URL + "/bad-gateway answered HTTP 502 Bad Gateway without a JSON-RPC reply: upstream down\n",
		},
		{
			name:       "no reply in time",
			args:       []string{"--http", srv.URL + "/slow", "--timeout", "300ms", "pingSession"},
			want:       seen{"POST", "/slow", "application/json", "", `{"jsonrpc":"2.0","id":1,"method":"pingSession"}`},
			wantCode:   2,
			wantStderr: "sessiond call: no reply from " + srv.URL + "/slow within the timeout (--timeout)\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCallForTest(t, tc.args...)
			if code != tc.wantCode || stdout != tc.wantStdout || stderr != tc.wantStderr {
				t.Errorf("exit %d, stdout %q, stderr %q\nwant exit %d, stdout %q, stderr %q", code, stdout, stderr, tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
			mu.Lock()
			got := last
			mu.Unlock()
			if got != tc.want {
				t.Errorf("server saw %+v\nwant %+v", got, tc.want)
			}
		})
	}

	t.Run("nothing listening", func(t *testing.T) {
		closed := httptest.NewServer(http.NotFoundHandler())
		url := closed.URL
		closed.Close()
		code, _, stderr := runCallForTest(t, "--http", url, "pingSession")
		if want := "sessiond call: cannot reach " + url + "/: "; code != 2 || !strings.HasPrefix(stderr, want) {
			t.Errorf("exit %d, stderr %q; want exit 2, stderr starting %q", code, stderr, want)
		}
	})
}

// unusedAddr returns a loopback address that nothing listens on: the kernel's choice for a
// listener, closed again.
func unusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// writePasswordFile writes content to a file of mode 0600 in a temporary directory and
// returns its path.
func writePasswordFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCallPasswordSources checks that --password-file, --password-stdin and SESSIOND_PASSWORD
// fill the password of the login methods, named or positional, and that SESSIOND_PASSWORD
// gives way to a password in the params and is left out of other methods.
func TestCallPasswordSources(t *testing.T) {
	const pw = `s3cret <&> "q" \ é`
	const quoted = `"s3cret <&> \"q\" \\ é"`
	for _, tc := range []struct {
		name        string
		env         string // SESSIOND_PASSWORD
		stdin       string
		args        []string // after --addr ADDR; "FILE" is replaced by a file holding pw
		fileContent string
		wantRequest string
	}{
		{
			name:        "file, named params, line ending dropped",
			args:        []string{"--password-file", "FILE", "createSession", `{"username":"admin","description":"cli"}`},
			fileContent: pw + "\r\n",
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"createSession","params":{"username":"admin","description":"cli","password":` + quoted + `}}`,
		},
		{
			name:        "file without a line ending",
			args:        []string{"--password-file=FILE", "createSession", `{"username":"admin"}`},
			fileContent: pw,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"createSession","params":{"username":"admin","password":` + quoted + `}}`,
		},
		{
			name:        "stdin, positional params",
			stdin:       pw + "\n",
			args:        []string{"--password-stdin", "authenticate", `["admin"]`},
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"authenticate","params":["admin",` + quoted + `]}`,
		},
		{
			name:        "stdin, named NetX params",
			stdin:       pw,
			args:        []string{"authenticate", `{"login":"admin"}`, "--password-stdin"},
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"authenticate","params":{"login":"admin","password":` + quoted + `}}`,
		},
		{
			name:        "environment, no params",
			env:         pw,
			args:        []string{"createSession"},
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"createSession","params":{"password":` + quoted + `}}`,
		},
		{
			name:        "environment, empty named params",
			env:         pw,
			args:        []string{"createSession", `{}`},
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"createSession","params":{"password":` + quoted + `}}`,
		},
		{
			name:        "environment gives way to a password in the params",
			env:         pw,
			args:        []string{"authenticate", `["alice","alice-pw"]`},
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"authenticate","params":["alice","alice-pw"]}`,
		},
		{
			name:        "environment not used by a method without a login password",
			env:         pw,
			args:        []string{"createAccount", `{"authToken":"T","username":"bob"}`},
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"createAccount","params":{"authToken":"T","username":"bob"}}`,
		},
		{
			name:        "environment and --token together",
			env:         pw,
			args:        []string{"--token", "T1", "pingSession"},
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"pingSession","params":{"authToken":"T1"}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFakeTCP(t, replyWith(`{"jsonrpc":"2.0","id":1,"result":{}}`))
			args := []string{"--addr", srv.addr}
			for _, arg := range tc.args {
				if strings.Contains(arg, "FILE") {
					arg = strings.Replace(arg, "FILE", writePasswordFile(t, tc.fileContent), 1)
				}
				args = append(args, arg)
			}
			t.Setenv("SESSIOND_TOKEN", "")
			t.Setenv("SESSIOND_PASSWORD", tc.env)
			var out, errOut bytes.Buffer
			if code := runCall(args, strings.NewReader(tc.stdin), &out, &errOut); code != 0 || out.String() != "{}\n" {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
			}
			if got := srv.received(); len(got) != 1 || got[0] != tc.wantRequest {
				t.Errorf("server received %q\nwant %q", got, tc.wantRequest)
			}
		})
	}
}

// TestCallPasswordEnvironmentNotUTF8 checks that a SESSIOND_PASSWORD that is not UTF-8 fails
// only the calls it would fill, and leaves the others as they are.
func TestCallPasswordEnvironmentNotUTF8(t *testing.T) {
	srv := startFakeTCP(t, replyWith(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	for _, tc := range []struct {
		name        string
		args        []string
		wantCode    int
		wantRequest string // "" for none
		wantStderr  string
	}{
		{"a method without a login password", []string{"pingSession"}, 0,
			`{"jsonrpc":"2.0","id":1,"method":"pingSession"}`, ""},
		{"a login with its password in the params", []string{"authenticate", `["admin","pw"]`}, 0,
			`{"jsonrpc":"2.0","id":1,"method":"authenticate","params":["admin","pw"]}`, ""},
		{"a login it would fill", []string{"createSession", `{"username":"admin"}`}, 2, "",
			"sessiond call: SESSIOND_PASSWORD is not valid UTF-8, which a JSON string cannot carry\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(srv.received())
			t.Setenv("SESSIOND_TOKEN", "")
			t.Setenv("SESSIOND_PASSWORD", "pw\xff")
			var out, errOut bytes.Buffer
			code := runCall(append([]string{"--addr", srv.addr}, tc.args...), strings.NewReader(""), &out, &errOut)
			if code != tc.wantCode || !strings.HasPrefix(errOut.String(), tc.wantStderr) || (tc.wantStderr == "" && errOut.Len() > 0) {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr %q", code, errOut.String(), tc.wantCode, tc.wantStderr)
			}
			got := srv.received()[before:]
			switch {
			case tc.wantRequest == "" && len(got) != 0:
				t.Errorf("server received %q, want nothing", got)
			case tc.wantRequest != "" && (len(got) != 1 || got[0] != tc.wantRequest):
				t.Errorf("server received %q\nwant %q", got, tc.wantRequest)
			}
		})
	}
}

// TestCallPasswordUsageErrors checks that a password flag that cannot be used, or a password
// file or stdin that does not hold one non-empty password, exits 2 without connecting and
// without printing the password.
func TestCallPasswordUsageErrors(t *testing.T) {
	const pw = "pw-never-printed"
	srv := startFakeTCP(t, replyWith(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	missing := filepath.Join(t.TempDir(), "missing")
	emptyFile, lineEndingFile := writePasswordFile(t, ""), writePasswordFile(t, "\r\n")
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"not a login method", pw, []string{"--password-stdin", "createAccount", `{"username":"bob"}`},
			"sessiond call: --password-stdin: createAccount takes no login password (only createSession and authenticate do); to keep other secrets off the command line, give PARAMS_JSON as - and write it on stdin\n"},
		{"unknown method", pw, []string{"--password-stdin", "nosuch"},
			"sessiond call: --password-stdin: nosuch takes no login password"},
		{"named params with a password", pw, []string{"--password-stdin", "createSession", `{"username":"a","password":"x"}`},
			"sessiond call: --password-stdin: PARAMS_JSON has a password already; give it in one place\n"},
		{"positional params with a password", pw, []string{"--password-file", writePasswordFile(t, pw), "authenticate", `["a","x"]`},
			"sessiond call: --password-file: PARAMS_JSON has a password already; give it in one place\n"},
		{"positional params without the login", pw, []string{"--password-stdin", "authenticate", `[]`},
			"sessiond call: --password-stdin: positional PARAMS_JSON must hold login, which come before the password\n"},
		{"both flags", pw, []string{"--password-stdin", "--password-file", missing, "createSession"},
			"sessiond call: give --password-file or --password-stdin, not both\n"},
		{"password and params both from stdin", pw, []string{"--password-stdin", "createSession", "-"},
			"sessiond call: --password-stdin and PARAMS_JSON - both read stdin; put the password in the params or in --password-file\n"},
		{"missing file", "", []string{"--password-file", missing, "createSession"},
			"sessiond call: --password-file: open " + missing + ": no such file or directory\n"},
		{"two lines", pw + "\n" + pw + "\n", []string{"--password-stdin", "createSession"},
			"sessiond call: --password-stdin: stdin holds more than one line; it must hold only the password\n"},
		{"a large file", "", []string{"--password-file", writePasswordFile(t, strings.Repeat(pw, 1000)), "createSession"},
			"sessiond call: --password-file " + os.TempDir()},
		{"not UTF-8", pw + "\xff", []string{"--password-stdin", "createSession"},
			"sessiond call: --password-stdin: stdin is not valid UTF-8, which a JSON string cannot carry\n"},
		{"empty stdin", "", []string{"--password-stdin", "createSession", `{"username":"admin"}`},
			"sessiond call: --password-stdin: stdin holds no password, and an empty one would count as a failed login; if the account's password is empty, give \"password\":\"\" in PARAMS_JSON\n"},
		{"a line ending alone on stdin", "\n", []string{"--password-stdin", "authenticate", `["admin"]`},
			"sessiond call: --password-stdin: stdin holds no password"},
		{"an empty file", "", []string{"--password-file", emptyFile, "createSession"},
			"sessiond call: --password-file " + emptyFile + " holds no password"},
		{"a line ending alone in a file", "", []string{"--password-file", lineEndingFile, "createSession"},
			"sessiond call: --password-file " + lineEndingFile + " holds no password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCallWithStdin(t, tc.stdin, append([]string{"--addr", srv.addr}, tc.args...)...)
			if code != 2 || stdout != "" || !strings.HasPrefix(stderr, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2, stderr starting %q", code, stdout, stderr, tc.want)
			}
			if strings.Contains(stderr, pw) {
				t.Errorf("stderr shows the password: %q", stderr)
			}
		})
	}
	if got := srv.received(); len(got) != 0 {
		t.Errorf("usage errors reached the server: %q", got)
	}
}

// TestCallParamsFromStdin checks that PARAMS_JSON "-" reads the params from stdin, and that
// a syntax error in them is reported without quoting them.
func TestCallParamsFromStdin(t *testing.T) {
	srv := startFakeTCP(t, replyWith(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	code, stdout, stderr := runCallWithStdin(t, "{\n  \"username\": \"alice\",\n  \"password\": \"alice-pw\"\n}\n", "--addr", srv.addr, "--token", "T", "createAccount", "-")
	if code != 0 || stdout != "{}\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	want := `{"jsonrpc":"2.0","id":1,"method":"createAccount","params":{"authToken":"T","username":"alice","password":"alice-pw"}}`
	if got := srv.received(); len(got) != 1 || got[0] != want {
		t.Errorf("server received %q\nwant %q", got, want)
	}

	for _, tc := range []struct{ name, stdin, want string }{
		{"empty", "", "sessiond call: PARAMS_JSON is empty; leave it out for no params\n"},
		{"a quote too many in a password", `{"username":"alice","password":"ab"Zcd"}`,
			"sessiond call: PARAMS_JSON is not valid JSON: unexpected character at byte 36 after object key:value pair\n"},
		{"a quote in place of a value", `{"password":'Zcd'}`,
			"sessiond call: PARAMS_JSON is not valid JSON: unexpected character at byte 13 looking for beginning of value\n"},
		{"a control character", "{\"password\":\"ab\x01Z\"}",
			"sessiond call: PARAMS_JSON is not valid JSON: unexpected character at byte 16 in string literal\n"},
		{"a string", `"Zcd"`, "sessiond call: PARAMS_JSON must be a JSON object {…} or array […], got a string\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCallWithStdin(t, tc.stdin, "--addr", srv.addr, "createAccount", "-")
			if code != 2 || stdout != "" || stderr != tc.want {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2, stderr %q", code, stdout, stderr, tc.want)
			}
		})
	}
	switch got := srv.received(); {
	case len(got) == 0:
		t.Fatalf("the server received no request, not even the one with good params")
	case len(got) > 1:
		t.Errorf("bad params reached the server: %q", got[1:])
	}
}

// TestCallRepliesHidePassword checks that a reply echoing the request or its headers, from a
// proxy or another server, is printed without the password or token that sessiond call sent.
func TestCallRepliesHidePassword(t *testing.T) {
	const pw = `pw-"echoed"`
	echoTCP := func(format string) *fakeTCPServer {
		return startFakeTCP(t, func(_ *fakeTCPServer, conn net.Conn, request string) {
			io.WriteString(conn, fmt.Sprintf(format, request)+"\n")
		})
	}
	quotedRequest := func(s *fakeTCPServer, conn net.Conn, request string) {
		b, _ := json.Marshal(request)
		io.WriteString(conn, `{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":`+string(b)+`,"data":{"request":`+request+`}}}`+"\n")
	}
	quotedInData := func(s *fakeTCPServer, conn net.Conn, request string) {
		b, _ := json.Marshal(request)
		io.WriteString(conn, `{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"bad gateway","data":{"request":`+string(b)+`}}}`+"\n")
	}
	echoHTTP := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		http.Error(w, "cannot route "+string(body), http.StatusBadGateway)
	}))
	t.Cleanup(echoHTTP.Close)
	echoHeaders := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "cannot route Authorization: "+r.Header.Get("Authorization"), http.StatusBadGateway)
	}))
	t.Cleanup(echoHeaders.Close)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"error message and data", []string{"--addr", startFakeTCP(t, quotedRequest).addr}},
		{"error data quoting the request", []string{"--addr", startFakeTCP(t, quotedInData).addr}},
		{"not a response object", []string{"--addr", echoTCP(`[%s]`).addr}},
		{"neither result nor error", []string{"--addr", echoTCP(`{"jsonrpc":"2.0","id":1,"echo":%s}`).addr}},
		{"HTTP error page", []string{"--http", echoHTTP.URL}},
		{"HTTP error page showing the headers", []string{"--http", echoHeaders.URL}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "--password-stdin", "--token", "tok-echoed", "createSession", `{"username":"admin"}`)
			code, _, stderr := runCallWithStdin(t, pw, args...)
			if code == 0 || !strings.Contains(stderr, "[hidden]") {
				t.Errorf("exit %d, stderr %q; want an error marking what it hid", code, stderr)
			}
			for _, secret := range []string{pw, `pw-\"echoed\"`, `pw-\\\"echoed\\\"`, "tok-echoed"} {
				if strings.Contains(stderr, secret) {
					t.Errorf("stderr shows a secret %q: %s", secret, stderr)
				}
			}
		})
	}
}

// TestCallHideSecrets checks that secrets are hidden where they stand as whole JSON string
// values, HTTP credentials, or such values quoted in a JSON string, and nowhere else.
func TestCallHideSecrets(t *testing.T) {
	for _, tc := range []struct {
		name, secret, text, want string
	}{
		{"a short secret in a whole value only", "a",
			`cannot route "createSession": {"username":"admin","password":"a"}`,
			`cannot route "createSession": {"username":"admin","password":"[hidden]"}`},
		{"a string that merely contains it", "a", `{"password":"ab","note":"xa"}`, `{"password":"ab","note":"xa"}`},
		{"a quote inside a string is no start", "a", `{"note":"x\"a","password":"a"}`, `{"note":"x\"a","password":"[hidden]"}`},
		{"quoted in a string", "a", `{"message":"{\"password\":\"a\"}"}`, `{"message":"{\"password\":\"[hidden]\"}"}`},
		{"JSON escapes", `pw-"q"\`, `{"password":"pw-\"q\"\\"}`, `{"password":"[hidden]"}`},
		{"JSON escapes quoted in a string", `pw-"q"\`, `"{\"password\":\"pw-\\\"q\\\"\\\\\"}"`, `"{\"password\":\"[hidden]\"}"`},
		{"as sent, with <>&", "<a&b>", `{"password":"<a&b>"}`, `{"password":"[hidden]"}`},
		{"HTML-escaped by a Go server", "<a&b>", `{"password":"\u003ca\u0026b\u003e"}`, `{"password":"[hidden]"}`},
		{"HTML-escaped quoted in a string", "<a&b>", `"{\"password\":\"\u003ca\u0026b\u003e\"}"`, `"{\"password\":\"[hidden]\"}"`},
		{"a bearer credential", "tok", "Authorization: Bearer tok\r\nHost: x", "Authorization: Bearer [hidden]\r\nHost: x"},
		{"a bearer credential at the end", "tok", "Bearer tok", "Bearer [hidden]"},
		{"a longer bearer credential", "tok", "Bearer tok2 Bearer tok.x", "Bearer tok2 Bearer tok.x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (secrets{tc.secret}).hide(tc.text); got != tc.want {
				t.Errorf("hide(%q) of %q = %q, want %q", tc.secret, tc.text, got, tc.want)
			}
		})
	}
}

// TestCallRepliesHideShortPassword checks that hiding a one-letter password leaves the rest of
// an echoed request readable.
func TestCallRepliesHideShortPassword(t *testing.T) {
	echoHTTP := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		http.Error(w, "cannot route "+string(body), http.StatusBadGateway)
	}))
	t.Cleanup(echoHTTP.Close)
	code, stdout, stderr := runCallWithStdin(t, "a", "--http", echoHTTP.URL, "--password-stdin", "createSession", `{"username":"admin"}`)
	want := "sessiond call: " + echoHTTP.URL + `/ answered HTTP 502 Bad Gateway without a JSON-RPC reply: cannot route {"jsonrpc":"2.0","id":1,"method":"createSession","params":{"username":"admin","password":"[hidden]"}}` + "\n"
	if code != 2 || stdout != "" || stderr != want {
		t.Errorf("exit %d, stdout %q, stderr %q\nwant exit 2, stderr %q", code, stdout, stderr, want)
	}
}

// TestCallRepliesHideParamsSecrets checks that the passwords and tokens of the params, read
// from stdin or the command line, are hidden from an echoed request like those sessiond call
// filled in, and that the rest stays readable.
func TestCallRepliesHideParamsSecrets(t *testing.T) {
	echoHTTP := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		http.Error(w, "cannot route "+string(body), http.StatusBadGateway)
	}))
	t.Cleanup(echoHTTP.Close)
	for _, tc := range []struct {
		name    string
		stdin   string
		args    []string
		secrets []string
	}{
		{"createAccount, params from stdin", `{"username":"bob","password":"Bob-Secret-123"}`,
			[]string{"--token", "tok", "createAccount", "-"}, []string{"Bob-Secret-123", "tok"}},
		{"alterAccount, params on the command line", "",
			[]string{"alterAccount", `{"authToken":"T-given","username":"bob","password":"New-Secret","currentPassword":"Old-Secret"}`},
			[]string{"T-given", "New-Secret", "Old-Secret"}},
		{"a password given twice", `{"username":"bob","password":"First-Secret","password":"Second-Secret"}`,
			[]string{"createSession", "-"}, []string{"First-Secret", "Second-Secret"}},
		{"positional authenticate from stdin", `["bob","Bob-Secret-123"]`,
			[]string{"authenticate", "-"}, []string{"Bob-Secret-123"}},
		{"positional session key", "", []string{"logout", `["K-given"]`}, []string{"K-given"}},
		{"tokens naming sessions", "", []string{"describeSessions", `{"authToken":"T-given","authTokens":["T-other"]}`},
			[]string{"T-given", "T-other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCallWithStdin(t, tc.stdin, append([]string{"--http", echoHTTP.URL}, tc.args...)...)
			if code != 2 || !strings.Contains(stderr, "[hidden]") || !strings.Contains(stderr, "cannot route") {
				t.Errorf("exit %d, stderr %q; want exit 2 and the echoed request with what it hid marked", code, stderr)
			}
			for _, secret := range tc.secrets {
				if strings.Contains(stderr, secret) {
					t.Errorf("stderr shows %q: %s", secret, stderr)
				}
			}
			if strings.Contains(tc.stdin+strings.Join(tc.args, " "), "bob") && !strings.Contains(stderr, `"bob"`) {
				t.Errorf("stderr hides the username too: %s", stderr)
			}
		})
	}
}

// TestCallSecretMembers checks that every params member of the method table named like a
// password, token or key is one whose values sessiond call hides.
func TestCallSecretMembers(t *testing.T) {
	seen := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(typ reflect.Type) {
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			walk(typ.Elem())
		case reflect.Struct:
			for field := range typ.Fields() {
				name, _, _ := strings.Cut(field.Tag.Get("json"), ",")
				if field.Anonymous && name == "" {
					walk(field.Type)
					continue
				}
				if !field.IsExported() || name == "-" {
					continue
				}
				if name == "" {
					name = field.Name
				}
				seen[name] = true
				walk(field.Type)
			}
		}
	}
	for _, m := range rpc.Methods {
		walk(m.Params)
		for _, name := range m.Positional {
			seen[name] = true
		}
	}
	for name := range seen {
		lower := strings.ToLower(name)
		secretLike := strings.Contains(lower, "password") || strings.Contains(lower, "token") || strings.Contains(lower, "key")
		if secretLike && !secretMembers[name] {
			t.Errorf("params member %q looks secret but is not in secretMembers", name)
		}
	}
	for _, name := range []string{"password", "currentPassword", "authToken", "sessionKey"} {
		if !seen[name] {
			t.Errorf("no params member %q: the walk over the method table missed it", name)
		}
	}
}

// TestCallPasswordOffCommandLine checks, with real processes, that the password sessiond call
// sends is in neither its command line nor its output and the server's logs: it reads the
// running call's /proc/PID/cmdline once the call has read the password from --password-stdin
// and waits for the end of stdin, logs in by --password-file and SESSIOND_PASSWORD, and a
// wrong password fails with 450.
func TestCallPasswordOffCommandLine(t *testing.T) {
	p := startServer(t, "--in-memory", "--tcp", "127.0.0.1:0", "--http", "off", "--log-level", "debug")
	const wrong = "call-wrong-password"
	var outputs []string

	cmd := exec.Command(binPath, "call", "--addr", p.tcpAddr, "--password-stdin", "createSession", `{"username":"admin"}`)
	cmd.Env = withoutCallSecrets()
	stdinRead, stdin, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	cmd.Stdin = stdinRead
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() // after a failure that leaves it waiting; once it is waited for, nothing
	stdinRead.Close()
	io.WriteString(stdin, testAdminPassword+"\n")
	// The call reads stdin to its end: once the pipe is empty it holds the password and waits.
	var cmdline []byte
	if waitPipeRead(t, stdin, "the call's stdin") {
		if cmdline, err = os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid)); err != nil {
			t.Fatalf("reading the waiting call's command line: %v", err)
		}
	} else {
		t.Logf("the call's command line is not read on %s", runtime.GOOS)
	}
	switch {
	case cmdline == nil:
	case !bytes.Contains(cmdline, []byte("--password-stdin")):
		t.Errorf("/proc/PID/cmdline is not the waiting call's: %q", cmdline)
	case bytes.Contains(cmdline, []byte(testAdminPassword)):
		t.Errorf("the password is in the waiting call's command line: %q", cmdline)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil || !strings.Contains(stdout.String(), `"authToken": "sdt_`) {
		t.Errorf("createSession with --password-stdin: %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
	outputs = append(outputs, stdout.String(), stderr.String())

	for _, tc := range []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		want     string // in stdout, or in stderr for an error
	}{
		{"--password-file", nil, []string{"--password-file", writePasswordFile(t, testAdminPassword+"\n"), "authenticate", `["admin"]`}, 0, `"sdt_`},
		{"SESSIOND_PASSWORD", []string{"SESSIOND_PASSWORD=" + testAdminPassword}, []string{"createSession", `{"username":"admin"}`}, 0, `"authToken": "sdt_`},
		{"a wrong password", []string{"SESSIOND_PASSWORD=" + wrong}, []string{"createSession", `{"username":"admin"}`}, 1, "error 450: Not able to validate the credentials for user [admin]."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binPath, append([]string{"call", "--addr", p.tcpAddr}, tc.args...)...)
			cmd.Env = append(withoutCallSecrets(), tc.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.Run()
			outputs = append(outputs, stdout.String(), stderr.String())
			shown := stdout.String()
			if tc.wantCode != 0 {
				shown = stderr.String()
			}
			if code := cmd.ProcessState.ExitCode(); code != tc.wantCode || !strings.Contains(shown, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, stdout.String(), stderr.String(), tc.wantCode, tc.want)
			}
		})
	}

	p.terminate()
	outputs = append(outputs, p.logs.String())
	for _, out := range outputs {
		for _, secret := range []string{testAdminPassword, wrong} {
			if strings.Contains(out, secret) {
				t.Errorf("a password shows in an output or the server's logs:\n%s", out)
			}
		}
	}
}

// withoutCallSecrets is the test's environment without SESSIOND_PASSWORD, SESSIOND_TOKEN and
// SESSIOND_ADMIN_PASSWORD.
func withoutCallSecrets() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SESSIOND_PASSWORD=") && !strings.HasPrefix(kv, "SESSIOND_TOKEN=") && !strings.HasPrefix(kv, "SESSIOND_ADMIN_PASSWORD=") {
			env = append(env, kv)
		}
	}
	return env
}
