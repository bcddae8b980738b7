package rpc

import (
	"context"
	"errors"
	"io"
	"slices"
	"time"
)

// ServeStdio serves one client that writes requests to r and reads replies from w, such as a
// parent process on stdin and stdout (logs belong on stderr). framing is FramingNewline (one
// JSON value per line, the default) or FramingContentLength (LSP-style headers). Requests run
// concurrently, as on TCP, and replies go out as they are ready.
//
// At EOF on r, ServeStdio lets the calls in flight finish, writes and flushes their replies
// and returns nil. Input that ends inside a Content-Length message (in its headers or body)
// ends the same way: the cut message is answered with a parse error (id null), as newline
// framing answers a last line that is not JSON, and logged as a warning. When ctx is
// cancelled it stops reading, cancels the calls' contexts, waits for them, flushes and returns
// ctx.Err(). Neither r nor w is closed. A Read on r that never returns cannot be interrupted
// unless r takes a read deadline (SetReadDeadline, as an *os.File does for a pipe Go polls,
// not for a process's inherited stdin); ServeStdio returns anyway and leaves that one Read
// behind.
//
// Shutdown stops the reading too, lets the calls in flight finish and writes their replies.
// Then, as over TCP, the requests the client sent that were not run are answered with -32000
// shuttingDown and their ids (a notification gets nothing; a batch, or a request whose id
// cannot be read, id null), so that the client knows they did not run: up to
// MaxInFlightPerConn of them, among those read already and those that come within 10 ms of
// the calls' end. If r takes no read deadline (or ignores it: an *os.File whose Fd method was
// called), ServeStdio starts no Read on it: only the requests it has buffered, and those the
// Read it was left in returns within the 10 ms, are answered. Requests beyond those are never
// read, nor answered. The refusals are written at once, for at most 100 ms, and not at all to
// a pipe too full to take them (on Linux); a write to w that blocks longer, w taking no write
// deadline, is left behind. ServeStdio then returns ErrServerClosed. A forced stop (Shutdown's
// context ended) makes it return at once; the calls it cancels begin no more writes to w, but
// a write already under way (a reply or the refusals, waiting for a client that does not read)
// may end after the return.
//
// The read and write timeouts of Options do not apply to stdio.
func (s *Server) ServeStdio(ctx context.Context, r io.Reader, w io.Writer, framing Framing) error {
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopForced := context.AfterFunc(s.baseCtx, cancel)
	defer stopForced()

	c := s.newConn(callCtx, ClientInfo{Addr: TransportStdio, Transport: TransportStdio}, r, w, framing, nil)
	c.out, c.readerDone = w, make(chan struct{})
	if d, ok := r.(readDeadliner); ok {
		c.poke = func() { _ = d.SetReadDeadline(aLongTimeAgo) }
	}
	if s.track(c) != nil {
		c.cancel()
		return ErrServerClosed
	}
	go func() {
		c.readErr = c.readLoop()
		close(c.readerDone)
	}()

	var readErr error
	select {
	case <-c.readerDone:
		readErr = c.readErr
		if errors.Is(readErr, io.ErrUnexpectedEOF) {
			s.log.Warn("rpc: input ended inside a message; answering it with a parse error",
				"transport", TransportStdio, "framing", framing.String())
			c.replyBadFrame(nil, badHeader("input ended inside a message").(*frameError).reply)
			readErr = io.EOF
		}
	case <-c.stopCh: // Shutdown, or the writer failed
	case <-ctx.Done():
	}
	finished := make(chan struct{})
	go func() {
		c.finish()
		close(finished)
	}()
	select {
	case <-finished:
	case <-c.killed:
		return ErrServerClosed
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case c.writeErr != nil: // the handlers are done: safe to read
		return c.writeErr
	case s.isClosing():
		return ErrServerClosed
	case readErr == nil, errors.Is(readErr, io.EOF), errors.Is(readErr, errStopped):
		return nil
	default:
		return readErr
	}
}

// readDeadliner is an input whose Read a deadline can end.
type readDeadliner interface{ SetReadDeadline(time.Time) error }

// readUnreadStdio sets a stdio connection's reader up for refuseUnread and reports whether it
// may read: once the reader goroutine has returned, which it does at once when the input took
// the read deadline of stop, and otherwise when the Read it was left in returns, until
// deadline. It then reads on until deadline if the input takes a read deadline, else only
// what is buffered. A Read still waiting at deadline holds no whole frame unread: nothing is
// read then.
func (c *conn) readUnreadStdio(deadline time.Time) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-c.readerDone:
	case <-timer.C:
		return false
	case <-c.killed:
		return false
	}
	if d, ok := c.rd.src.(readDeadliner); !ok || !nonBlocking(d) || d.SetReadDeadline(deadline) != nil {
		c.rd.arm = func(bool) error { return errStopped } // no Read: only what is buffered
	}
	return true
}

// writeAside writes b, a shutdown's refusals, to a stdio output, for at most
// refusalWriteTimeout. An output that takes a write deadline is given one: the write is over
// when writeAside returns, and the output is left without a deadline, as it was found (after
// a graceful stop, before ServeStdio returns; a forced one does not wait for it). Another
// output, which may block for ever (the stdout a process inherits, or an *os.File in
// blocking mode, which ignores a deadline), is written by a goroutine of its own, left
// behind if it blocks longer. bw is empty: the handlers are done and the last of them flushed.
func (c *conn) writeAside(b []byte) {
	if c.isKilled() { // ServeStdio has returned: nothing more goes to w
		return
	}
	d, ok := c.out.(interface{ SetWriteDeadline(time.Time) error })
	if ok && nonBlocking(d) && d.SetWriteDeadline(time.Now().Add(refusalWriteTimeout)) == nil {
		_, _ = c.out.Write(b)
		_ = d.SetWriteDeadline(time.Time{})
		return
	}
	b = slices.Clone(b) // the write may outlive the caller's buffer
	written := make(chan struct{})
	go func() {
		defer close(written)
		_, _ = c.out.Write(b)
	}()
	timer := time.NewTimer(refusalWriteTimeout)
	defer timer.Stop()
	select {
	case <-written:
	case <-timer.C:
	case <-c.killed:
	}
}
