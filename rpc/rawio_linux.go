package rpc

import (
	"io"
	"net"
	"os"
	"syscall"
)

// rawHalf reads or writes a TCP connection's socket with raw system calls (rawCall) made
// inside the connection's RawConn: Go's poller still parks the goroutine while the socket is
// not ready, and the connection's deadlines and Close still apply.
//
// The calls are raw (syscall.RawSyscall) rather than the runtime's Syscall, which tells the
// scheduler that the goroutine entered the kernel. On a non-blocking socket read and write
// never block, but on loopback a write also delivers the segment to the receiver, which can
// take longer than the 20 µs after which Go's sysmon thread takes the processor away from a
// goroutine in a system call and hands it to another thread. Under a load of small requests
// that kept sysmon waking every 20 µs and threads handing processors back and forth: with raw
// calls the server made 0.06-0.07 context switches a request instead of 0.13, 0.1k sysmon
// sleeps a second instead of 3.1k, and spent 2-10 % less CPU a request (cmd/sessiond/PERFORMANCE.md).
// What a raw call gives up is the processor for other goroutines for its few microseconds.
//
// A raw call also skips the race detector's annotations (the kernel filling the read buffer,
// the ordering between I/O calls): race builds make the calls through syscall.Read and Write
// instead, which make those annotations (rawcall_race_linux.go).
type rawHalf struct {
	call  func(func(fd uintptr) bool) error // the RawConn's Read or Write, bound once
	trap  uintptr                           // SYS_READ or SYS_WRITE
	name  string                            // "read" or "write", for errors
	tryFn func(fd uintptr) bool             // try, bound once: a method value made at each call would be allocated at each call
	local net.Addr                          // for errors, as net.Conn's
	peer  net.Addr

	// Set before, and read after, a call, outside the descriptor's lock: a half has one user
	// at a time. The TCP transport reads on the reader goroutine and writes under the
	// connection's wmu; net/http never reads, or writes, a connection from two goroutines at
	// once.
	buf   []byte
	n     int
	errno syscall.Errno

	// noWait makes try report a socket that is not ready in again instead of waiting in the
	// poller: a read that may hand its connection to the event loop (armLoop). Set and read
	// by the half's one user at a time, like buf.
	noWait bool
	again  bool
}

// rawReader and rawWriter are the two halves of a socket served with raw system calls.
type (
	rawReader struct{ rawHalf }
	rawWriter struct {
		rawHalf
		// pending holds what the event loop's writes, which never wait, left unwritten
		// (writeInLoop): the next write writes it first, so the bytes go out in order.
		// Guarded by the connection's wmu, like every write.
		pending []byte
	}
)

// newRawIO returns the reader and writer a TCP connection is served with: raw system calls
// on its socket when nc is a *net.TCPConn, nc itself otherwise (ok false). A type that wraps
// a TCP connection may read and write in its own way (count, buffer, parse a proxy header),
// so only the plain connection is bypassed.
func newRawIO(nc net.Conn) (r io.Reader, w io.Writer, ok bool) {
	tc, isTCP := nc.(*net.TCPConn)
	if !isTCP {
		return nc, nc, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc, nc, false
	}
	local, peer := tc.LocalAddr(), tc.RemoteAddr()
	rr := &rawReader{rawHalf{call: rc.Read, trap: syscall.SYS_READ, name: "read", local: local, peer: peer}}
	rw := &rawWriter{rawHalf: rawHalf{call: rc.Write, trap: syscall.SYS_WRITE, name: "write", local: local, peer: peer}}
	rr.tryFn, rw.tryFn = rr.try, rw.try
	return rr, rw, true
}

// once makes one read or write of p, waiting in the poller while the socket is not ready. Its
// errors are *net.OpErrors with the Op of net.Conn's own ("read" or "write", not RawConn's
// "raw-read"), which net/http tells apart from other failures.
func (h *rawHalf) once(p []byte) (int, error) {
	h.buf, h.n, h.errno, h.again = p, 0, 0, false
	err := h.call(h.tryFn)
	h.buf = nil
	switch {
	case err != nil:
		if oe, ok := err.(*net.OpError); ok {
			oe.Op = h.name
		}
	case h.errno != 0:
		err = h.opError(h.errno)
	}
	return h.n, err
}

// opError is the error of a failed read or write, as net.Conn's.
func (h *rawHalf) opError(errno syscall.Errno) error {
	return &net.OpError{Op: h.name, Net: "tcp", Source: h.local, Addr: h.peer, Err: os.NewSyscallError(h.name, errno)}
}

// try is one attempt at the system call; false means the socket is not ready and the poller
// waits.
func (h *rawHalf) try(fd uintptr) bool {
	n, e := rawCall(h.trap, fd, h.buf)
	switch e {
	case syscall.EAGAIN:
		h.again = h.noWait
		return h.noWait
	case 0:
		h.n = n
	default:
		h.errno = e
	}
	return true
}

func (r *rawReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := r.once(p)
	switch {
	case r.again:
		return 0, errWouldBlock
	case err == nil && n == 0:
		return 0, io.EOF
	}
	return n, err
}

// Write writes p whole, after what pending holds, waiting in the poller while the socket is
// full.
func (w *rawWriter) Write(p []byte) (int, error) {
	if err := w.flushPending(); err != nil {
		return 0, err
	}
	return w.writeAll(p)
}

// maxKeptPending is the most room pending keeps once written out.
const maxKeptPending = 64 << 10

// flushPending writes out what the event loop left unwritten, waiting if it must.
func (w *rawWriter) flushPending() error {
	if len(w.pending) == 0 {
		return nil
	}
	_, err := w.writeAll(w.pending)
	if cap(w.pending) > maxKeptPending {
		w.pending = nil // one large reply the client was slow to take: do not keep its room
	} else {
		w.pending = w.pending[:0]
	}
	return err
}

func (w *rawWriter) writeAll(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n, err := w.once(p[written:])
		written += n
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// rawNetConn is a net.Conn whose reads and writes are rawReader's and rawWriter's, for a
// server that takes a net.Conn, net/http's; everything else is the connection's own. Unlike a
// net.Conn it must not be read, or written, from two goroutines at once (rawHalf).
type rawNetConn struct {
	net.Conn
	r io.Reader
	w io.Writer
}

func (c *rawNetConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *rawNetConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// CloseWrite half-closes the connection, as net/http does before closing one it answered
// with an error. Only a *net.TCPConn is wrapped (newRawIO).
func (c *rawNetConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

// rawListen returns ln handing out its TCP connections as rawNetConns.
func rawListen(ln net.Listener) net.Listener { return rawListener{ln} }

type rawListener struct{ net.Listener }

func (l rawListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	r, w, ok := newRawIO(nc)
	if !ok {
		return nc, nil
	}
	return &rawNetConn{Conn: nc, r: r, w: w}, nil
}
