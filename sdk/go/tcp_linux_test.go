package sessiond_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	sessiond "github.com/sessiond/sessiond/sdk/go"
)

// TestDialAgainBoundedByContext checks that while Dial's client connects again to a server
// whose new connections hang (its queue of connections not yet accepted is full), for a call
// without a deadline, another call gives up with its own context, and Close returns at once
// and ends the connect.
func TestDialAgainBoundedByContext(t *testing.T) {
	// A listener with a backlog of 0: once a connection waits to be accepted, the kernel
	// drops further handshakes, and their connects hang.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)

	ctx := context.Background()
	client, err := sessiond.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	// Serve the first connection one reply, then close it, as an idle one is closed.
	nfd, _, err := syscall.Accept(fd)
	if err != nil {
		t.Fatal(err)
	}
	// The os.File owns nfd: it closes it once, here. Closing nfd with syscall.Close left the
	// File to close the number again when collected, by then another file's (a stdio
	// example's pipe, whose reads then failed with EBADF).
	file := os.NewFile(uintptr(nfd), "first")
	conn, err := net.FileConn(file)
	file.Close()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer conn.Close()
		line, err := bufio.NewReader(conn).ReadBytes('\n')
		var req struct{ ID json.RawMessage }
		if err == nil && json.Unmarshal(line, &req) == nil {
			fmt.Fprintf(conn, `{"jsonrpc":"2.0","id":%s,"result":{}}`+"\n", req.ID)
		}
	}()
	if err := client.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	<-sessiond.ConnectionStopped(client)
	// Fill the queue: later connects hang.
	for range 2 {
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		if c, err := d.DialContext(dctx, "tcp", addr); err == nil {
			t.Cleanup(func() { c.Close() })
		}
		cancel()
	}

	// One call without a deadline starts the connect; another gives up with its context.
	first := make(chan error, 1)
	go func() { first <- client.Ping(ctx) }()
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	second := make(chan error, 1)
	go func() { second <- client.Ping(cctx) }()
	if err := within(t, second, "a call while connecting again ignored its context"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a call while connecting again: %v; want context.DeadlineExceeded", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- client.Close() }()
	within(t, closed, "Close waited for the connect")
	if err := within(t, first, "Close left the call that started the connect waiting"); err == nil {
		t.Error("the call that started the connect succeeded after Close")
	}
}

// within returns what ch gives, failing the test with why if it gives nothing in 10 s.
func within(t *testing.T, ch <-chan error, why string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal(why)
		return nil
	}
}
