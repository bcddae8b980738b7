package sessiond

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// StreamTransport carries JSON-RPC over a byte stream with newline framing, one JSON value
// per line each way, as sessiond serves TCP and stdio. Calls from several goroutines are
// pipelined: each request is written as soon as it is made, and the replies, which may come
// in any order, are matched to their calls by id.
type StreamTransport struct {
	w       io.Writer
	closers []io.Closer

	writeMu sync.Mutex

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan response // calls sent and not yet answered, by id
	err     error                    // why the transport stopped; set once
	// unclaimed is an error with id null that came while no call was waiting, and no reply
	// since: a server refusing the connection (-32000, tooManyConnections) sends one at once,
	// then closes. If the stream ends next, calls fail with it rather than "connection lost".
	unclaimed *response

	stopOnce   sync.Once
	stopped    chan struct{} // closed when the transport stops: Close, or the stream ended
	readerDone chan struct{} // closed when the reader has returned
	closeOnce  sync.Once
	closeErr   error
}

// NewStreamTransport returns a transport that writes requests to w and reads replies from r,
// which it starts reading at once. Close closes w and then r, each if it is an io.Closer (a
// net.Conn given as both is closed once).
func NewStreamTransport(r io.Reader, w io.Writer) *StreamTransport {
	t := &StreamTransport{
		w:          w,
		pending:    map[uint64]chan response{},
		stopped:    make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	if c, ok := w.(io.Closer); ok {
		t.closers = append(t.closers, c)
	}
	if c, ok := r.(io.Closer); ok && any(r) != any(w) {
		t.closers = append(t.closers, c)
	}
	go t.read(bufio.NewReaderSize(r, 64<<10))
	return t
}

// RoundTrip writes a request and waits for its reply, the end of the stream or ctx.
func (t *StreamTransport) RoundTrip(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.err != nil {
		err := t.err
		t.mu.Unlock()
		return nil, err
	}
	t.nextID++
	id := t.nextID
	reply := make(chan response, 1)
	t.pending[id] = reply
	t.mu.Unlock()

	frame, err := newRequest(id, method, params)
	if err != nil {
		t.mu.Lock()
		delete(t.pending, id)
		t.mu.Unlock()
		return nil, err
	}
	// json.Marshal escapes newlines inside strings, so a frame is one line.
	frame = append(frame, '\n')
	t.writeMu.Lock()
	_, err = t.w.Write(frame)
	t.writeMu.Unlock()
	if err != nil {
		// A write fails when the server has closed the connection; the reader may be about
		// to find why (a refusal it sent first): give it a moment.
		select {
		case <-t.readerDone:
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		select {
		case r := <-reply: // it was given to this call
			return r.outcome()
		default:
		}
		t.mu.Lock()
		delete(t.pending, id)
		if t.unclaimed != nil { // the server refused the connection before this call
			_, err = t.unclaimed.outcome()
		} else if refusal, ok := t.err.(*Error); ok {
			err = refusal
		}
		t.mu.Unlock()
		return nil, err
	}

	select {
	case r := <-reply:
		return r.outcome()
	case <-ctx.Done():
		// The entry stays in pending until the server answers: see dispatch.
		return nil, ctx.Err()
	case <-t.stopped:
		select {
		case r := <-reply:
			return r.outcome()
		default:
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		return nil, t.err
	}
}

// read dispatches the replies on r until it fails, then stops the transport.
func (t *StreamTransport) read(r *bufio.Reader) {
	defer close(t.readerDone)
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			t.dispatch(line)
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			t.mu.Lock()
			unclaimed := t.unclaimed
			t.mu.Unlock()
			if unclaimed != nil {
				_, refusal := unclaimed.outcome()
				t.stop(refusal)
				return
			}
			t.stop(fmt.Errorf("sessiond: connection lost: %w", err))
			return
		}
	}
}

// dispatch hands a reply to the call with its id. A line that is not a reply to one of our
// calls is dropped. A server answers with id null a request it could not read at all (one over
// its size limit, say); when a single call is unanswered, that reply can only be its own.
func (t *StreamTransport) dispatch(line []byte) {
	var r response
	if json.Unmarshal(line, &r) != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var id uint64
	if string(r.ID) == "null" {
		if r.Error != nil && len(t.pending) == 0 {
			t.unclaimed = &r
			return
		}
		if r.Error == nil || len(t.pending) != 1 {
			return
		}
		for only := range t.pending {
			id = only
		}
	} else if json.Unmarshal(r.ID, &id) != nil {
		return
	}
	if reply, ok := t.pending[id]; ok {
		delete(t.pending, id)
		t.unclaimed = nil
		reply <- r // buffered: never blocks, even when the caller has given up
	}
}

// stop stops the transport with err, once; calls waiting for a reply return err.
func (t *StreamTransport) stop(err error) {
	t.stopOnce.Do(func() {
		t.mu.Lock()
		t.err = err
		t.mu.Unlock()
		close(t.stopped)
	})
}

// Close stops the transport and closes the writer and the reader. Calls still waiting for a
// reply fail with ErrClosed.
func (t *StreamTransport) Close() error {
	t.closeOnce.Do(func() {
		t.stop(ErrClosed)
		for _, c := range t.closers {
			if err := c.Close(); err != nil && t.closeErr == nil {
				t.closeErr = err
			}
		}
	})
	return t.closeErr
}
