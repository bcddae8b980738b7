package rpc

import (
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// loopSock is the net.Conn (conn.nc) of a TCP connection the event loop may serve.
//
// The kernel calls every watcher of a socket when input comes, in the sender's time. Go's
// poller watches the socket of each net.Conn, so while the loop's set watched it too, every
// request cost the client a second callback: about 90 ns more a request than a request to
// Redis, 1.3 % of the pinned client's work; each of the loop's turns in Go's poller found
// the socket ready for nothing, and with the loop on two processors every event also woke
// Go's idle processor (cmd/sessiond/PERFORMANCE.md). So once the loop has served a connection for a
// while (detachAfter requests since the hand-over) it closes the reader's net.Conn (detach),
// which takes the socket out of Go's poller while the loop's own descriptor (fd) keeps it
// open, and when the connection goes back to its reader, the reader makes a new net.Conn
// from that descriptor (attach).
//
// Meanwhile loopSock stands in for the net.Conn: it keeps the deadlines set, for the next
// one; Close shuts the socket's sending side, so that no reply gets out after a forced stop,
// and no new net.Conn is made; reads, writes and SyscallConn fail as on a closed connection.
// The socket itself is closed with the loop's descriptor (forgetLoop), once the reader's
// reads have ended.
//
// A new net.Conn is what net.FileConn makes: it sets Go's defaults on the socket again (TCP
// keep-alive every 15 s, no delay), whatever the listener had set. sessiond's listeners
// keep those defaults; a listener given to ServeTCP with others loses them after the first
// hand-back.
type loopSock struct {
	mu       sync.Mutex
	tc       *net.TCPConn // the reader's net.Conn; nil while the loop serves the connection
	closed   bool
	rdl, wdl time.Time // the deadlines, set on each new net.Conn
	local    net.Addr
	peer     net.Addr

	// fd is the loop's own descriptor for the socket, made at the first hand-over (dup), -1
	// before and once closed (closeFD). The loop's reads and writes use it directly: its
	// number cannot be reused while the loop may use it, since only the reader closes it,
	// once its reads have ended, or the loop could not watch the socket, and nothing hands
	// the connection over again (forgetLoop). Changed under mu, so that Close never acts
	// on a number reused; read without it by the connection's owner.
	fd int
}

func newLoopSock(tc *net.TCPConn) *loopSock {
	return &loopSock{tc: tc, fd: -1, local: tc.LocalAddr(), peer: tc.RemoteAddr()}
}

// closedError is the error of a call on a connection that is closed, or served by the loop.
func (s *loopSock) closedError(op string) error {
	return &net.OpError{Op: op, Net: "tcp", Source: s.local, Addr: s.peer, Err: net.ErrClosed}
}

// conn returns the reader's net.Conn, nil while the loop serves the connection.
func (s *loopSock) conn() *net.TCPConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tc
}

func (s *loopSock) Read(p []byte) (int, error) {
	if tc := s.conn(); tc != nil {
		return tc.Read(p)
	}
	return 0, s.closedError("read")
}

func (s *loopSock) Write(p []byte) (int, error) {
	if tc := s.conn(); tc != nil {
		return tc.Write(p)
	}
	return 0, s.closedError("write")
}

// Close closes the reader's net.Conn and shuts the socket's sending side, which the loop's
// descriptor would otherwise keep open; no new net.Conn is made after it.
func (s *loopSock) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed { // Close has let go of the net.Conn too
		return s.closedError("close")
	}
	s.closed = true
	if s.fd >= 0 {
		_ = syscall.Shutdown(s.fd, syscall.SHUT_WR)
	}
	if s.tc == nil {
		return nil
	}
	err := s.tc.Close()
	s.tc = nil
	return err
}

// CloseWrite shuts the socket's sending side (drainAndClose, once the reader's reads have
// ended: it has a net.Conn then, unless Close came first).
func (s *loopSock) CloseWrite() error {
	if tc := s.conn(); tc != nil {
		return tc.CloseWrite()
	}
	return s.closedError("close")
}

func (s *loopSock) LocalAddr() net.Addr  { return s.local }
func (s *loopSock) RemoteAddr() net.Addr { return s.peer }

func (s *loopSock) SetDeadline(t time.Time) error {
	if err := s.SetReadDeadline(t); err != nil {
		return err
	}
	return s.SetWriteDeadline(t)
}

func (s *loopSock) SetReadDeadline(t time.Time) error {
	return s.setDeadline(&s.rdl, t, (*net.TCPConn).SetReadDeadline)
}

func (s *loopSock) SetWriteDeadline(t time.Time) error {
	return s.setDeadline(&s.wdl, t, (*net.TCPConn).SetWriteDeadline)
}

func (s *loopSock) setDeadline(keep *time.Time, t time.Time, set func(*net.TCPConn, time.Time) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed { // Close has let go of the net.Conn too
		return s.closedError("set deadline")
	}
	*keep = t
	if s.tc == nil {
		return nil
	}
	return set(s.tc, t)
}

// SyscallConn is the reader's net.Conn's (for unsentBytes, as it drains a connection).
func (s *loopSock) SyscallConn() (syscall.RawConn, error) {
	if tc := s.conn(); tc != nil {
		return tc.SyscallConn()
	}
	return nil, s.closedError("raw-control")
}

// dup makes the loop's own descriptor for the socket. The reader calls it, at its first
// hand-over.
func (s *loopSock) dup() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tc == nil {
		return s.closedError("dup")
	}
	rc, err := s.tc.SyscallConn()
	if err != nil {
		return err
	}
	var dupErr error
	if err := rc.Control(func(fd uintptr) {
		nfd, err := dupCloexec(fd)
		if err != nil {
			dupErr = err
			return
		}
		s.fd = nfd
	}); err != nil {
		return err
	}
	return dupErr
}

// detach closes the reader's net.Conn, which takes the socket out of Go's poller; the loop's
// descriptor keeps the socket open. The loop calls it while it serves the connection: the
// reader, waiting for it, is not using its net.Conn.
func (s *loopSock) detach() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tc != nil && s.fd >= 0 {
		_ = s.tc.Close()
		s.tc = nil
	}
}

// attach makes the reader a new net.Conn for the socket, from the loop's descriptor, with
// the deadlines set meanwhile, and returns it (nil if the reader has one still); it fails
// once Close has been called.
func (s *loopSock) attach() (*net.TCPConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tc != nil {
		return nil, nil
	}
	if s.closed || s.fd < 0 {
		return nil, s.closedError("read")
	}
	// net.FileConn takes a duplicate of its own, made through an os.File: one more, for
	// the os.File to close.
	nfd, err := dupCloexec(uintptr(s.fd))
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(nfd), "")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok { // cannot be: the descriptor is the TCP connection's
		nc.Close()
		return nil, s.closedError("read")
	}
	if !s.rdl.IsZero() {
		_ = tc.SetReadDeadline(s.rdl)
	}
	if !s.wdl.IsZero() {
		_ = tc.SetWriteDeadline(s.wdl)
	}
	s.tc = tc
	return tc, nil
}

// closeFD closes the loop's descriptor, which closes the socket if the reader has no
// net.Conn.
func (s *loopSock) closeFD() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd >= 0 {
		_ = syscall.Close(s.fd)
		s.fd = -1
	}
}

// dupCloexec duplicates descriptor fd, closed on exec.
func dupCloexec(fd uintptr) (int, error) {
	nfd, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("fcntl", err)
	}
	return nfd, nil
}
