package main

import (
	"bufio"
	"encoding/json"
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

// binPath is the sessiond binary built once for the end-to-end tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sessiond-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "sessiond")
	build := exec.Command("go", "build", "-race", "-o", binPath, ".")
	if os.Getenv("SESSIOND_E2E_NORACE") != "" {
		build = exec.Command("go", "build", "-o", binPath, ".")
	}
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sessiond:", err)
		os.Exit(1)
	}
	floorExecutable = func() (string, error) { return binPath, nil }
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testAdminPassword = "e2e-admin-password"

// testConfigPath is a services.json with cheap password hashing and permanent sessions on.
const testConfigPath = "../../testdata/config/e2e.json"

// proc is a running sessiond process.
type proc struct {
	t        testing.TB
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	stdout   io.ReadCloser
	tcpAddr  string
	httpAddr string
	logs     *syncbuf.Buffer
	exited   chan struct{}
	ready    chan error
}

// startServer runs `sessiond serve` with args (plus JSON logs and the test config) and waits
// until it is ready, learning its listen addresses from its logs.
func startServer(t testing.TB, args ...string) *proc {
	t.Helper()
	return startServerWith(t, nil, args...)
}

// startServerWith is startServer with setup, if not nil, called on the command before it
// starts (launchServerWith).
func startServerWith(t testing.TB, setup func(*exec.Cmd), args ...string) *proc {
	t.Helper()
	p := launchServerWith(t, setup, args...)
	p.waitReady()
	return p
}

// launchServer runs `sessiond serve` like startServer without waiting for it: call waitReady
// (on the test's goroutine). Launching several before waiting starts them at the same time.
func launchServer(t testing.TB, args ...string) *proc {
	t.Helper()
	return launchServerWith(t, nil, args...)
}

// launchServerWith is launchServer with setup, if not nil, called on the command before it
// starts.
func launchServerWith(t testing.TB, setup func(*exec.Cmd), args ...string) *proc {
	t.Helper()
	full := append([]string{"serve", "--log-format", "json", "--config", testConfigPath}, args...)
	cmd := exec.Command(binPath, full...)
	// A store named in the developer's environment is not the test's.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "SESSIOND_STORE=") })
	cmd.Env = append(env, "SESSIOND_ADMIN_PASSWORD="+testAdminPassword)
	if setup != nil {
		setup(cmd)
	}
	p := &proc{t: t, cmd: cmd, logs: &syncbuf.Buffer{}, exited: make(chan struct{}), ready: make(chan error, 1)}
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if p.stdout, err = cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := p.ready
	stderrRead := make(chan struct{})
	go func() {
		defer close(stderrRead)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			var rec struct {
				Msg       string `json:"msg"`
				Transport string `json:"transport"`
				Addr      string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			switch {
			case rec.Msg == "listening" && rec.Transport == "tcp":
				p.tcpAddr = rec.Addr
			case rec.Msg == "listening" && rec.Transport == "http":
				p.httpAddr = rec.Addr
			case rec.Msg == "sessiond ready" && !signalled:
				signalled = true
				ready <- nil
			}
		}
		if !signalled {
			ready <- fmt.Errorf("sessiond exited before it was ready")
		}
	}()
	// Wait closes the pipes once the process has exited: only after the logs are read to
	// their end, or their last lines (why it exited) could be lost.
	go func() { <-stderrRead; cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.kill() })
	return p
}

// waitReady waits until a launched server is ready and fails the test if it exits first.
func (p *proc) waitReady() {
	p.t.Helper()
	select {
	case err := <-p.ready:
		if err != nil {
			<-p.exited
			p.t.Fatalf("%v; logs:\n%s", err, p.logs.String())
		}
	case <-time.After(30 * time.Second):
		p.t.Fatalf("sessiond not ready after 30 s; logs:\n%s", p.logs.String())
	}
}

// kill stops the process with SIGKILL, as a crash would.
func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.exited
}

// terminate sends SIGTERM and returns the exit code.
func (p *proc) terminate() int {
	p.cmd.Process.Signal(syscall.SIGTERM)
	return p.waitExit("SIGTERM")
}

// waitExit waits for the process to exit after what (a signal sent) and returns its exit
// code.
func (p *proc) waitExit(what string) int {
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("sessiond did not stop on %s; logs:\n%s", what, p.logs.String())
	}
	return p.cmd.ProcessState.ExitCode()
}
