package sessiond_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	sessiond "github.com/sessiond/sessiond/sdk/go"
)

// fakeTCPServer serves each connection it accepts with serve, and counts them.
func fakeTCPServer(t *testing.T, serve func(net.Conn)) (addr string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = new(atomic.Int32)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer conn.Close()
				serve(conn)
			}()
		}
	}()
	return ln.Addr().String(), accepted
}

// TestDialConnectsAgain checks that a client made by Dial connects again for the next call
// once the server has closed its connection, as sessiond closes idle ones, and that a
// refused connection keeps its refusal instead.
func TestDialConnectsAgain(t *testing.T) {
	ctx := context.Background()
	// Answers one pingSession, then closes the connection.
	addr, accepted := fakeTCPServer(t, func(conn net.Conn) {
		line, err := bufio.NewReader(conn).ReadBytes('\n')
		if err != nil {
			return
		}
		var req struct{ ID json.RawMessage }
		if json.Unmarshal(line, &req) == nil {
			fmt.Fprintf(conn, `{"jsonrpc":"2.0","id":%s,"result":{}}`+"\n", req.ID)
		}
	})
	client, err := sessiond.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for i := range 3 {
		if err := client.Ping(ctx); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		<-sessiond.ConnectionStopped(client) // the server has closed it, and the client seen it
	}
	if n := accepted.Load(); n != 3 {
		t.Errorf("%d connections for 3 calls; want 3", n)
	}
	client.Close()
	if err := client.Ping(ctx); !errors.Is(err, sessiond.ErrClosed) {
		t.Errorf("after Close: %v; want ErrClosed", err)
	}

	refusal := `{"jsonrpc":"2.0","error":{"code":-32000,"message":"Server unavailable","data":{"reason":"tooManyConnections","limit":1}},"id":null}` + "\n"
	addr, accepted = fakeTCPServer(t, func(conn net.Conn) { fmt.Fprint(conn, refusal) })
	refused, err := sessiond.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer refused.Close()
	<-sessiond.ConnectionStopped(refused)
	for i := range 2 {
		err := refused.Ping(ctx)
		if e, ok := errors.AsType[*sessiond.Error](err); !ok || e.Reason() != "tooManyConnections" {
			t.Errorf("refused call %d: %v; want the refusal", i, err)
		}
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("%d connections after a refusal; want 1", n)
	}
}
