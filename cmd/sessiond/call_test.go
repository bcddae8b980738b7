package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
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

// runCallForTest runs `sessiond call` with args and no SESSIOND_TOKEN in the environment.
func runCallForTest(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("SESSIOND_TOKEN", "")
	var out, errOut bytes.Buffer
	code = runCall(args, &out, &errOut)
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
			reply:       `{"jsonrpc":"2.0","id":1,"result":"-1"}`,
			wantRequest: `{"jsonrpc":"2.0","id":1,"method":"authenticate","params":["admin","pw"]}`,
			wantStdout:  "\"-1\"\n",
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
	if code := runCall([]string{"--addr", srv.addr, "pingSession"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if got := srv.received(); len(got) != 1 || !strings.Contains(got[0], `"params":{"authToken":"ENV"}`) {
		t.Errorf("server received %q", got)
	}
}

// TestCallConnectionFailures checks that an unreachable, silent or hanging server gives a
// clear message and exit 2.
func TestCallConnectionFailures(t *testing.T) {
	closedAddr := unusedAddr(t)

	silent := startFakeTCP(t, func(*fakeTCPServer, net.Conn, string) {})
	hanging := startFakeTCP(t, func(s *fakeTCPServer, _ net.Conn, _ string) { <-s.done })
	garbage := startFakeTCP(t, replyWith(`{"jsonrpc":"2.0",`+"\x00"))
	partial := startFakeTCP(t, func(_ *fakeTCPServer, conn net.Conn, _ string) { io.WriteString(conn, `{"jsonrpc":"2.0","id":1,"res`) })

	for _, tc := range []struct {
		name, addr, want string
	}{
		{"nothing listening", closedAddr, "sessiond call: cannot connect to " + closedAddr + ": "},
		{"closed without a reply", silent.addr, "sessiond call: " + silent.addr + " closed the connection without replying\n"},
		{"no reply in time", hanging.addr, "sessiond call: no reply from " + hanging.addr + " within the timeout (--timeout)\n"},
		{"malformed reply", garbage.addr, "sessiond call: malformed reply from " + garbage.addr + ": invalid character"},
		{"reply cut short", partial.addr, "sessiond call: " + partial.addr + " closed the connection in the middle of its reply\n"},
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
		{"invalid JSON", []string{"createSession", `{"username":}`}, "sessiond call: PARAMS_JSON is not valid JSON: invalid character '}' looking for beginning of value\n"},
		{"cut-short JSON", []string{"createSession", `{"username":"a"`}, "sessiond call: PARAMS_JSON is not valid JSON: unexpected EOF\n"},
		{"a string", []string{"createSession", `"admin"`}, "sessiond call: PARAMS_JSON must be a JSON object {…} or array […], got \"admin\"\n"},
		{"a number", []string{"createSession", `42`}, "sessiond call: PARAMS_JSON must be a JSON object {…} or array […], got 42\n"},
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
		for _, want := range []string{"Usage: sessiond call [flags] METHOD [PARAMS_JSON]", "Examples:", "--addr string", "--http string", "--token string", "--timeout duration", "(default 10s)", "Exit status:"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%s: usage lacks %q:\n%s", flag, want, stdout)
			}
		}
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
