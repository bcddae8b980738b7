package sessiond_test

import (
	"context"
	"errors"
	"os/exec"
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
// answering after Close fails with ErrClosed.
func TestStdioCloseFailsCallsTheServerLeaves(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("skipping: no sh to play a server that answers nothing")
	}
	// A server that reads its input to the end and exits, answering nothing.
	client, err := sessiond.StartStdio(exec.Command(sh, "-c", "cat >/dev/null"))
	if err != nil {
		t.Fatal(err)
	}
	written := sessiond.RequestsWritten(client, 1)
	inFlight := make(chan error, 1)
	go func() { inFlight <- client.Ping(context.Background()) }()
	<-written
	if err := client.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-inFlight; !errors.Is(err, sessiond.ErrClosed) {
		t.Errorf("the call left unanswered: %v; want ErrClosed", err)
	}
}
