package sessiond_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/syncbuf"
	sessiond "github.com/sessiond/sessiond/sdk/go"
	"github.com/sessiond/sessiond/sdk/sdktest"
)

// TestStartStdioReportsWhyTheServerExited checks that when a server started by StartStdio
// exits at once (its data directory is locked by another server), the failed call and Close
// say why with the last lines of its standard error, and that a cmd.Stderr the caller set
// gets those lines instead.
func TestStartStdioReportsWhyTheServerExited(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	sdktest.StartWith(t, sdktest.Options{DataDir: dir}) // holds the directory's lock
	command := func() *exec.Cmd {
		cmd := exec.Command(sdktest.Binary(), "serve", "--stdio", "--data", dir, "--config", sdktest.ConfigPath())
		cmd.Env = sdktest.Env()
		return cmd
	}
	const why = "is in use by another process"

	client, err := sessiond.StartStdio(command())
	if err != nil {
		t.Fatal(err)
	}
	err = client.Ping(ctx)
	if err == nil || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("a call to a server that exited at once: %v; want its exit status and %q", err, why)
	}
	if err := client.Close(); err == nil || !strings.Contains(err.Error(), why) {
		t.Errorf("Close of a server that exited at once: %v; want %q", err, why)
	}

	cmd := command()
	logs := &syncbuf.Buffer{}
	cmd.Stderr = logs
	client, err = sessiond.StartStdio(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(ctx); err == nil || strings.Contains(err.Error(), why) {
		t.Errorf("a call with the caller's cmd.Stderr: %v; want an error without the server's log", err)
	}
	client.Close()
	if !strings.Contains(logs.String(), why) {
		t.Errorf("the caller's cmd.Stderr got %q; want %q", logs.String(), why)
	}
}

// TestStdioCloseLetsCallsInFlightFinish checks that Close lets the logins already sent get
// their sessions, and that a call made after Close fails with ErrClosed.
func TestStdioCloseLetsCallsInFlightFinish(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The default configuration: hashing the password takes a login tens of ms.
	cmd := exec.Command(sdktest.Binary(), "serve", "--stdio", "--in-memory")
	cmd.Env = sdktest.Env()
	client, err := sessiond.StartStdio(cmd)
	if err != nil {
		t.Fatal(err)
	}
	const logins = 3
	written := sessiond.RequestsWritten(client, logins)
	results := make(chan error, logins)
	for range logins {
		go func() {
			session, err := client.CreateSession(ctx, sessiond.CreateSessionParams{Username: "admin", Password: sdktest.AdminPassword})
			if err == nil && session.AuthToken == "" {
				err = errors.New("a session without its authToken")
			}
			results <- err
		}()
	}
	<-written
	if err := client.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for range logins {
		if err := <-results; err != nil {
			t.Errorf("a login in flight at Close: %v; want its session", err)
		}
	}
	if err := client.Ping(ctx); !errors.Is(err, sessiond.ErrClosed) {
		t.Errorf("a call after Close: %v; want ErrClosed", err)
	}
}

// TestStdioCloseFailsCallsTheServerLeaves checks that a call that the server exits without
// answering after Close fails with ErrClosed, also when a process the server started holds
// its output open.
func TestStdioCloseFailsCallsTheServerLeaves(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("skipping: no sh to play a server that answers nothing")
	}
	for _, held := range []bool{false, true} {
		t.Run(fmt.Sprintf("held=%v", held), func(t *testing.T) {
			// A server that reads its input to the end and exits, answering nothing.
			script := "cat >/dev/null"
			pidFile := filepath.Join(t.TempDir(), "sleep.pid")
			if held {
				// It starts a sleep first, which inherits its standard output and error.
				script = `sleep 60 & echo $! >"$0"; ` + script
				t.Cleanup(func() { killPID(t, pidFile) })
			}
			client, err := sessiond.StartStdio(exec.Command(sh, "-c", script, pidFile))
			if err != nil {
				t.Fatal(err)
			}
			written := sessiond.RequestsWritten(client, 1)
			inFlight := make(chan error, 1)
			go func() { inFlight <- client.Ping(context.Background()) }()
			<-written
			if err := closeWithin(t, client, 10*time.Second); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := <-inFlight; !errors.Is(err, sessiond.ErrClosed) {
				t.Errorf("the call left unanswered: %v; want ErrClosed", err)
			}
		})
	}
}

// TestStdioCloseWithAProcessHoldingTheOutput checks that Close returns soon after the server
// exits although a process it started holds its standard output and error open, with the
// calls answered, before Close and in flight at Close, given their replies.
func TestStdioCloseWithAProcessHoldingTheOutput(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("skipping: no sh to start the server with a process that outlives it")
	}
	for _, stderr := range []struct {
		name string
		w    io.Writer
	}{{"kept standard error", nil}, {"the caller's cmd.Stderr", &syncbuf.Buffer{}}} {
		t.Run(stderr.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// The server's shell starts a sleep, which inherits its standard output and error,
			// then becomes the server.
			pidFile := filepath.Join(t.TempDir(), "sleep.pid")
			cmd := exec.Command(sh, "-c", `sleep 60 & echo $! >"$0"; exec "$@"`, pidFile,
				sdktest.Binary(), "serve", "--stdio", "--in-memory")
			cmd.Env = sdktest.Env()
			cmd.Stderr = stderr.w
			t.Cleanup(func() { killPID(t, pidFile) })
			client, err := sessiond.StartStdio(cmd)
			if err != nil {
				t.Fatal(err)
			}
			written := sessiond.RequestsWritten(client, 2)
			if err := client.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			login := make(chan error, 1)
			go func() {
				_, err := client.CreateSession(ctx, sessiond.CreateSessionParams{Username: "admin", Password: sdktest.AdminPassword})
				login <- err
			}()
			<-written
			if err := closeWithin(t, client, 10*time.Second); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := <-login; err != nil {
				t.Errorf("a login in flight at Close: %v; want its session", err)
			}
		})
	}
}

// TestStdioServerExitWithAProcessHoldingTheOutput checks that a call the server exits without
// answering, before Close, fails with its exit status and last words although a process it
// started holds its output open.
func TestStdioServerExitWithAProcessHoldingTheOutput(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("skipping: no sh to play a server that exits")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pidFile := filepath.Join(t.TempDir(), "sleep.pid")
	t.Cleanup(func() { killPID(t, pidFile) })
	// A server that starts a sleep, which inherits its standard output and error, reads a
	// request and exits without answering it.
	client, err := sessiond.StartStdio(exec.Command(sh, "-c",
		`sleep 60 & echo $! >"$0"; read request; echo "no answer" >&2; exit 3`, pidFile))
	if err != nil {
		t.Fatal(err)
	}
	err = client.Ping(ctx)
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "no answer") {
		t.Errorf("a call the server exited without answering: %v; want its exit status and last words", err)
	}
	if err := closeWithin(t, client, 10*time.Second); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Close: %v; want the exit status", err)
	}
}

// closeWithin returns what client.Close returns, failing the test if it takes longer than d.
func closeWithin(t *testing.T, client *sessiond.Client, d time.Duration) error {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- client.Close() }()
	select {
	case err := <-closed:
		return err
	case <-time.After(d):
		t.Fatalf("Close has not returned %v after it began", d)
		return nil
	}
}

// killPID kills the process whose id is in file, if the file was written.
func killPID(t *testing.T, file string) {
	text, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return // the test ended before the process started
	}
	if err != nil {
		t.Error(err)
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(text)))
	if err != nil {
		t.Error(err)
		return
	}
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}
