package rpc

import (
	"context"
	"errors"
	"io"
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
// ctx.Err(); after Shutdown it returns ErrServerClosed. Neither r nor w is closed. A Read on
// r that never returns cannot be interrupted unless r has a SetReadDeadline method (as
// *os.File does for pipes); ServeStdio returns anyway and leaves that one Read behind.
//
// The read and write timeouts of Options do not apply to stdio.
func (s *Server) ServeStdio(ctx context.Context, r io.Reader, w io.Writer, framing Framing) error {
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopForced := context.AfterFunc(s.baseCtx, cancel)
	defer stopForced()

	c := s.newConn(callCtx, ClientInfo{Addr: TransportStdio, Transport: TransportStdio}, r, w, framing, nil)
	if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok {
		c.poke = func() { _ = d.SetReadDeadline(aLongTimeAgo) }
	}
	if s.track(c) != nil {
		c.cancel()
		return ErrServerClosed
	}
	readDone := make(chan error, 1)
	go func() { readDone <- c.readLoop() }()

	var readErr error
	select {
	case readErr = <-readDone:
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
