package main

// TestStdioEOFInsideMessage checks the real binary when stdin ends in the middle of a message,
// in both framings: the whole message before it is answered, the cut one gets a parse error,
// and sessiond exits 0 as at any end of stdin; with Content-Length framing the cut is also
// logged as a warning.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/syncbuf"
)

func TestStdioEOFInsideMessage(t *testing.T) {
	const ping = `{"jsonrpc":"2.0","method":"pingSession","params":{},"id":1}`
	withHeader := func(body string) string { return fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body) }
	for _, tc := range []struct {
		framing string
		input   string
		warns   bool
	}{
		{"newline", ping + "\n" + `{"jsonrpc":"2.0","met`, false},
		{"content-length", withHeader(ping) + "Content-Length: 60\r\n\r\n" + `{"jsonrpc":"2.0","met`, true},
	} {
		t.Run(tc.framing, func(t *testing.T) {
			// Not startServer: its Wait may close stdout before the last reply is read.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, binPath, "serve", "--log-format", "json", "--config", testConfigPath,
				"--in-memory", "--stdio", "--stdio-framing", tc.framing)
			cmd.Env = append(os.Environ(), "SESSIOND_ADMIN_PASSWORD="+testAdminPassword)
			var out, logs bytes.Buffer
			cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(tc.input), &out, &logs
			if err := cmd.Run(); err != nil {
				t.Fatalf("sessiond: %v, want exit status 0; logs:\n%s", err, logs.String())
			}

			var ok, parseErrors int
			for _, body := range replyBodies(t, out.String(), tc.framing) {
				var rep rpcReply
				if err := json.Unmarshal([]byte(body), &rep); err != nil {
					t.Fatalf("reply %q: %v", body, err)
				}
				switch {
				case rep.Error == nil && string(rep.Result) == "{}":
					ok++
				case rep.Error != nil && rep.Error.Code == -32700:
					parseErrors++
				default:
					t.Fatalf("unexpected reply %q", body)
				}
			}
			if ok != 1 || parseErrors != 1 {
				t.Fatalf("got %d answers and %d parse errors, want 1 and 1; stdout %q", ok, parseErrors, out.String())
			}
			warned := false
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, `"level":"WARN"`) && strings.Contains(line, "input ended inside a message") {
					warned = true
				}
			}
			if warned != tc.warns {
				t.Errorf("warning logged: %v, want %v; logs:\n%s", warned, tc.warns, logs.String())
			}
		})
	}
}

// replyBodies splits what sessiond wrote on stdout into reply bodies.
func replyBodies(t *testing.T, out, framing string) []string {
	t.Helper()
	if framing == "newline" {
		return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	}
	var bodies []string
	for out != "" {
		var n int
		header, rest, found := strings.Cut(out, "\r\n\r\n")
		if _, err := fmt.Sscanf(header, "Content-Length: %d", &n); !found || err != nil || n > len(rest) {
			t.Fatalf("bad reply framing at %q", out)
		}
		bodies, out = append(bodies, rest[:n]), rest[n:]
	}
	return bodies
}

// TestStdioEOFFlushes checks that the end of stdin stops a server with a data directory as a
// SIGTERM would: every request is answered, it exits 0, and the last use of a session, kept
// only in memory until then (a flush interval of an hour), is on disk for the next start.
func TestStdioEOFFlushes(t *testing.T) {
	dir := t.TempDir()
	srv := startStdio(t, "--log-format", "json", "--config", shutdownConfigPath, "--data", dir)
	cmd, stdin, logs := srv.cmd, srv.stdin, srv.logs
	replies := bufio.NewReader(srv.stdout)
	call := func(id int, method string, params any) json.RawMessage {
		t.Helper()
		req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": params, "id": id})
		if _, err := stdin.Write(append(req, '\n')); err != nil {
			t.Fatalf("%s: %v; logs:\n%s", method, err, logs.String())
		}
		line, err := replies.ReadBytes('\n')
		var rep rpcReply
		if err != nil || json.Unmarshal(line, &rep) != nil || rep.Error != nil {
			t.Fatalf("%s: reply %q, %v; logs:\n%s", method, line, err, logs.String())
		}
		return rep.Result
	}
	var used sessionResult
	if err := json.Unmarshal(call(1, "createSession", map[string]any{"username": "admin", "password": testAdminPassword}), &used); err != nil {
		t.Fatal(err)
	}
	// Timestamps have whole seconds: the session is used in a later second than its start.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
	usedAt := time.Now().UTC().Truncate(time.Second)
	call(2, "pingSession", map[string]any{"authToken": used.AuthToken})
	stdin.Close()
	if rest, _ := io.ReadAll(replies); len(rest) > 0 {
		t.Errorf("output after the last reply: %q", rest)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sessiond: %v after stdin ended, want exit status 0; logs:\n%s", err, logs.String())
	}

	args := []string{"--config", shutdownConfigPath, "--data", dir, "--tcp", "127.0.0.1:0", "--http", "off"}
	if _, s := sessionAfterRestart(t, args, used.SessionID, "stdin ended"); s.SessionLastAccessedTimestamp.Before(usedAt) {
		t.Errorf("sessionLastAccessedTimestamp %v after restart, want ≥ %v (the use before stdin ended; created %v)",
			s.SessionLastAccessedTimestamp, usedAt, s.SessionStartTimestamp)
	}
}

// TestStdioSIGTERMDrains checks that SIGTERM lets a --stdio call in flight finish and answers
// it, as it does over TCP, instead of cancelling it.
func TestStdioSIGTERMDrains(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "slow-hash.json")
	// A hash of about a second: the login is surely in flight when the signal comes.
	slow := `{"security": {"passwordHash": {"memoryKiB": 65536, "iterations": 12, "parallelism": 1}}}`
	if err := os.WriteFile(config, []byte(slow), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startStdio(t, "--config", config, "--data", filepath.Join(dir, "data"), "--hash-process=false")
	cmd, stdin, logs := srv.cmd, srv.stdin, srv.logs
	defer stdin.Close()
	replies := bufio.NewReader(srv.stdout)
	// The server is up once it answers.
	if _, err := stdin.Write([]byte(`{"jsonrpc":"2.0","method":"pingSession","id":0}` + "\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := replies.ReadBytes('\n'); err != nil {
		t.Fatalf("ping: %q, %v; logs:\n%s", line, err, logs.String())
	}
	login := fmt.Sprintf(`{"jsonrpc":"2.0","method":"createSession","params":{"username":"admin","password":%q},"id":1}`, testAdminPassword)
	if _, err := stdin.Write([]byte(login + "\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // read and hashing
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	line, err := replies.ReadBytes('\n')
	var rep rpcReply
	if err != nil || json.Unmarshal(line, &rep) != nil || rep.Error != nil || len(rep.Result) == 0 {
		t.Errorf("login in flight at SIGTERM: %q, %v; want its session; logs:\n%s", line, err, logs.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("sessiond: %v after SIGTERM, want exit status 0; logs:\n%s", err, logs.String())
	}
}

// TestStdioSIGTERMRefusesUnread checks that at SIGTERM a --stdio server answers its calls in
// flight, then the requests it had read behind them but not run with -32000 shuttingDown and
// their ids (a notification with nothing), and exits 0.
func TestStdioSIGTERMRefusesUnread(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "slow-hash.json")
	// Hashes of about half a second, and two requests in flight at most: the two logins are
	// in flight at the signal (but for a moment: below), and the reader waits with the third
	// request read.
	slow := `{"security": {"passwordHash": {"memoryKiB": 65536, "iterations": 6, "parallelism": 1}},
		"server": {"maxInFlightPerConnection": 2}}`
	if err := os.WriteFile(config, []byte(slow), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startStdio(t, "--config", config, "--in-memory", "--hash-process=false")
	cmd, stdin, logs := srv.cmd, srv.stdin, srv.logs
	replies := bufio.NewReader(srv.stdout)
	// The server is up once it answers.
	if _, err := stdin.Write([]byte(`{"jsonrpc":"2.0","method":"pingSession","id":0}` + "\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := replies.ReadBytes('\n'); err != nil {
		t.Fatalf("ping: %q, %v; logs:\n%s", line, err, logs.String())
	}
	login := `{"jsonrpc":"2.0","method":"createSession","params":{"username":"admin","password":%q},"id":%d}` + "\n"
	requests := fmt.Sprintf(login, testAdminPassword, 1) + fmt.Sprintf(login, testAdminPassword, 2) +
		`{"jsonrpc":"2.0","method":"pingSession","id":3}` + "\n" +
		`{"jsonrpc":"2.0","method":"pingSession"}` + "\n" + // a notification
		`{"jsonrpc":"2.0","method":"pingSession","id":"four"}` + "\n"
	if _, err := stdin.Write([]byte(requests)); err != nil {
		t.Fatal(err)
	}
	// Once stdin is empty the server has read them all: the logins run, request 3 waits.
	if !waitPipeRead(t, stdin, "the server's stdin") {
		time.Sleep(200 * time.Millisecond) // no way to tell: the requests are read by now
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	var got []string
	for {
		line, err := replies.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			break
		}
		var rep rpcReply
		if err != nil || json.Unmarshal(line, &rep) != nil {
			t.Fatalf("after %q: %q, %v; logs:\n%s", got, line, err, logs.String())
		}
		switch {
		case rep.Error == nil && bytes.Contains(rep.Result, []byte(`"authToken"`)):
			got = append(got, "session "+string(rep.ID))
		case rep.Error != nil && rep.Error.Code == -32000 && string(rep.Error.Data) == `{"reason":"shuttingDown"}`:
			got = append(got, "refused "+string(rep.ID))
		default:
			got = append(got, string(line))
		}
	}
	// The logins' replies may come in either order.
	if len(got) == 4 && got[0] > got[1] {
		got[0], got[1] = got[1], got[0]
	}
	// An empty stdin shows the reader took the requests, not that login 2 had started: in
	// the moment between, the signal finds login 2 unstarted and refuses it with request 3,
	// the two refusals maxInFlightPerConnection allows.
	want := []string{"session 1", "session 2", "refused 3", `refused "four"`}
	if unstarted := []string{"session 1", "refused 2", "refused 3"}; !slices.Equal(got, want) && !slices.Equal(got, unstarted) {
		t.Errorf("replies after SIGTERM: %q, want %q (or %q); logs:\n%s", got, want, unstarted, logs.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("sessiond: %v after SIGTERM, want exit status 0; logs:\n%s", err, logs.String())
	}
}

// waitPipeRead waits until the reader of the pipe w has read all that was written to it, for
// at most 10 s, and reports whether it could tell (only on Linux: pipeUnread).
func waitPipeRead(t *testing.T, w *os.File, what string) bool {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		unread, err := pipeUnread(w)
		switch {
		case errors.Is(err, errors.ErrUnsupported):
			return false
		case err != nil:
			t.Fatalf("bytes left in %s: %v", what, err)
		case unread == 0:
			return true
		case time.Now().After(deadline):
			t.Fatalf("%d bytes of %s left unread for 10 s", unread, what)
		}
	}
}

// stdioServer is `sessiond serve ARGS --stdio` running, with the admin password set.
type stdioServer struct {
	cmd    *exec.Cmd
	stdin  *os.File // a pipe: pipeUnread tells what the server has not read of it
	stdout io.ReadCloser
	logs   *syncbuf.Buffer // written by exec's goroutine while the test reads it on failure
}

// startStdio starts `sessiond serve` with args and --stdio; it is killed when the test ends.
func startStdio(t *testing.T, args ...string) *stdioServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, binPath, append(append([]string{"serve"}, args...), "--stdio")...)
	cmd.Env = append(os.Environ(), "SESSIOND_ADMIN_PASSWORD="+testAdminPassword)
	s := &stdioServer{cmd: cmd, logs: &syncbuf.Buffer{}}
	cmd.Stderr = s.logs
	stdinRead, stdin, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s.stdin, cmd.Stdin = stdin, stdinRead
	t.Cleanup(func() { stdin.Close() })
	if s.stdout, err = cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	err = cmd.Start()
	stdinRead.Close() // the server's now
	if err != nil {
		t.Fatal(err)
	}
	return s
}
