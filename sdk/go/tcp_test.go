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
	"time"

	sessiond "github.com/sessiond/sessiond/sdk/go"
	"github.com/sessiond/sessiond/sdk/sdktest"
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
// once the server has closed its connection, as sessiond closes idle ones, and that while a
// server keeps refusing connections each call connects again and fails with the refusal.
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
	if n := accepted.Load(); n != 3 {
		t.Errorf("%d connections for Dial and 2 calls, all refused; want 3", n)
	}
}

// TestDialRecoversFromRefusal checks that a client whose connection a live sessiond refused
// (maxConnections reached) while no call was waiting connects again for a later call once the
// server has room, rather than failing with the refusal for good.
func TestDialRecoversFromRefusal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	config := sdktest.Config(t, `{"server":{"maxConnections":3}}`)
	server := sdktest.StartWith(t, sdktest.Options{Config: config})

	var held []net.Conn
	for range 3 {
		conn := rawPing(t, server.TCPAddr) // answered: the server counts it
		if conn == nil {
			t.Fatal("the server refused one of the first 3 connections")
		}
		held = append(held, conn)
	}
	client, err := sessiond.Dial(ctx, server.TCPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	select {
	case <-sessiond.ConnectionStopped(client): // refused, while no call waited
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not refuse a 4th connection")
	}
	for _, conn := range held {
		conn.Close()
	}
	// The server frees the slots as it sees the connections close: until then a call may be
	// refused again, each on a new connection.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := client.Ping(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, sessiond.ErrServerUnavailable) {
			t.Fatalf("a call after the refusal: %v; want success, or the refusal again", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls still fail 10 s after the server had room: %v", err)
		}
	}
	if err := client.Ping(ctx); err != nil {
		t.Errorf("the call after one that succeeded: %v", err)
	}
}

// rawPing opens a TCP connection to addr and sends pingSession on it. It returns the
// connection if the server answered the ping, or nil, having closed it, if the server refused
// the connection.
func rawPing(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(conn, `{"jsonrpc":"2.0","id":1,"method":"pingSession","params":{}}`)
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	var reply struct {
		ID     json.RawMessage
		Result json.RawMessage
	}
	if err != nil || json.Unmarshal(line, &reply) != nil || string(reply.ID) != "1" || reply.Result == nil {
		conn.Close()
		return nil
	}
	_ = conn.SetDeadline(time.Time{})
	return conn
}
