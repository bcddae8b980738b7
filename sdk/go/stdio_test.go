package sessiond_test

import (
	"context"
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
