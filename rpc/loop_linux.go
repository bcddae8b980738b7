package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The event loop: how a TCP connection is served on a single processor.
//
// A connection's reader goroutine, once it has answered what its client sent and finds the
// socket empty, hands the connection to the server's event loop instead of waiting in Go's
// poller. The loop is one goroutine watching the sockets handed to it in an epoll set of its
// own (edge-triggered), in which it waits itself (eventLoop.wait). For each socket that has
// input it reads once, answers the requests that never wait (NeverWaiter) and writes their replies,
// as Redis does: two system calls a request (a read and a write for a pipelined run of
// them), made directly on a descriptor of its own for the socket (loopSock.fd), no
// goroutine woken and no read that finds nothing. Through Go's poller every request costs a
// read, a write, a read of the empty socket and a wake-up of the reader goroutine; with
// `serve --cpus 1` the loop took sessiond's CPU a request from 1.16-1.25x Redis's to
// 1.04-1.07x (cmd/sessiond/PERFORMANCE.md).
//
// Anything else goes back to the reader goroutine, not taken, which serves it as before and
// hands the connection over again the next time it finds the socket empty with nothing in
// flight: a request for another method, or one that says it would wait (ErrWouldWait), a
// request not yet whole (RequestReadTimeout), one too large, a reply the socket would not
// take at once (the reader waits for the client, WriteTimeout), the end of input or an error,
// and stopping. The reader waits meanwhile, for the loop to give the connection back, for
// the connection to stop, or for ReadIdleTimeout since the last reply; in the last two cases
// it takes the connection back itself.
//
// Who owns a connection, its frameReader and its rawReader is loopConn.owner: the reader
// goroutine, the loop (waiting for input), or the loop serving it. Changes go through atomic
// operations and the wake channel, so each owner sees what the last one did.
//
// With several processors the loop is not used: one goroutine would serve all the quick
// requests on one processor at a time.

// eventLoop is a server's event loop.
type eventLoop struct {
	epfd  int      // the set; closed by the loop when it stops
	efd   int      // eventfd in the set (key 0) and in Go's poller (efile): written for a turn there, and to stop
	efile *os.File // efd, in Go's poller
	erc   syscall.RawConn
	stop  atomic.Bool // close was called: the loop stops at its next wake-up

	mu     sync.Mutex
	conns  map[uint64]*conn // by key, the epoll data of their sockets
	keys   uint64
	closed bool // the loop has stopped and closed the set: watch and forgetLoop leave it alone

	// The loop goroutine's own.
	evs       [128]syscall.EpollEvent
	n         int
	lastTurn  int64 // when it was (UnixNano)
	turnGap   time.Duration
	outside   *atomic.Uint64 // the server's count of work done outside the loop
	seen      uint64         // outside at the last turn
	waitTS    unix.Timespec
	noPwait2  bool // epoll_pwait2 is missing or refused: blocking waits last a millisecond
	turnFn    func(uintptr) bool
	turnWrote bool // turnFn's state: the turn has written the eventfd
	idleFn    func(uintptr) bool
	woke      bool // the batch handed a connection back: its reader is ready to run

	// The set's duplicate in Go's poller, for idle waits (idle), kept while the loop goes
	// idle now and then: adding a set to another makes the kernel check every descriptor
	// in it, about 75 µs with 1,000 sockets. It goes once the loop has not been idle for
	// keepPark, since while it is there every event pays the nested callback.
	park     *os.File
	parkRC   syscall.RawConn
	lastIdle int64        // when the loop last waited in Go's poller (UnixNano)
	noPark   bool         // Go's poller would not watch the duplicate
	parks    atomic.Int32 // duplicates registered, counted for tests
}

// The loop waits for its sockets in its own set, not through Go's poller: a set that Go's
// poller watches makes every event on one of its sockets wake the set's watchers too (the
// kernel's nested epoll callback), which cost a pinned client about 0.2 µs a request, 3 % of
// its own work (cmd/sessiond/PERFORMANCE.md). So the loop blocks in epoll_pwait2 for up to loopWait
// while it holds its processor, as Redis blocks in epoll_wait, and gives Go a turn in its
// poller now and then, where the goroutines waiting for other descriptors (an accept, a
// connection served by its reader, an HTTP request, a Redis store's reply) are found: Go
// looks for network input only when no goroutine is ready to run (or every 10 ms or more,
// from its sysmon thread).
//   - Before each blocking wait it lets the goroutines ready to run go first (Gosched): the
//     readers it handed connections back to, those its locks and channels woke.
//   - Every so often it takes a turn in Go's poller (turn): the eventfd written and waited
//     for there. A turn costs more than it seems while Go's poller still watches a
//     socket's own descriptor (until the loop has served it for a while, loopSock): it
//     reports every such socket that had input since its last look, for nothing (about
//     0.15 µs each); pinned, with a turn every 250 µs that was 2.4 % of the server's CPU,
//     with one every millisecond 0.5 %, before loopSock. So turns come turnMin apart while
//     the goroutines outside the loop have work (Server.outside grew since the last turn),
//     and twice as far apart after each turn that found none, up to turnMax.
//   - After loopWait with no event it waits in Go's poller for the set (idle), through a
//     duplicate of its descriptor registered there while the loop goes idle now and then
//     (eventLoop.park), and let go after keepPark without.
//
// Meanwhile Go's other goroutines wait for a turn: up to turnMax while the loop always
// has input, turnMin once a turn has seen them busy, plus the batch being served; the
// readers the loop hands connections back to run right after the batch (Gosched).
const (
	turnMin  = 100 * time.Microsecond
	turnMax  = time.Millisecond
	loopWait = 100 * time.Microsecond
	keepPark = 100 * time.Millisecond
)

// epollET is EPOLLET as the uint32 of an EpollEvent (syscall's constant is negative).
const epollET = 1 << 31

// loopOwner values: who owns a connection handed to the loop.
const (
	ownReader   int32 = iota // its reader goroutine
	ownLoop                  // the loop, waiting for input
	ownLoopBusy              // the loop, serving it

	reclaimed int32 = 1 << 2 // bit: the reader wants it back once the loop is done
)

// loopConn is a connection's state for the event loop.
type loopConn struct {
	loop  *eventLoop // the server's, from the first hand-over, kept here: Shutdown closes it and lets go of it
	sock  *loopSock  // the connection's net.Conn (conn.nc), and the loop's descriptor for its socket
	r     *rawReader
	w     *rawWriter
	key   uint64 // 0 until first watched
	owner atomic.Int32
	wake  chan struct{} // the loop gave the connection back
	timer *time.Timer   // the reader's idle wait; reader goroutine only

	// Reader goroutine only: the next read waits in Go's poller rather than hand over;
	// never again once the loop could not take the connection.
	noHandOver, noLoop bool

	// detachAt is the count of served at which the loop closes the reader's net.Conn, so
	// that Go's poller no longer watches the socket (loopSock): detachAfter more than at the
	// hand-over, and math.MaxInt once it has. Set by the reader, read by the loop.
	detachAt int

	// Counted by whoever owns the connection: requests the loop answered (for detachAt
	// too), and, for tests, times it gave the connection back and its writes of replies
	// (writeInLoop calls).
	served, handedBack, writes int
}

// errLoopClosed is watch's error once the loop has stopped.
var errLoopClosed = errors.New("rpc: event loop closed")

func newEventLoop(outside *atomic.Uint64) (*eventLoop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	efd, _, errno := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		syscall.Close(epfd)
		return nil, os.NewSyscallError("eventfd2", errno)
	}
	fail := func(err error) (*eventLoop, error) {
		syscall.Close(epfd)
		syscall.Close(int(efd))
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | epollET} // key 0
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, int(efd), &ev); err != nil {
		return fail(os.NewSyscallError("epoll_ctl", err))
	}
	// Non-blocking, so that a duplicate made for an idle wait goes to Go's poller (the
	// flag is the set's, shared by its descriptors; epoll_wait does not look at it).
	if err := syscall.SetNonblock(epfd, true); err != nil {
		return fail(os.NewSyscallError("fcntl", err))
	}
	efile := os.NewFile(efd, "eventfd") // non-blocking: watched by Go's poller
	erc, err := pollerConn(efile)
	if err != nil {
		efile.Close()
		syscall.Close(epfd)
		return nil, fmt.Errorf("rpc: the event loop's eventfd: %w", err)
	}
	l := &eventLoop{epfd: epfd, efd: int(efd), efile: efile, erc: erc, conns: map[uint64]*conn{}, outside: outside, turnGap: turnMin}
	l.turnFn, l.idleFn = l.turnOnce, l.idleCollect
	l.lastTurn = time.Now().UnixNano()
	go l.run()
	return l, nil
}

// close stops the loop. The connections it watches must have been given back.
func (l *eventLoop) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed { // the eventfd is open: its number is not another file's
		l.stop.Store(true)
		l.signal()
	}
}

// signal writes the eventfd, which wakes the loop wherever it waits.
func (l *eventLoop) signal() bool {
	one := uint64(1)
	_, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(l.efd), uintptr(unsafe.Pointer(&one)), 8)
	return errno == 0
}

func (l *eventLoop) run() {
	defer l.shut()
	for !l.stop.Load() {
		if !l.wait() {
			continue
		}
		now := time.Now().UnixNano() // when the connections of this batch were last active
		for i := range l.n {
			key := uint64(uint32(l.evs[i].Fd)) | uint64(uint32(l.evs[i].Pad))<<32
			if key == 0 {
				continue // the eventfd
			}
			l.mu.Lock()
			c := l.conns[key]
			l.mu.Unlock()
			if c != nil {
				l.serve(c, l.evs[i].Events, now)
			}
		}
		if l.woke {
			l.woke = false
			runtime.Gosched()
		}
		if now-l.lastTurn >= int64(l.turnGap) || now < l.lastTurn {
			l.turn(now)
		}
	}
}

// shut closes the set and the eventfd once the loop has stopped.
func (l *eventLoop) shut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.park != nil {
		l.park.Close()
	}
	syscall.Close(l.epfd)
	l.efile.Close()
}

// wait collects the sockets with input into evs (l.n of them) and reports whether there
// are any: those ready now, or else, after the goroutines ready to run have run, those
// that come within loopWait, or else those that come while it waits in Go's poller.
func (l *eventLoop) wait() bool {
	if l.epollWait(0) {
		return true
	}
	runtime.Gosched()
	if l.epollWait(loopWait) {
		return true
	}
	l.idle()
	return l.n > 0
}

// epollWait collects the sockets with input within d (0: those ready now), holding the
// loop's processor meanwhile.
func (l *eventLoop) epollWait(d time.Duration) bool {
	var n uintptr
	var errno syscall.Errno
	pwait2 := d > 0 && !l.noPwait2
	if pwait2 {
		l.waitTS = unix.NsecToTimespec(int64(d))
		n, _, errno = syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT2, uintptr(l.epfd), uintptr(unsafe.Pointer(&l.evs[0])), uintptr(len(l.evs)), uintptr(unsafe.Pointer(&l.waitTS)), 0, 0)
		// Missing before Linux 5.11 (ENOSYS), or refused by a filter of system calls (EPERM).
		l.noPwait2 = errno != 0 && errno != syscall.EINTR
	}
	if !pwait2 || l.noPwait2 {
		ms := uintptr(0)
		if d > 0 {
			ms = uintptr(max(d/time.Millisecond, 1))
		}
		n, _, errno = syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.epfd), uintptr(unsafe.Pointer(&l.evs[0])), uintptr(len(l.evs)), ms, 0, 0)
	}
	if errno != 0 { // EINTR: a signal, such as Go's preemption
		n = 0
	}
	l.n = int(n)
	return n > 0
}

// turn lets Go look at its other descriptors: the loop writes the eventfd and waits for it
// in Go's poller, which finds it at once, with whatever else is ready.
func (l *eventLoop) turn(now int64) {
	l.turnWrote = false
	_ = l.erc.Read(l.turnFn)
	l.turned(now)
}

// turned notes a turn in Go's poller at now: the next comes after turnMin if Go's other
// goroutines had work, after twice the last gap (up to turnMax) if they had none.
func (l *eventLoop) turned(now int64) {
	seen := l.outside.Load()
	l.lastTurn, l.turnGap = now, nextTurnGap(l.turnGap, seen != l.seen)
	l.seen = seen
	if l.park != nil && now-l.lastIdle > int64(keepPark) {
		l.dropPark() // the loop keeps finding input: no nested callback for each event
	}
}

func nextTurnGap(gap time.Duration, found bool) time.Duration {
	if found {
		return turnMin
	}
	return min(2*gap, turnMax)
}

// turnOnce is the turn's use of the eventfd: written first, read once the loop has waited
// for it in Go's poller. (Written before the Read, a readiness Go's poller found at once
// would be forgotten: a read through the poller begins by clearing it.)
func (l *eventLoop) turnOnce(fd uintptr) bool {
	if !l.turnWrote {
		l.turnWrote = true
		return !l.signal() // no wait without the write
	}
	var v uint64
	syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&v)), 8)
	return true
}

// idle waits in Go's poller until the set has input, through the set's duplicate there
// (park), made if need be. Without it (the duplicate or the poller failed), the loop waits
// in the set for up to turnMax and takes a turn.
func (l *eventLoop) idle() {
	if l.park == nil && !l.noPark {
		if nfd, err := dupCloexec(uintptr(l.epfd)); err == nil {
			l.park = os.NewFile(uintptr(nfd), "epoll") // the set is non-blocking: watched by Go's poller
			l.parks.Add(1)
			if l.parkRC, err = pollerConn(l.park); err != nil {
				l.dropPark()
				l.noPark = true
			}
		}
	}
	if l.park == nil || l.parkRC.Read(l.idleFn) != nil {
		if !l.epollWait(turnMax) {
			l.turn(time.Now().UnixNano())
		}
		return
	}
	l.lastIdle = time.Now().UnixNano()
	l.turned(l.lastIdle) // Go has looked at its descriptors
}

// pollerConn returns f's RawConn, whose reads wait in Go's poller, or an error if Go's
// poller does not watch f (a RawConn's read would then block its thread).
func pollerConn(f *os.File) (syscall.RawConn, error) {
	rc, err := f.SyscallConn()
	if err == nil && f.SetReadDeadline(time.Time{}) == os.ErrNoDeadline {
		err = errors.New("Go's poller does not watch it")
	}
	return rc, err
}

// dropPark closes the set's duplicate in Go's poller.
func (l *eventLoop) dropPark() {
	l.park.Close()
	l.park, l.parkRC = nil, nil
}

// idleCollect is idle's read: the sockets ready now, if any.
func (l *eventLoop) idleCollect(uintptr) bool {
	return l.epollWait(0)
}

// watch hands c's socket to the loop: it is added to the set the first time, and modified
// afterwards so that the kernel looks at it again (input that came before the hand-over
// is reported too).
func (l *eventLoop) watch(c *conn) error {
	lc := c.lc
	op := syscall.EPOLL_CTL_MOD
	if lc.key == 0 {
		op = syscall.EPOLL_CTL_ADD
	}
	// Under l.mu, the set is open: a loop stopped by Shutdown fails here instead of
	// letting the call act on a number already reused.
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errLoopClosed
	}
	if op == syscall.EPOLL_CTL_ADD {
		l.keys++
		lc.key = l.keys
		l.conns[lc.key] = c
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLPRI | epollET, Fd: int32(uint32(lc.key)), Pad: int32(uint32(lc.key >> 32))}
	if err := syscall.EpollCtl(l.epfd, op, lc.sock.fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// forgetLoop drops c from its loop and closes the loop's descriptor, if it has one. The
// reader calls it when its reads have ended (serve), or when the loop could not watch the
// socket: it owns the connection then, so the loop is not using the descriptor, and nothing
// hands the connection over again. The socket leaves the set first, which would otherwise
// watch it for as long as the connection's own descriptor stays open (a drain, a handler
// still running).
func (c *conn) forgetLoop() {
	lc := c.lc
	if lc == nil || lc.sock.fd < 0 {
		return
	}
	if lc.key != 0 { // watched
		l := lc.loop
		l.mu.Lock()
		delete(l.conns, lc.key)
		if !l.closed {
			_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, lc.sock.fd, nil)
		}
		l.mu.Unlock()
		lc.key = 0
	}
	lc.sock.closeFD()
}

// serve serves c if the loop owns it, and gives it back to its reader when it must. now is
// when the batch began: what lastActive says (for ReadIdleTimeout) need not be closer.
func (l *eventLoop) serve(c *conn, events uint32, now int64) {
	lc := c.lc
	if !lc.owner.CompareAndSwap(ownLoop, ownLoopBusy) {
		return // its reader has it
	}
	handBack := c.serveInLoop(events)
	if !handBack && lc.served >= lc.detachAt && lc.owner.Load() == ownLoopBusy { // kept: not reclaimed
		lc.sock.detach()
		lc.detachAt = math.MaxInt
	}
	c.lastActive.Store(now)
	if handBack || !lc.owner.CompareAndSwap(ownLoopBusy, ownLoop) {
		lc.handedBack++
		lc.owner.Store(ownReader)
		lc.wake <- struct{}{}
		l.woke = true
	}
}

// serveInLoop reads what c's socket holds and answers the quick requests in it that never
// wait. It reports whether the connection goes back to its reader goroutine. events are the
// epoll events that brought it here.
func (c *conn) serveInLoop(events uint32) bool {
	// A read that returns less than asked for has emptied the socket, and more input will
	// be a new event, except when the peer has closed its side (the read that took the last
	// data also took the end of input, whose event is spent: only the next read returns 0)
	// or sent urgent data (a read stops at its mark): then read until nothing is left.
	readAll := events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR|syscall.EPOLLPRI) != 0
	fr := c.rd
	for {
		if fr.r == fr.w {
			fr.r, fr.w = 0, 0
		} else if fr.w == len(fr.buf) && fr.r > 0 {
			fr.w = copy(fr.buf, fr.buf[fr.r:fr.w])
			fr.r = 0
		}
		space := len(fr.buf) - fr.w
		if space == 0 {
			return true // a frame as large as the buffer: the reader grows it
		}
		n, errno := c.lc.io(syscall.SYS_READ, fr.buf[fr.w:])
		switch {
		case errno == syscall.EAGAIN:
			return fr.w > fr.r
		case errno != 0:
			// The reader ends the connection as usual, after what came before.
			fr.err = c.lc.r.opError(errno)
			return true
		case n == 0:
			fr.err = io.EOF
			return true
		}
		fr.w += n
		if c.loopFrames() {
			return true
		}
		if n < space && !readAll {
			// The socket is empty: more input is a new event. A frame not yet whole is
			// the reader's, which times it out (RequestReadTimeout).
			return fr.w > fr.r
		}
	}
}

// loopFrames answers the complete frames in c's buffer that the loop can, and reports
// whether the connection goes back to its reader, leaving it the first frame it did not take.
// The replies to a pipelined run of requests go out together, in one write (up to
// loopBatchBytes), before the connection goes back or the loop reads again.
func (c *conn) loopFrames() bool {
	fr := c.rd
	var batch *outBuf // replies not yet written, each with its newline
	handBack := false
	for {
		i := bytes.IndexByte(fr.buf[fr.r:fr.w], '\n')
		if i < 0 {
			break
		}
		line := trimCR(fr.buf[fr.r : fr.r+i])
		if len(line) > fr.max || c.stopping.Load() {
			handBack = true
			break
		}
		if isBlank(line) {
			fr.r += i + 1
			c.frames++
			continue
		}
		out, ok, _ := c.quickReply(line, true)
		if !ok {
			// Not a quick method that never waits: the reader answers it, inline or in
			// a handler, and hands the connection over again once nothing is in flight.
			handBack = true
			break
		}
		fr.r += i + 1
		c.frames++
		c.lc.served++
		if out == nil {
			continue
		}
		if batch == nil {
			batch = out
		} else {
			batch.b = append(batch.b, out.b...)
			putOut(out)
		}
		batch.b = append(batch.b, '\n') // the TCP transport's newline framing
		if len(batch.b) >= loopBatchBytes {
			ok := c.writeInLoop(batch)
			batch = nil
			if !ok {
				return true
			}
		}
	}
	if batch != nil && !c.writeInLoop(batch) {
		return true
	}
	return handBack
}

// loopBatchBytes is how many bytes of replies the loop gathers before it writes them.
const loopBatchBytes = 64 << 10

// writeInLoop writes replies the loop made and reports whether the loop may go on: not when
// the client is not taking its replies (what the socket did not take goes to the writer's
// pending bytes, which the reader writes out, waiting for the client) or the write failed.
// The loop answers requests with nothing else in flight, so it takes no in-flight slot and
// writes past the connection's buffer, which is empty, in one system call.
func (c *conn) writeInLoop(out *outBuf) bool {
	lc := c.lc
	lc.writes++
	c.wmu.Lock()
	b := out.b
	for c.writeErr == nil && len(lc.w.pending) == 0 && len(b) > 0 {
		n, errno := lc.io(syscall.SYS_WRITE, b)
		if errno == syscall.EAGAIN || errno == 0 && n == 0 {
			break
		}
		if errno != 0 {
			c.writeFailed(lc.w.opError(errno))
			break
		}
		b = b[n:]
	}
	if c.writeErr == nil && len(b) > 0 {
		lc.w.pending = append(lc.w.pending, b...)
	}
	ok := c.writeErr == nil && len(lc.w.pending) == 0
	c.wmu.Unlock()
	putOut(out)
	return ok
}

// io makes one read or write system call on the socket with p, on the loop's own
// descriptor: Go's poller is not involved, so no deadline applies, and nothing waits.
func (lc *loopConn) io(trap uintptr, p []byte) (int, syscall.Errno) {
	return rawCall(trap, uintptr(lc.sock.fd), p)
}

// handOver hands the connection to the loop and waits until it comes back: the loop gives
// it back, it stops, or it has been idle for ReadIdleTimeout. The reader calls it when a read
// that may not wait finds nothing (errWouldBlock), and then reads again.
func (c *conn) handOver() {
	lc := c.lc
	if lc.loop == nil {
		if lc.loop = c.srv.eventLoop(); lc.loop == nil {
			lc.noLoop = true // the reader reads on its own
			return
		}
		c.loopCtx = context.WithValue(c.ctx, loopCtxKey{}, true)
	}
	var idle <-chan time.Time
	if timeout := c.srv.opts.ReadIdleTimeout; timeout > 0 {
		left := time.Until(time.Unix(0, c.lastActive.Load()).Add(timeout))
		if left <= 0 {
			c.readUntilIdle()
			return
		}
		if lc.timer == nil {
			lc.timer = time.NewTimer(left)
		} else {
			lc.timer.Reset(left)
		}
		idle = lc.timer.C
	}
	if c.srv.hookHandOver != nil {
		c.srv.hookHandOver(c)
	}
	if lc.sock.fd < 0 {
		if err := lc.sock.dup(); err != nil {
			lc.noLoop = true
			c.srv.log.Debug("rpc: serving a connection without the event loop", "client", c.client.Addr, "err", err)
			return
		}
	}
	lc.detachAt = lc.served + c.srv.loopDetachAfter
	lc.owner.Store(ownLoop)
	if err := lc.loop.watch(c); err != nil {
		// The socket may have been watched before (a MOD that failed), so the loop may
		// have taken it: take it back as from a loop that has it.
		c.reclaim()
		c.takeBack()
		c.forgetLoop()
		lc.noLoop = true
		c.srv.log.Debug("rpc: serving a connection without the event loop", "client", c.client.Addr, "err", err)
		return
	}
	select {
	case <-lc.wake:
	case <-c.stopCh:
		c.reclaim()
	case <-idle:
		c.reclaim()
		c.readUntilIdle()
	}
	if lc.timer != nil {
		lc.timer.Stop()
	}
	c.takeBack()
}

// readUntilIdle makes the next read wait in Go's poller until the connection has been idle
// for ReadIdleTimeout, for retryRead to decide as for a connection served without the loop.
func (c *conn) readUntilIdle() {
	c.lc.noHandOver = true
	c.readDeadline, c.keepDeadline = time.Unix(0, c.lastActive.Load()).Add(c.srv.opts.ReadIdleTimeout), true
	_ = c.nc.SetReadDeadline(c.readDeadline)
}

// reclaim takes the connection back from the loop: at once if the loop is waiting for its
// input, or once the loop has served it.
func (c *conn) reclaim() {
	lc := c.lc
	for {
		switch s := lc.owner.Load(); s {
		case ownLoop:
			if lc.owner.CompareAndSwap(ownLoop, ownReader) {
				return
			}
		case ownLoopBusy:
			if lc.owner.CompareAndSwap(ownLoopBusy, ownLoopBusy|reclaimed) {
				<-lc.wake
				return
			}
		default: // given back already
			<-lc.wake
			return
		}
	}
}

// takeBack gives the reader a net.Conn for the socket again if the loop closed its own
// (loopSock.attach), and writes out the replies the loop left unwritten. If no net.Conn can
// be made (the connection was closed meanwhile, or no descriptor is left: a new net.Conn
// needs two for a moment), the connection ends: nothing more is written, no frame is taken,
// not even one the loop left read, and the reader's next read fails as on a closed
// connection, since its halves still call the net.Conn the loop closed.
func (c *conn) takeBack() {
	lc := c.lc
	c.wmu.Lock()
	defer c.wmu.Unlock()
	tc, err := lc.sock.attach()
	if tc != nil {
		lc.bind(tc)
	} else if err != nil && c.writeErr == nil {
		if !errors.Is(err, net.ErrClosed) { // not a forced stop
			c.srv.log.Debug("rpc: cannot take a connection back from the event loop", "client", c.client.Addr, "err", err)
		}
		c.giveUp(err)
		return
	}
	if c.writeErr == nil && len(lc.w.pending) > 0 {
		c.armWrite()
		if err := lc.w.flushPending(); err != nil {
			c.writeFailed(err)
		}
	}
}

// bind makes the connection's halves read and write tc, the reader's new net.Conn. wmu is
// held, and the reader calls it: the halves' users.
func (lc *loopConn) bind(tc *net.TCPConn) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return // cannot be: tc is open
	}
	lc.r.call, lc.w.call = rc.Read, rc.Write
}

// armLoop, called before each read, lets the read hand the connection to the loop (not wait)
// when nothing is in flight, no frame has been started, and the last request the reader
// answered was one the loop answers too: a client whose requests the loop would only hand
// back (another method, or one that would wait) stays with its reader, rather than pay a
// hand-over and a hand-back each.
func (c *conn) armLoop(partial bool) {
	if lc := c.lc; lc != nil {
		lc.r.noWait = !partial && !lc.noHandOver && !lc.noLoop && c.lastNeverWaits && c.inFlight.Load() == 0
		lc.noHandOver = false
	}
}

// readsWait makes the reader's reads wait for input again, as without the loop: after
// armLoop, an empty read would return errWouldBlock.
func (c *conn) readsWait() {
	if lc := c.lc; lc != nil {
		lc.r.noWait = false
	}
}

// useLoop sets up c, a TCP connection read and written with r and w, to be served by the
// server's event loop when the server uses one.
func (s *Server) useLoop(c *conn, r, w any) {
	if !s.loopOn {
		return
	}
	rr, ok1 := r.(*rawReader)
	rw, ok2 := w.(*rawWriter)
	tc, ok3 := c.nc.(*net.TCPConn)
	if !ok1 || !ok2 || !ok3 {
		return
	}
	sock := newLoopSock(tc)
	c.nc = sock
	c.lc = &loopConn{sock: sock, r: rr, w: rw, wake: make(chan struct{}, 1)}
}

// eventLoop returns the server's event loop, made at the first hand-over, so that a server
// whose connections never hand over (on the Redis store, none does) has none; nil once the
// server is closing (a loop made then would never be closed) or if it cannot be made.
func (s *Server) eventLoop() *eventLoop {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil
	}
	if s.loop == nil && s.loopErr == nil {
		s.loop, s.loopErr = newEventLoop(&s.outside)
		if s.loopErr != nil {
			s.log.Warn("rpc: no event loop; connections are served without it", "err", s.loopErr)
		}
	}
	return s.loop
}
