package sessiond

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
)

// Dial connects to the TCP listener of a sessiond server (newline-delimited JSON-RPC; by
// default 127.0.0.1:7400) and returns a client whose calls share that one connection.
//
// When the connection is lost (sessiond closes a connection idle for readIdleTimeoutSeconds,
// 5 minutes by default; a restart or the network may end one too), the next call connects
// again, so a long-lived client needs no care. Calls in flight when it was lost fail with the
// loss and are not sent again, since the server may have run them. A server refusing a
// connection (too many connections, or shutting down) accepts it, sends its refusal
// (ErrServerUnavailable, -32000) and closes it, so Dial returns without error: a call sent on
// that connection fails with the refusal, and the next call connects again, succeeding once
// the server has room. A server that keeps refusing fails each call with its refusal.
func Dial(ctx context.Context, addr string) (*Client, error) {
	first, err := DialStream(ctx, addr)
	if err != nil {
		return nil, err
	}
	return NewClient(&tcpTransport{addr: addr, cur: first}), nil
}

// DialStream connects to the TCP listener of a sessiond server and returns the transport, for
// NewClient; use it to wrap the transport in one of your own. It serves that one connection:
// once it is lost, calls fail (Dial's client connects again).
func DialStream(ctx context.Context, addr string) (*StreamTransport, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sessiond: %w", err)
	}
	return NewStreamTransport(conn, conn), nil
}

// tcpTransport is Dial's transport: a StreamTransport, replaced by a new connection for the
// next call once it has stopped for any reason but Close: lost, or refused by the server. One
// dial serves all the calls that need it; each waits for it only as long as its context lets
// it, and Close cancels it.
type tcpTransport struct {
	addr string

	mu      sync.Mutex
	cur     *StreamTransport
	dialing *redial // the dial under way; nil when none is
	closed  bool
}

// redial is one dial of a new connection, shared by the calls that wait for it.
type redial struct {
	done   chan struct{} // closed when the dial has ended
	cancel context.CancelFunc
	err    error // why it failed; set before done is closed
}

func (t *tcpTransport) RoundTrip(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	st, err := t.stream(ctx)
	if err != nil {
		return nil, err
	}
	return st.RoundTrip(ctx, method, params)
}

// stream returns the connection to send a call on, connecting again if the last has
// stopped. A new connection may already have stopped too (a server refusing it sends its
// refusal at once); the call then fails on it with why, and the next call connects again.
func (t *tcpTransport) stream(ctx context.Context) (*StreamTransport, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	if !t.cur.lost() {
		st := t.cur
		t.mu.Unlock()
		return st, nil
	}
	d := t.dialing
	if d == nil {
		var dialCtx context.Context
		d = &redial{done: make(chan struct{})}
		dialCtx, d.cancel = context.WithCancel(context.Background())
		t.dialing = d
		go t.dial(dialCtx, d)
	}
	t.mu.Unlock()
	select {
	case <-d.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if d.err != nil {
		return nil, d.err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	return t.cur, nil
}

// dial connects again and makes the connection the current one, unless the transport was
// closed meanwhile; then ends d.
func (t *tcpTransport) dial(ctx context.Context, d *redial) {
	st, err := DialStream(ctx, t.addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	d.cancel()
	t.dialing = nil
	switch {
	case err != nil:
		d.err = err
	case t.closed:
		_ = st.Close()
	default:
		_ = t.cur.Close()
		t.cur = st
	}
	close(d.done)
}

func (t *tcpTransport) Close() error {
	t.mu.Lock()
	t.closed = true
	if t.dialing != nil {
		t.dialing.cancel()
	}
	cur := t.cur
	t.mu.Unlock()
	return cur.Close()
}

// lost reports whether the transport has stopped for another reason than Close: the
// connection was lost, or the server refused it.
func (t *StreamTransport) lost() bool {
	select {
	case <-t.stopped:
	default:
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return !errors.Is(t.err, ErrClosed)
}
