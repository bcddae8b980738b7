package sessiond

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// StreamTransport carries JSON-RPC over a byte stream with newline framing, one JSON value
// per line each way, as sessiond serves TCP and stdio. Calls from several goroutines are
// pipelined: a writer goroutine writes the requests in the order they are made (those made
// while it writes go out together next), and the replies, which may come in any order, are
// matched to their calls by id. A call's context bounds it from the start, the writing
// included: a server that stops reading fails calls on time and holds up no other call. A
// call that gave up may still be sent, and run, later: a CreateSession or Authenticate that
// timed out may have made a session (it ends by its idle timeout).
type StreamTransport struct {
	w       io.Writer
	closers []io.Closer

	mu      sync.Mutex
	queue   []byte        // requests made and not yet written, each with its newline
	queued  chan struct{} // (1) the writer has a queue to write
	nextID  uint64
	pending map[uint64]chan response // calls sent and not yet answered, by id
	err     error                    // why the transport stopped; set once
	closing bool                     // closeWrite began: calls fail with ErrClosed, unsent
	// unclaimed is an error with id null that came while no call was waiting, and no reply
	// since. If the stream ends next, calls fail with it rather than "connection lost". (A
	// refusal of the connection, -32000, stops the transport at once: see dispatch.)
	unclaimed *response

	stopOnce   sync.Once
	stopped    chan struct{} // closed when the transport stops: Close, or the stream ended
	readerDone chan struct{} // closed when the reader has returned
	writerDone chan struct{} // closed when the writer has returned
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
		queued:     make(chan struct{}, 1),
		stopped:    make(chan struct{}),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	if c, ok := w.(io.Closer); ok {
		t.closers = append(t.closers, c)
	}
	if c, ok := r.(io.Closer); ok && any(r) != any(w) {
		t.closers = append(t.closers, c)
	}
	go t.read(bufio.NewReaderSize(r, 64<<10))
	go t.write()
	return t
}

// RoundTrip writes a request and waits for its reply, the end of the stream or ctx.
func (t *StreamTransport) RoundTrip(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	if t.err != nil {
		err := t.err
		t.mu.Unlock()
		return nil, err
	}
	t.nextID++
	id := t.nextID
	frame, err := newRequest(id, method, params)
	if err != nil {
		t.mu.Unlock()
		return nil, err
	}
	reply := make(chan response, 1)
	t.pending[id] = reply
	// json.Marshal escapes newlines inside strings, so a frame is one line.
	t.queue = append(append(t.queue, frame...), '\n')
	t.mu.Unlock()
	select {
	case t.queued <- struct{}{}:
	default: // the writer has been told already
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

// write writes the queued requests until the transport stops, a write fails, which stops it,
// or closeWrite begins and the requests queued before it are written.
func (t *StreamTransport) write() {
	defer close(t.writerDone)
	var batch []byte
	for {
		select {
		case <-t.queued:
		case <-t.stopped:
			return
		}
		t.mu.Lock()
		batch, t.queue = t.queue, batch[:0]
		last := t.closing // nothing is queued from now on
		t.mu.Unlock()
		if _, err := t.w.Write(batch); err != nil {
			// A write fails when the server has closed the connection; the reader may be
			// about to find why (a refusal it sent first): give it a moment.
			select {
			case <-t.readerDone:
			case <-time.After(time.Second):
			}
			t.stop(fmt.Errorf("sessiond: connection lost: %w", err))
			return
		}
		if last {
			return
		}
		if cap(batch) > 64<<10 {
			batch = nil // a burst of large requests is over: give its buffer back
		}
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
	if string(r.ID) == "null" && errors.Is(r.Error, ErrServerUnavailable) {
		// The server refuses the connection (tooManyConnections, shuttingDown) and closes it
		// next, having run none of its requests: the calls waiting fail with the refusal, and
		// so do calls made from now on rather than be written to a closing connection.
		t.stop(r.Error)
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

// stop stops the transport with err, once; calls waiting for a reply return err, or ErrClosed
// once closeWrite has begun.
func (t *StreamTransport) stop(err error) {
	t.stopOnce.Do(func() {
		t.mu.Lock()
		if t.closing {
			err = ErrClosed
		}
		t.err = err
		t.mu.Unlock()
		close(t.stopped)
	})
}

// closeWrite closes the transport gracefully, for a server that answers the requests it has
// read when its input ends, then ends its output (sessiond on stdio): calls made from now on
// fail with ErrClosed, unsent; the requests queued are written and the writer (an io.Closer)
// closed; the reader goes on handing replies to their calls until the stream ends, when the
// calls left waiting fail with ErrClosed. It returns the error of closing the writer.
func (t *StreamTransport) closeWrite() error {
	t.mu.Lock()
	t.closing = true
	t.mu.Unlock()
	select {
	case t.queued <- struct{}{}:
	default: // the writer has been told already
	}
	<-t.writerDone
	return t.w.(io.Closer).Close()
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
