package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHelperEnv checks that the hash helpers get the server's environment without its
// secrets, with the CPUs serve --cpus left them, and the idle helper its marker.
func TestHelperEnv(t *testing.T) {
	environ := []string{"PATH=/bin", "SESSIOND_ADMIN_PASSWORD=pw", "SESSIOND_ENCRYPTION_KEY=key", "SESSIOND_TOKEN=tok", hashWorkerCPUs + "=0-1", "HOME=/root"}
	for _, idle := range []bool{false, true} {
		got := helperEnv(environ, idle)
		want := []string{"PATH=/bin", hashWorkerCPUs + "=0-1", "HOME=/root"}
		if idle {
			want = append(want, hashWorkerIdle+"=1")
		}
		if !slices.Equal(got, want) {
			t.Errorf("idle %v: %q, want %q", idle, got, want)
		}
	}
}

// TestBusyPortCreatesNoAdmin checks that a server whose listener cannot be bound stops before
// creating the admin account, so the generated password is shown by the start that succeeds.
func TestBusyPortCreatesNoAdmin(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	run := func(tcp string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, binPath, "serve", "--config", testConfigPath, "--data", dir, "--tcp", tcp, "--http", "off", "--stdio")
		cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "SESSIOND_ADMIN_PASSWORD=") })
		out, err := cmd.CombinedOutput() // stdin is empty: a server that starts stops at once
		return string(out), err
	}
	out, err := run(busy.Addr().String())
	if err == nil || strings.Contains(out, "created account") {
		t.Fatalf("with its port taken: %v, output:\n%s", err, out)
	}
	out, err = run("127.0.0.1:0")
	if err != nil || !strings.Contains(out, `created account "admin" with password`) {
		t.Fatalf("the next start: %v, output:\n%s", err, out)
	}
}

// TestStdioReaderGone checks that a --stdio server whose client closed its end of stdout
// stops with an error, not killed by SIGPIPE.
func TestStdioReaderGone(t *testing.T) {
	srv := startStdio(t, "--config", testConfigPath, "--in-memory", "--hash-process=false")
	srv.stdout.Close()
	for range 3 {
		if _, err := io.WriteString(srv.stdin, `{"jsonrpc":"2.0","method":"rpc.discover","id":1}`+"\n"); err != nil {
			break // it stopped
		}
	}
	srv.stdin.Close()
	err := srv.cmd.Wait()
	logs := srv.logs
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("sessiond was killed by %v; logs:\n%s", ws.Signal(), logs.String())
		}
	}
}

// TestPprofHidesCommandLine checks that --pprof does not serve the command line, where
// --store may hold a password, and still serves profiles.
func TestPprofHidesCommandLine(t *testing.T) {
	addr := unusedAddr(t)
	startServer(t, "--in-memory", "--tcp", "127.0.0.1:0", "--http", "off", "--pprof", addr)
	for path, want := range map[string]int{"/debug/pprof/cmdline": http.StatusNotFound, "/debug/pprof/goroutine?debug=1": http.StatusOK} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// TestCommandLineRefusals checks that serve and bench refuse a bad command line with a
// message that names the problem, and start nothing.
func TestCommandLineRefusals(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"serve", "--bogus"}, 2, "sessiond serve: unknown flag: --bogus\nsee sessiond serve --help\n"},
		{[]string{"serve", "--in-memory", "--drain-timeout", "abc"}, 2, `invalid argument "abc" for "--drain-timeout"`},
		{[]string{"serve", "--in-memory", "--tcp"}, 2, "flag needs an argument: --tcp"},
		{[]string{"bench", "--populate", "abc"}, 2, `sessiond bench: invalid argument "abc" for "--populate"`},
		{[]string{"serve", "--in-memory", "--data", filepath.Join(dir, "wanted"), "--tcp", "127.0.0.1:0", "--http", "off"}, 2,
			"sessiond serve: give one of --data, --in-memory and --store: each is a store of its own\nsee sessiond serve --help\n"},
		{[]string{"serve", "--store", "redis://127.0.0.1:1", "--data", filepath.Join(dir, "wanted"), "--tcp", "127.0.0.1:0", "--http", "off"}, 2,
			"give one of --data, --in-memory and --store"},
		// A flag's value serve cannot take: shutdown would cancel every call in flight.
		{[]string{"serve", "--in-memory", "--drain-timeout", "0s"}, 2, "--drain-timeout: 0s is not positive"},
		{[]string{"serve", "--in-memory", "--drain-timeout", "-1s"}, 2, "--drain-timeout: -1s is not positive"},
		{[]string{"serve", "--in-memory", "--tcp", "off", "--http", "off", "--memory-limit", "lots"}, 2,
			"sessiond serve: --memory-limit: \"lots\" is not a size"},
		{[]string{"serve", "--in-memory", "--stdio", "--stdio-framing", "lsp"}, 2, `--stdio-framing: "lsp" is not newline or content-length`},
		{[]string{"serve", "--in-memory", "--tcp", "off", "--http", "off"}, 2, "sessiond serve: nothing to serve: give --stdio, --tcp or --http\nsee sessiond serve --help\n"},
		{[]string{"serve", "--in-memory", "--log-level", "verbose"}, 2, "sessiond serve: --log-level: \"verbose\" is not debug, info, warn or error\nsee sessiond serve --help\n"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, nil, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
	// --help is not an error: the usage goes to stdout, as for call and bench.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"serve", "--help"}, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "--in-memory") || stderr.Len() != 0 {
		t.Errorf("serve --help: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "wanted")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("--in-memory with --data made the directory: %v", err)
	}
}
