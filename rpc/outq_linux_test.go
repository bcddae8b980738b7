package rpc

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSendRoomPipe checks that sendRoom tells the room left in a pipe, its capacity less what
// its reader has not read, and -1 for a writer without a descriptor.
func TestSendRoomPipe(t *testing.T) {
	_, w := osPipe(t)
	size := pipeSize(t, w)
	if _, err := w.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if got := sendRoom(w); got != size-1000 {
		t.Errorf("sendRoom of a pipe of %d bytes holding 1000: %d, want %d", size, got, size-1000)
	}
	if got := sendRoom(&bytes.Buffer{}); got != -1 {
		t.Errorf("sendRoom of a bytes.Buffer: %d, want -1", got)
	}
}

// TestStdioShutdownNoRoomForRefusals checks that a stdio client behind on reading its output,
// an OS pipe with no room for the refusals, gets none rather than a refusal cut off when the
// write's deadline passes, and that Shutdown does not wait for it.
func TestStdioShutdownNoRoomForRefusals(t *testing.T) {
	ts := newTestServer(t, Options{})
	inR, inW := osPipe(t)
	outR, outW := osPipe(t)
	size := pipeSize(t, outW)
	// Unread output that leaves a page of the pipe free: room for the reply to the call in
	// flight, and for part of the refusals.
	unread := strings.Repeat("x", size-4096-1) + "\n"
	if _, err := outW.WriteString(unread); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() {
		served <- ts.ServeStdio(context.Background(), inR, outW, FramingNewline)
		outW.Close()
	}()
	_, _ = inW.WriteString(`{"jsonrpc":"2.0","method":"block","id":1}` + "\n")
	ts.fake.waitEntered(t, 1)
	shutdown := make(chan error, 1)
	go func() { shutdown <- ts.Shutdown(context.Background()) }()
	waitConns(t, ts.Server, "stop", func(c *conn) bool { return c.stopping.Load() })
	// To be refused: 5 kB, more than a pipe writes at once (PIPE_BUF), so a write with too
	// little room writes a part, then waits.
	_, _ = inW.WriteString(strings.Repeat(subtractFrame+"\n", 50))
	ts.fake.releaseOne(t)
	if err := <-shutdown; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != ErrServerClosed {
		t.Fatalf("ServeStdio: %v, want ErrServerClosed", err)
	}
	out, err := io.ReadAll(outR)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out[len(unread):]), `{"jsonrpc":"2.0","result":"released","id":1}`+"\n"; got != want {
		t.Errorf("output after the unread part: %q, want only the call's reply %q", got, want)
	}
}

// pipeSize returns the capacity of the pipe f, without Fd, which would put f in blocking mode.
func pipeSize(t *testing.T, f *os.File) int {
	t.Helper()
	raw, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	size := -1
	_ = raw.Control(func(fd uintptr) { size, err = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0) })
	if err != nil {
		t.Fatal(err)
	}
	return size
}
