package rpc

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/sourcegraph/jsonrpc2"
)

// ServeTCP accepts connections on ln and serves each with newline framing: one JSON value per
// line in, one reply per line out. A client may pipeline; its requests run concurrently (at
// most Options.MaxInFlightPerConn at once) and replies go out as they are ready, in any order.
// When a client closes its side, the calls it sent still run and their replies are written
// before the connection closes.
//
// ServeTCP returns ErrServerClosed after Shutdown, or the listener's error. It closes ln.
func (s *Server) ServeTCP(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		_ = ln.Close()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait a little, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("rpc: accept failed; retrying", "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.shutdownCh:
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		s.startTCP(nc)
	}
}

func (s *Server) startTCP(nc net.Conn) {
	s.workOutside()
	client := ClientInfo{Addr: remoteIP(nc.RemoteAddr()), Transport: TransportTCP}
	r, w, _ := newRawIO(nc)
	c := s.newConn(s.baseCtx, client, r, w, FramingNewline, nc)
	s.useLoop(c, r, w)
	if refusal := s.track(c); refusal != nil {
		c.cancel()
		out := getOut()
		out.appendError(nil, refusal)
		out.b = append(out.b, '\n')
		s.refuse(nc, TransportTCP, refusal, out)
		return
	}
	go c.serve()
}

// serve runs a connection until its reader ends, then finishes it.
func (c *conn) serve() {
	err := c.readLoop()
	c.forgetLoop() // at once, not after the handlers: a killed socket must not stay open
	if err != nil && err != io.EOF && err != errStopped {
		c.srv.log.Debug("rpc: connection ended", "transport", c.client.Transport,
			"client", c.client.Addr, "err", err)
	}
	c.finish()
}

// refuse tells a connection the server cannot take why, with what (which it puts back in
// the pool) and the refusal's error: a TCP error line, an HTTP 503 reply. It half-closes
// then and drains what the client sent, so the close does not reset the connection before
// the client has read it. At most maxRefusing connections are told at once, each for up to
// a second (two over HTTP, which first waits up to one for the request's head); the ones
// beyond are closed at once, or they would hold descriptors beyond
// MaxConnections as fast as clients connect.
func (s *Server) refuse(nc net.Conn, transport string, refusal *jsonrpc2.Error, what *outBuf) {
	s.noteRefusal(transport, remoteIP(nc.RemoteAddr()), refusal)
	select {
	case s.refusing <- struct{}{}:
	default:
		putOut(what)
		_ = nc.Close()
		return
	}
	go func() {
		defer func() { <-s.refusing }()
		defer putOut(what)
		deadline := time.Now().Add(time.Second)
		_ = nc.SetDeadline(deadline)
		if transport == TransportHTTP {
			// A reply before the request is one the client did not ask for: Go's client
			// fails the request with "unsolicited response" instead of reading the 503. So
			// the reply waits for the request's head, for up to a second; a connection that
			// sends none by then is told all the same.
			if !awaitRequestHead(nc) {
				_ = nc.Close() // the client closed or reset it
				return
			}
			deadline = time.Now().Add(time.Second)
			_ = nc.SetDeadline(deadline)
		}
		if _, err := nc.Write(what.b); err != nil {
			_ = nc.Close()
			return
		}
		drainAndClose(nc, deadline)
	}()
}

// awaitRequestHead reads what an HTTP client sends until the end of its first request's head
// (the blank line after the headers) or the read deadline, and reports false if the
// connection ended or failed first.
func awaitRequestHead(nc net.Conn) bool {
	const end = "\r\n\r\n"
	buf := make([]byte, 4<<10)
	seen := 0 // bytes of end matched so far, across reads
	for {
		n, err := nc.Read(buf)
		for _, b := range buf[:n] {
			switch {
			case b == end[seen]:
				seen++
			case b == end[0]:
				seen = 1
			default:
				seen = 0
			}
			if seen == len(end) {
				return true
			}
		}
		if err != nil {
			var ne net.Error
			return errors.As(err, &ne) && ne.Timeout()
		}
	}
}

// noteRefusal logs a refused connection, once a second at most, so that a flood of
// connections does not flood the log: the refusals of the second after a line are held back
// and logged at its end in one line, which names the last of them and counts them.
func (s *Server) noteRefusal(transport, client string, refusal *jsonrpc2.Error) {
	r := refusalNote{transport, client, refusal}
	now := time.Now()
	s.mu.Lock()
	if since := now.Sub(s.refusalLogged); since < time.Second {
		s.lastRefusal = r
		s.refusalsHeld++
		if s.refusalFlush == nil {
			s.refusalFlush = time.AfterFunc(time.Second-since, s.flushRefusals)
		}
		s.mu.Unlock()
		return
	}
	s.refusalLogged = now
	s.mu.Unlock()
	s.logRefusals(r, 1)
}

// refusalNote is a refused connection, for the log.
type refusalNote struct {
	transport, client string
	refusal           *jsonrpc2.Error
}

// flushRefusals logs the refusals noteRefusal held back.
func (s *Server) flushRefusals() {
	s.mu.Lock()
	n, last := s.refusalsHeld, s.lastRefusal
	if s.refusalFlush != nil {
		s.refusalFlush.Stop()
	}
	s.refusalsHeld, s.refusalFlush = 0, nil
	if n > 0 {
		s.refusalLogged = time.Now()
	}
	s.mu.Unlock()
	if n > 0 {
		s.logRefusals(last, n)
	}
}

// logRefusals logs n refused connections, the last of them r.
func (s *Server) logRefusals(r refusalNote, n int) {
	attrs := []any{"transport", r.transport, "client", r.client, "error", r.refusal.Message}
	if r.refusal.Data != nil {
		attrs = append(attrs, "data", string(*r.refusal.Data))
	}
	if n > 1 {
		attrs = append(attrs, "refusedInTheLastSecond", n)
	}
	s.log.Warn("rpc: refusing connection", attrs...)
}

// drainAndClose closes a connection without losing what was written to it. Closing a TCP
// socket with unread input, or input arriving after, makes the kernel send a reset, which
// throws away the replies still queued to the client (a slow reader's) and may cut one in
// half. So it half-closes the sending side and reads and discards the client's input until
// the client closes its side, or until the client has acknowledged every byte (where the
// kernel tells: Linux) and has had lingerGrace to read them, or at the latest until deadline.
func drainAndClose(nc net.Conn, deadline time.Time) {
	defer nc.Close()
	cw, ok := nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	buf := make([]byte, 4<<10)
	var ackedSince time.Time
	for {
		now := time.Now()
		if !now.Before(deadline) {
			return
		}
		// Where the kernel cannot tell (off Linux), the client gets lingerGrace from the start.
		switch unsent := unsentBytes(nc); {
		case unsent > 0:
			ackedSince = time.Time{}
		case ackedSince.IsZero():
			ackedSince = now
		case now.Sub(ackedSince) >= lingerGrace:
			return
		}
		poll := now.Add(lingerPoll)
		if deadline.Before(poll) {
			poll = deadline
		}
		_ = nc.SetReadDeadline(poll)
		if !discardInput(nc, buf) {
			return // the client closed its side, or the connection failed
		}
	}
}

// discardInput reads and throws away what the client sends until the read deadline passes
// (a read then fails with a timeout, even with input waiting), and reports false if the
// client closed its side or the connection failed first.
func discardInput(nc net.Conn, buf []byte) bool {
	for {
		if _, err := nc.Read(buf); err != nil {
			var ne net.Error
			return errors.As(err, &ne) && ne.Timeout()
		}
	}
}

// maxRefusing bounds the connections being refused with an error line at once (2,000
// clients connecting at once to a server with room for 64 are all told); the ones beyond are
// closed without it.
const maxRefusing = 4096

const (
	// lingerGrace is how long a client whose kernel has every reply gets to read them.
	lingerGrace = time.Second
	// lingerPoll is how often drainAndClose looks at what the client has acknowledged.
	lingerPoll = 50 * time.Millisecond
	// defaultUnreadGrace is how long a connection finishing in a shutdown reads requests to
	// refuse (refuseUnread) once its calls are answered.
	defaultUnreadGrace = 10 * time.Millisecond
	// refusalWriteTimeout bounds the write of those refusals.
	refusalWriteTimeout = 100 * time.Millisecond
)

// remoteIP returns the IP of a client address, without the port.
func remoteIP(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	if host, _, err := net.SplitHostPort(addr.String()); err == nil {
		return host
	}
	return addr.String()
}
