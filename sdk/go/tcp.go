package sessiond

import (
	"context"
	"fmt"
	"net"
)

// Dial connects to the TCP listener of a sessiond server (newline-delimited JSON-RPC; by
// default 127.0.0.1:7400) and returns a client whose calls share that one connection.
func Dial(ctx context.Context, addr string) (*Client, error) {
	t, err := DialStream(ctx, addr)
	if err != nil {
		return nil, err
	}
	return NewClient(t), nil
}

// DialStream connects to the TCP listener of a sessiond server and returns the transport, for
// NewClient; use it to wrap the transport in one of your own.
func DialStream(ctx context.Context, addr string) (*StreamTransport, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sessiond: %w", err)
	}
	return NewStreamTransport(conn, conn), nil
}
