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
// When the connection is lost without the server refusing it (sessiond closes a connection
// idle for readIdleTimeoutSeconds, 5 minutes by default; a restart or the network may end
// one too), the next call connects again, so a long-lived client needs no care. Calls in
// flight when it was lost fail with the loss and are not sent again, since the server may
// have run them. A refused connection (too many connections) keeps failing with the refusal.
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
// next call once it has stopped for any reason but Close or a refusal. One dial serves all the
// calls that need it; each waits for it only as long as its context lets it, and Close
// cancels it.
type tcpTransport struct {
	addr string

	mu         sync.Mutex
	cur        *StreamTransport
	dialing    chan struct{}      // closed when the dial under way ends; nil when none is
	cancelDial context.CancelFunc // the dial under way's
	dialErr    error              // the last dial's failure
	closed     bool
}

func (t *tcpTransport) RoundTrip(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	st, err := t.stream(ctx)
	if err != nil {
		return nil, err
	}
	return st.RoundTrip(ctx, method, params)
}

// stream returns the connection to send a call on, connecting again if the last was lost.
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
	done := t.dialing
	if done == nil {
		done = make(chan struct{})
		var dialCtx context.Context
		dialCtx, t.cancelDial = context.WithCancel(context.Background())
		t.dialing = done
		go t.dial(dialCtx, done)
	}
	t.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return nil, ErrClosed
	case t.cur.lost(): // the dial failed
		return nil, t.dialErr
	}
	return t.cur, nil
}

// dial connects again and makes the connection the current one, unless the transport was
// closed meanwhile; then closes done.
func (t *tcpTransport) dial(ctx context.Context, done chan struct{}) {
	st, err := DialStream(ctx, t.addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cancelDial()
	t.dialing, t.cancelDial, t.dialErr = nil, nil, err
	switch {
	case err != nil:
	case t.closed:
		_ = st.Close()
	default:
		_ = t.cur.Close()
		t.cur = st
	}
	close(done)
}

func (t *tcpTransport) Close() error {
	t.mu.Lock()
	t.closed = true
	if t.cancelDial != nil {
		t.cancelDial()
	}
	cur := t.cur
	t.mu.Unlock()
	return cur.Close()
}

// lost reports whether the transport has stopped for another reason than Close or the
// server's refusal of the connection.
func (t *StreamTransport) lost() bool {
	select {
	case <-t.stopped:
	default:
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var refusal *Error
	return !errors.Is(t.err, ErrClosed) && !errors.As(t.err, &refusal)
}
