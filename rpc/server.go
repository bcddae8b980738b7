package rpc

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/jsonrpc2"
)

// Options are the server's limits and hooks. The zero value of each field means its default.
type Options struct {
	// MaxRequestBytes bounds one request (a line, a Content-Length body or an HTTP body),
	// batches included. A longer one is skipped without being buffered whole and answered
	// with -32600 and data {"reason":"requestTooLarge","limit":N} (HTTP 413), with its id if
	// the id member comes, whole, before any member cut off (else null): over HTTP, if the
	// start of the body is there within a moment. Default 1 MiB.
	MaxRequestBytes int
	// MaxBatch bounds the elements of a batch. A longer batch is refused as a whole with one
	// -32600, data {"reason":"batchTooLarge","limit":N}. Default 100.
	MaxBatch int
	// MaxConnections bounds concurrent TCP connections and, separately, concurrent HTTP
	// connections (ServeHTTPListener) and the HTTP requests being answered. An extra TCP
	// connection gets one -32000 error line, data {"reason":"tooManyConnections","limit":N},
	// and is closed (when 4,096 extra connections are being told already, each for up to a
	// second, two over HTTP, further ones are closed without it); an extra HTTP connection
	// gets HTTP 503 with the same error once its request's head has come (or after a second),
	// an extra request once its body is read too, and the connection is closed. Default 1024; negative means no limit.
	MaxConnections int
	// MaxInFlightPerConn bounds the requests (frames) of one TCP or stdio connection that are
	// being answered at once, replies not yet written included. A connection that pipelines
	// more stops being read until replies drain: backpressure, not an error. Default 64.
	MaxInFlightPerConn int
	// ReadIdleTimeout closes a TCP connection that has nothing in flight and sends nothing for
	// this long; it is also the HTTP keep-alive idle timeout (ServeHTTPListener). Default 5
	// minutes; negative means never.
	ReadIdleTimeout time.Duration
	// RequestReadTimeout is how long a client may take to send the rest of a request once it
	// has started one (TCP frame, HTTP headers, HTTP body). A client that stalls half-way is
	// dropped. Default 30 seconds; negative means no limit.
	RequestReadTimeout time.Duration
	// WriteTimeout drops a TCP or HTTP client that does not take its replies: a write blocked
	// this long closes the connection. Other clients are never held up. Default 30 seconds;
	// negative means no limit.
	WriteTimeout time.Duration
	// MapError turns a dispatcher error that is not a *jsonrpc2.Error into a wire error. It
	// may return nil, which means -32603. Default: every such error is -32603 "Internal error"
	// and its detail is logged.
	MapError func(error) *jsonrpc2.Error
	// Logger receives internal errors, recovered panics with their stacks, and connection
	// events at debug level. Default slog.Default().
	Logger *slog.Logger
}

// Default limits.
const (
	DefaultMaxRequestBytes    = 1 << 20
	DefaultMaxBatch           = 100
	DefaultMaxConnections     = 1024
	DefaultMaxInFlightPerConn = 64
	DefaultReadIdleTimeout    = 5 * time.Minute
	DefaultRequestReadTimeout = 30 * time.Second
	DefaultWriteTimeout       = 30 * time.Second
)

func (o Options) withDefaults() Options {
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.MaxInFlightPerConn <= 0 {
		o.MaxInFlightPerConn = DefaultMaxInFlightPerConn
	}
	if o.ReadIdleTimeout == 0 {
		o.ReadIdleTimeout = DefaultReadIdleTimeout
	}
	if o.RequestReadTimeout == 0 {
		o.RequestReadTimeout = DefaultRequestReadTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// ErrServerClosed is returned by the Serve methods after Shutdown.
var ErrServerClosed = errors.New("rpc: server closed")

// Server answers JSON-RPC 2.0 over any number of TCP listeners, stdio streams and HTTP
// handlers at once, all through one Dispatcher. Its methods are safe for concurrent use.
type Server struct {
	d     Dispatcher
	quick QuickDispatcher // d, when it names quick methods
	never NeverWaiter     // d, when it names quick methods that never wait
	opts  Options
	log   *slog.Logger
	names internTable

	baseCtx    context.Context // parent of every call's context; cancelled by a forced stop
	cancelBase context.CancelFunc
	shutdownCh chan struct{} // closed when Shutdown starts
	jobs       chan job      // hands frames to idle handler goroutines
	refusing   chan struct{} // a token per connection being refused (maxRefusing; tests shrink it)

	mu               sync.Mutex
	closing          bool
	shutdownDeadline time.Time // of Shutdown's context, if it has one
	listeners        map[net.Listener]struct{}
	conns            map[*conn]struct{}
	tcpConns         int
	httpActive       int           // requests being answered
	httpConns        int           // connections ServeHTTPListener has open
	httpIdle         chan struct{} // closed when httpActive drops to zero during Shutdown
	httpServers      map[*http.Server]struct{}
	// refusalLogged is when a refused connection was last logged; refusalsHeld counts those
	// held back since, the last of them lastRefusal, for refusalFlush to log (noteRefusal).
	refusalLogged time.Time
	refusalsHeld  int
	lastRefusal   refusalNote
	refusalFlush  *time.Timer

	// The event loop that serves TCP connections on a single processor (loop_linux.go):
	// loopOn is set by NewServer (or a test, before serving), loop made at the first
	// hand-over.
	loopOn  bool
	loop    *eventLoop
	loopErr error
	// loopDetachAfter is detachAfter, or 0 for tests (testLoopDetach): the loop then takes a
	// socket out of Go's poller as soon as it serves the connection.
	loopDetachAfter int
	// unreadGrace is how long a connection finishing in a shutdown reads requests to refuse
	// (refuseUnread) once its calls are answered: defaultUnreadGrace, longer in tests.
	unreadGrace time.Duration
	// outside counts what the server's other goroutines do (connections accepted, frames
	// read by readers, HTTP requests), for the loop to see whether its turns in Go's
	// poller find work.
	outside atomic.Uint64

	// Test hooks, set before serving.
	hookReaderBlocked func()      // a connection's reader waits for an in-flight slot
	hookConnDone      func(*conn) // a connection is finished
	hookHandOver      func(*conn) // a reader hands its connection to the event loop
}

// NewServer returns a server that runs calls through d with opts (zero fields take their
// defaults).
func NewServer(d Dispatcher, opts Options) *Server {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	quick, _ := d.(QuickDispatcher)
	never, _ := d.(NeverWaiter)
	s := &Server{
		d:           d,
		quick:       quick,
		never:       never,
		opts:        opts,
		log:         opts.Logger,
		baseCtx:     ctx,
		cancelBase:  cancel,
		shutdownCh:  make(chan struct{}),
		jobs:        make(chan job),
		refusing:    make(chan struct{}, maxRefusing),
		listeners:   make(map[net.Listener]struct{}),
		conns:       make(map[*conn]struct{}),
		httpServers: make(map[*http.Server]struct{}),
		loopOn:      never != nil && (runtime.GOMAXPROCS(0) == 1 || testEventLoop.Load()),
		unreadGrace: defaultUnreadGrace,
	}
	if !testLoopDetach.Load() {
		s.loopDetachAfter = detachAfter
	}
	return s
}

// Shutdown stops the server gracefully: it closes the listeners, stops reading new requests,
// lets the calls in flight finish and their replies be written, then closes the connections.
// New HTTP requests get 503 meanwhile. If ctx ends first, the calls still running see their
// contexts cancelled, every connection is closed at once and Shutdown returns ctx.Err().
// The Serve methods return ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		if deadline, ok := ctx.Deadline(); ok {
			s.shutdownDeadline = deadline
		}
		close(s.shutdownCh)
	}
	listeners := make([]net.Listener, 0, len(s.listeners))
	for ln := range s.listeners {
		listeners = append(listeners, ln)
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	servers := make([]*http.Server, 0, len(s.httpServers))
	for hs := range s.httpServers {
		servers = append(servers, hs)
	}
	var httpIdle chan struct{}
	if s.httpActive > 0 {
		if s.httpIdle == nil {
			s.httpIdle = make(chan struct{})
		}
		httpIdle = s.httpIdle
	}
	s.mu.Unlock()

	for _, ln := range listeners {
		_ = ln.Close()
	}
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		var wg sync.WaitGroup
		for _, hs := range servers {
			wg.Go(func() {
				if hs.Shutdown(ctx) != nil {
					_ = hs.Close()
				}
			})
		}
		wg.Wait()
	}()
	for _, c := range conns {
		c.stop()
	}

	err := func() error {
		for _, c := range conns {
			select {
			case <-c.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if httpIdle != nil {
			select {
			case <-httpIdle:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case <-httpDone:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}()
	if err != nil {
		for _, c := range conns {
			c.kill()
		}
	}
	s.cancelBase()
	s.mu.Lock()
	if s.loop != nil {
		// Every connection is finished, or killed: a connection the loop still serves
		// is given back as usual. A reader that hands its connection over again finds
		// the loop closed and reads on its own (handOver), or, before the loop has
		// stopped, hands it to a loop that will not serve it, and takes it back at once
		// since its connection is stopping (stopCh).
		s.loop.close()
		s.loop = nil
	}
	s.mu.Unlock()
	return err
}

// lingerDeadline is how long a finished connection may wait for its client to read the last
// replies (see drainAndClose): a second, or during Shutdown until shortly before its
// deadline, so that a client still sending does not have its replies reset away.
func (s *Server) lingerDeadline() time.Time {
	now := time.Now()
	s.mu.Lock()
	shutdown := s.shutdownDeadline
	s.mu.Unlock()
	if until := shutdown.Add(-lingerMargin); until.After(now.Add(time.Second)) {
		return until
	}
	return now.Add(time.Second)
}

// lingerMargin is how long before Shutdown's deadline connections stop lingering, so they
// are closed gracefully rather than killed.
const lingerMargin = 250 * time.Millisecond

func (s *Server) isClosing() bool {
	select {
	case <-s.shutdownCh:
		return true
	default:
		return false
	}
}

// ---------------------------------------------------------------------------------------
// A stream connection (TCP or stdio): one reader goroutine that cuts frames, a bounded
// number of frames answered concurrently on reusable handler goroutines, and one buffered
// writer that each handler writes its reply into under a lock.

// errStopped ends a reader that was told to stop.
var errStopped = errors.New("rpc: connection stopped")

// aLongTimeAgo is a deadline in the past, to wake a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

type conn struct {
	srv     *Server
	client  ClientInfo
	framing Framing
	rd      *frameReader
	bw      *bufio.Writer
	nc      net.Conn // nil for stdio; gives deadlines and Close
	ctx     context.Context
	cancel  context.CancelFunc
	poke    func() // wakes a reader blocked in Read, when the source allows it

	// slots holds one token per frame being answered, from the moment the reader takes it
	// until its reply is written (or found to be unneeded).
	slots chan struct{}

	mu       sync.Mutex // guards stopped and handlers.Add
	stopped  bool
	stopping atomic.Bool
	stopCh   chan struct{}
	handlers sync.WaitGroup

	lc      *loopConn       // set for a TCP connection the event loop may serve (loop_linux.go)
	loopCtx context.Context // ctx, marked for the calls the loop makes (InEventLoop)

	// Reader goroutine only (or the event loop's, while it owns the connection).
	readDeadline time.Time
	partialSince time.Time
	partialFrame uint64 // frames read when partialSince was set
	frames       uint64
	keepDeadline bool // the deadline was set by retryRead; arm leaves it alone once
	// lastNeverWaits: the last request the reader answered inline was one the event loop
	// answers too, so the connection goes to the loop when its socket is empty (armLoop).
	lastNeverWaits bool
	// held is the frame the reader had read when it found the connection stopping: during
	// a shutdown finish answers it with the frames still unread (refuseUnread).
	held []byte
	// A stdio connection's (nil for TCP): out is the output bw writes to, readerDone is
	// closed when the reader goroutine has returned, readErr what it returned (set before).
	// Its reader runs apart from finish.
	out        io.Writer
	readerDone chan struct{}
	readErr    error

	// Replies are written by the goroutine that produced them, one at a time under wmu, into
	// one buffer. queued counts replies waiting for wmu; whoever writes the last one flushes,
	// so pipelined replies share system calls and a lone reply goes out at once.
	wmu           sync.Mutex
	queued        atomic.Int32
	header        []byte    // guarded by wmu
	writeDeadline time.Time // guarded by wmu
	writeErr      error     // guarded by wmu; stable once the handlers are done

	// inFlight counts the frames holding a slot; lastActive is when one last finished or a
	// flush last completed (unix nanoseconds). A frame records lastActive before it leaves
	// inFlight, so the idle check never sees a connection as idle and stale at once.
	inFlight   atomic.Int32
	lastActive atomic.Int64
	finishOnce sync.Once
	done       chan struct{} // closed when the connection is finished
	killed     chan struct{} // closed by a forced stop
	killOnce   sync.Once
}

func (s *Server) newConn(ctx context.Context, client ClientInfo, r io.Reader, w io.Writer, framing Framing, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(ctx)
	n := s.opts.MaxInFlightPerConn
	c := &conn{
		srv:     s,
		client:  client,
		framing: framing,
		rd:      newFrameReader(r, framing, s.opts.MaxRequestBytes),
		bw:      bufio.NewWriterSize(w, 16<<10),
		nc:      nc,
		ctx:     ctx,
		cancel:  cancel,
		slots:   make(chan struct{}, n),
		stopCh:  make(chan struct{}),
		done:    make(chan struct{}),
		killed:  make(chan struct{}),
	}
	c.lastActive.Store(time.Now().UnixNano())
	if nc != nil {
		c.rd.arm = c.armRead
	}
	return c
}

// atConnLimit reports whether n connections (or HTTP requests) already fill MaxConnections.
// s.mu is held.
func (s *Server) atConnLimit(n int) bool {
	limit := s.opts.MaxConnections
	return limit > 0 && n >= limit
}

// track registers a connection; it fails when the server is closing, or, for TCP, when
// MaxConnections are open already.
func (s *Server) track(c *conn) *jsonrpc2.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return errShuttingDown()
	}
	if c.client.Transport == TransportTCP {
		if s.atConnLimit(s.tcpConns) {
			return errTooManyConnections(s.opts.MaxConnections)
		}
		s.tcpConns++
	}
	s.conns[c] = struct{}{}
	return nil
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if c.client.Transport == TransportTCP {
		s.tcpConns--
	}
	s.mu.Unlock()
	if s.hookConnDone != nil {
		s.hookConnDone(c)
	}
}

// readLoop reads frames and starts one handler per frame until the stream ends, fails or the
// connection is stopped.
func (c *conn) readLoop() error {
	for {
		frame, err := c.rd.next()
		if err != nil {
			if err == errWouldBlock {
				c.handOver()
				continue
			}
			if fe, ok := err.(*frameError); ok {
				c.frames++
				if !c.replyBadFrame(fe.id, fe.reply) {
					return errStopped
				}
				continue
			}
			if c.stalledInRequest(err) {
				c.srv.log.Debug("rpc: dropping client that stalled in the middle of a request",
					"transport", c.client.Transport, "client", c.client.Addr)
				// The cut request is answered, as HTTP answers a body cut short, before the close.
				c.replyBadFrame(nil, errParse(reasonIncompleteRequest))
				return err
			}
			if c.retryRead(err) {
				continue
			}
			return err
		}
		c.frames++
		if c.framing == FramingNewline && isBlank(frame) {
			continue
		}
		c.srv.workOutside()
		if !c.begin() {
			c.held = append(c.held[:0], frame...)
			return errStopped
		}
		if c.srv.quick != nil && c.answerInline(frame) {
			continue
		}
		owned := make([]byte, len(frame))
		copy(owned, frame)
		c.srv.run(job{c, owned})
	}
}

// replyBadFrame answers a frame that cannot be served with reply, and id (nil: null). The reply is
// written by a goroutine of its own: the reader never waits on output, or a client that
// writes before it reads would deadlock with it; finish waits for it. It reports false when
// the connection is stopping and takes no more frames.
func (c *conn) replyBadFrame(id []byte, reply *jsonrpc2.Error) bool {
	if !c.begin() {
		return false
	}
	go func() {
		defer c.handlers.Done()
		out := getOut()
		out.appendError(id, reply)
		c.send(out)
	}()
	return true
}

// HealthChecker is a Dispatcher that can tell whether it is able to serve calls; the HTTP
// transport asks it on GET /health (an answer, or an error mapped to the wire as a call's).
type HealthChecker interface {
	Health(ctx context.Context) error
}

// QuickDispatcher is a Dispatcher that says which of its methods are quick: answered from
// memory in microseconds, without a password hash, a disk write or a wait for other calls. A
// TCP or stdio connection answers a request for a quick method on its reader goroutine,
// which saves the hand-off to a handler goroutine (a wake-up, often of another thread); a
// request pipelined behind it is read once it is answered. Other requests, batches included,
// go to handler goroutines as before.
//
// Dispatch of a quick method must not keep call, or call.Params, once it returns: the Call is
// reused, and the params alias the connection's read buffer.
type QuickDispatcher interface {
	Dispatcher
	// Quick reports whether method is quick. It must be safe for concurrent use, and its
	// answer for a name must not change: the server remembers it for the names it interns.
	Quick(method string) bool
}

// answerInline answers frame on the reader goroutine if it is one valid request for a quick
// method, and reports whether it did. The frame's slot is taken (begin); answerInline frees
// it when it answers, and leaves it to the handler otherwise.
func (c *conn) answerInline(frame []byte) bool {
	out, quick, neverWaits := c.quickReply(frame, false)
	c.lastNeverWaits = neverWaits
	if !quick {
		return false
	}
	defer c.handlers.Done()
	if out != nil {
		c.send(out)
	} else {
		c.release()
	}
	return true
}

// quickReply answers frame if it is one valid request for a quick method (quick true), with
// its reply, or nil for a notification; for the event loop (loop), only if the method also
// never waits. neverWaits reports whether the method is one the loop answers.
func (c *conn) quickReply(frame []byte, loop bool) (out *outBuf, quick, neverWaits bool) {
	p := getParser()
	defer putParser(p)
	kind, _ := p.parse(frame, c.srv.opts.MaxBatch)
	if kind != kindSingle || p.reqs[0].invalid != "" {
		return nil, false, false
	}
	req := &p.reqs[0]
	m, interned := c.srv.quickMethod(req.method)
	if !m.quick || loop && !m.neverWaits {
		return nil, false, m.neverWaits
	}
	ctx := c.ctx
	if loop {
		ctx = c.loopCtx
	}
	out = getOut()
	if !c.srv.serveMethod(ctx, req, m, interned, c.client, "", out) {
		wait := out.wouldWait
		putOut(out)
		return nil, !wait, m.neverWaits
	}
	return out, true, m.neverWaits
}

// workOutside counts work done outside the event loop, when the server uses one.
func (s *Server) workOutside() {
	if s.loopOn {
		s.outside.Add(1)
	}
}

// quickMethod decodes a request's raw method name and says whether the QuickDispatcher
// calls it quick. An interned name carries the answer (internTable), so the dispatcher is
// asked only about names not seen before, or not interned.
func (s *Server) quickMethod(raw []byte) (m internedMethod, interned bool) {
	m, interned = s.methodName(raw)
	if !interned {
		m = s.internedMethod(m.name)
	}
	return m, interned
}

// internedMethod is what the dispatcher says of method, as the intern table keeps it.
func (s *Server) internedMethod(method string) internedMethod {
	m := internedMethod{name: method}
	if s.quick != nil {
		m.quick = s.quick.Quick(method)
		m.neverWaits = m.quick && s.never != nil && s.never.NeverWaits(method)
	}
	return m
}

// NeverWaiter is a QuickDispatcher that says which of its quick methods never wait at all:
// answered from memory, without a disk write, a store's round trip or a list of every
// session. On a single processor the event loop answers those itself (loop_linux.go), and
// a method that waited would hold up every connection the loop serves; the other quick
// methods are answered by their connections' readers. Its answer for a name must not change.
// Called from the loop (InEventLoop), a method that would wait for some params returns
// ErrWouldWait before it does anything, and the request goes to the reader.
type NeverWaiter interface {
	QuickDispatcher
	NeverWaits(method string) bool
}

// ErrWouldWait is what a method that never waits returns, called from the event loop, for
// params that would make it wait (NeverWaiter): the request is answered by the connection's
// reader instead. It never reaches a client.
var ErrWouldWait = errors.New("rpc: the call would wait")

type loopCtxKey struct{}

// InEventLoop reports whether a call runs on the event loop (NeverWaiter).
func InEventLoop(ctx context.Context) bool { return ctx.Value(loopCtxKey{}) != nil }

// job is one frame for a handler goroutine.
type job struct {
	c     *conn
	frame []byte
}

// workerIdle is how long a handler goroutine waits for another frame before it exits.
const workerIdle = 10 * time.Second

// run answers a frame on an idle handler goroutine, or a new one. Handler goroutines wait a
// while for more work instead of exiting, so a stack that grew while decoding params is
// reused rather than grown again for every request.
func (s *Server) run(j job) {
	select {
	case s.jobs <- j:
	default:
		go s.worker(j)
	}
}

func (s *Server) worker(j job) {
	j.c.handle(j.frame)
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	// The timer is not reset after every frame, which would cost a timer update each: when
	// it fires, a worker that had work since waits out the rest of its idle period.
	lastJob := time.Now()
	for {
		select {
		case j = <-s.jobs:
			j.c.handle(j.frame)
			lastJob = time.Now()
		case now := <-idle.C:
			if rest := workerIdle - now.Sub(lastJob); rest > 0 {
				idle.Reset(rest)
				continue
			}
			return
		}
	}
}

func isBlank(frame []byte) bool {
	for _, c := range frame {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// begin takes an in-flight slot for a new frame, waiting while the connection has
// MaxInFlightPerConn frames in flight. It fails once the connection is stopping.
func (c *conn) begin() bool {
	select {
	case c.slots <- struct{}{}:
	default:
		if hook := c.srv.hookReaderBlocked; hook != nil {
			hook()
		}
		select {
		case c.slots <- struct{}{}:
		case <-c.stopCh:
			return false
		}
	}
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		<-c.slots
		return false
	}
	c.handlers.Add(1)
	c.mu.Unlock()
	c.inFlight.Add(1)
	return true
}

// release frees the slot of a frame whose reply is written or not needed.
func (c *conn) release() {
	c.lastActive.Store(time.Now().UnixNano())
	c.inFlight.Add(-1)
	<-c.slots
}

// handle answers one frame and writes the reply.
func (c *conn) handle(frame []byte) {
	defer c.handlers.Done()
	out := getOut()
	if c.srv.serveFrame(c.ctx, frame, c.client, "", out) {
		c.send(out)
		return
	}
	putOut(out)
	c.release()
}

// send writes one reply and frees its frame's slot. Writing happens in the goroutine that
// made the reply (no hand-off to a writer goroutine, which costs a wake-up per request); the
// last of the replies queued for the lock flushes.
func (c *conn) send(out *outBuf) {
	c.queued.Add(1)
	c.wmu.Lock()
	if c.writeErr == nil && c.nc == nil && c.isKilled() {
		// A forced stop of a stdio connection: ServeStdio has returned, or is returning, and
		// its output is its caller's again. (A write begun before the stop may end after.)
		c.writeErr = ErrServerClosed
	}
	if c.writeErr == nil {
		c.armWrite()
		c.header = appendFrameHeader(c.header[:0], c.framing, len(out.b))
		_, _ = c.bw.Write(c.header)
		_, _ = c.bw.Write(out.b)
		if _, err := c.bw.WriteString(frameTrailer(c.framing)); err != nil {
			c.writeFailed(err)
		}
	}
	if c.queued.Add(-1) == 0 && c.writeErr == nil {
		if err := c.bw.Flush(); err != nil {
			c.writeFailed(err)
		}
	}
	c.wmu.Unlock()
	putOut(out)
	c.release()
}

// writeFailed gives up on a client that cannot take its replies: nothing more is written,
// the calls in flight are cancelled and the connection is closed. wmu is held.
func (c *conn) writeFailed(err error) {
	c.srv.log.Debug("rpc: dropping client that does not read its replies",
		"transport", c.client.Transport, "client", c.client.Addr, "err", err)
	c.giveUp(err)
}

// giveUp ends a connection that can take no more replies: nothing more is written (err),
// no new frame is taken, even one already read, the calls in flight are cancelled and the
// connection is closed. wmu is held.
func (c *conn) giveUp(err error) {
	c.writeErr = err
	c.stop()
	c.cancel()
	if c.nc != nil {
		_ = c.nc.Close()
	}
}

// slack is how far a deadline may lag behind its ideal before it is moved: moving it costs
// a timer update, so it is not moved on every read and write.
func slack(timeout time.Duration) time.Duration {
	return min(timeout/8, time.Second)
}

func (c *conn) armWrite() {
	timeout := c.srv.opts.WriteTimeout
	if c.nc == nil || timeout <= 0 {
		return
	}
	want := time.Now().Add(timeout)
	if want.Sub(c.writeDeadline) > slack(timeout) {
		c.writeDeadline = want
		_ = c.nc.SetWriteDeadline(want)
	}
}

// armRead sets the read deadline before a read: RequestReadTimeout from the start of a
// frame that is not complete yet, ReadIdleTimeout otherwise.
func (c *conn) armRead(partial bool) error {
	opts := &c.srv.opts
	now := time.Now()
	var want time.Time
	var timeout time.Duration
	switch {
	case partial && opts.RequestReadTimeout > 0:
		if c.partialSince.IsZero() || c.partialFrame != c.frames {
			c.partialSince, c.partialFrame = now, c.frames
		}
		timeout = opts.RequestReadTimeout
		want = c.partialSince.Add(timeout)
	case !partial && c.keepDeadline:
		c.keepDeadline = false
		want = c.readDeadline
	case !partial && opts.ReadIdleTimeout > 0:
		c.partialSince = time.Time{}
		timeout = opts.ReadIdleTimeout
		want = now.Add(timeout)
	default:
		c.partialSince = time.Time{}
	}
	if !want.Equal(c.readDeadline) && (want.IsZero() || want.Before(c.readDeadline) || want.Sub(c.readDeadline) > slack(timeout)) {
		c.readDeadline = want
		_ = c.nc.SetReadDeadline(want)
	}
	if c.stopping.Load() {
		return errStopped
	}
	c.armLoop(partial)
	return nil
}

// testEventLoop makes NewServer use the event loop with any number of processors: tests
// run the TCP transport's tests on it, the loop and the readers in parallel.
var testEventLoop atomic.Bool

// detachAfter is how many requests the loop answers on a connection, since its last
// hand-over, before it closes the reader's net.Conn (loopSock.detach): closing it, and
// making a new one when the connection goes back to its reader, cost 6-13 µs of CPU and 11
// allocations (BenchmarkEventLoopHandBack, detached against kept), which a connection the
// loop serves only now and then would pay for nothing; after detachAfter requests that is
// at most 13 ns a request, and a request costs the client about 90 ns less from then on.
const detachAfter = 1024

// testLoopDetach makes NewServer's loop take the sockets it serves out of Go's poller at
// once (Server.loopDetachAfter 0), for tests to run what follows that on short exchanges.
var testLoopDetach atomic.Bool

// errWouldBlock is what a read that may not wait returns when there is nothing to read: the
// connection goes to the event loop (armLoop, handOver).
var errWouldBlock = errors.New("rpc: read would block")

// readTimeout reports whether err is the read deadline of a connection still serving.
func (c *conn) readTimeout(err error) bool {
	var ne net.Error
	return !c.stopping.Load() && c.nc != nil && errors.As(err, &ne) && ne.Timeout()
}

// stalledInRequest reports whether the read deadline passed in the middle of a request.
func (c *conn) stalledInRequest(err error) bool { return c.readTimeout(err) && c.rd.partial() }

// retryRead decides whether a read error is only an idle deadline on a connection that is
// not idle (calls in flight, or a reply written recently), in which case reading goes on.
func (c *conn) retryRead(err error) bool {
	if !c.readTimeout(err) {
		return false
	}
	idle := c.srv.opts.ReadIdleTimeout
	if c.inFlight.Load() > 0 {
		return true // busy: arm gives it another idle period
	}
	idleSince := time.Unix(0, c.lastActive.Load())
	if until := idleSince.Add(idle); time.Now().Before(until) {
		c.readDeadline, c.keepDeadline = until, true
		_ = c.nc.SetReadDeadline(until)
		return true
	}
	c.srv.log.Debug("rpc: closing idle connection", "transport", c.client.Transport, "client", c.client.Addr)
	return false
}

// stop makes the reader take no new frame; the frames already taken are still answered.
// The first stop wakes the reader, under mu: a read deadline set once stop has returned
// (refuseUnread's) is not undone by a later stop, or by a Shutdown's stop late in waking it.
func (c *conn) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	c.stopping.Store(true)
	close(c.stopCh)
	if c.nc != nil {
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
	} else if c.poke != nil {
		c.poke()
	}
}

// finish stops reading, waits for the frames in flight, lets the writer flush their replies,
// then closes the connection. It is idempotent.
func (c *conn) finish() {
	c.finishOnce.Do(func() {
		c.stop()
		c.handlers.Wait() // every reply is written and flushed by now
		if c.srv.isClosing() {
			c.refuseUnread()
		}
		c.cancel()
		if c.nc != nil {
			drainAndClose(c.nc, c.srv.lingerDeadline())
		}
		c.srv.forget(c)
		close(c.done)
	})
}

// refuseUnread answers the requests that a client sent before the server stopped reading,
// during a shutdown, with shuttingDown, so that the client knows they were not run (and may
// send them again, to another node) rather than find them lost to the close: the frame the
// reader held (held), the frames it had buffered and what comes within Server.unreadGrace
// (readUnread), up to MaxInFlightPerConn requests. What comes later is not answered: over
// TCP drainAndClose discards it, over stdio it is left unread. A notification gets no reply;
// a batch, even of notifications only, or a frame whose id cannot be read, is answered with
// id null (which the SDKs take for a refusal of the connection). The refusals are written at
// once, for at most refusalWriteTimeout (sendRefusals).
func (c *conn) refuseUnread() {
	if !c.readUnread(time.Now().Add(c.srv.unreadGrace)) {
		return
	}
	out := getOut()
	defer putOut(out)
	var header [32]byte
	refuse := func(id []byte) {
		start := len(out.b)
		out.appendError(id, errShuttingDown())
		if h := appendFrameHeader(header[:0], c.framing, len(out.b)-start); len(h) > 0 {
			out.b = slices.Insert(out.b, start, h...)
		}
		out.b = append(out.b, frameTrailer(c.framing)...)
	}
	frame := c.held
	c.held = nil
	for left := c.srv.opts.MaxInFlightPerConn; left > 0; {
		if id, answer := refusalID(frame); answer {
			refuse(id)
			left--
		}
		var err error
		if frame, err = c.rd.next(); err != nil {
			fe, ok := err.(*frameError)
			if !ok {
				break
			}
			refuse(fe.id)
			left--
		}
	}
	if len(out.b) > 0 {
		c.sendRefusals(out.b)
	}
}

// readUnread sets the reader up for refuseUnread to read on until deadline, and reports
// whether it may read at all: a stdio reader may still be in a Read that does not return
// (readUnreadStdio).
func (c *conn) readUnread(deadline time.Time) bool {
	if c.nc == nil {
		return c.readUnreadStdio(deadline)
	}
	_ = c.nc.SetReadDeadline(deadline)
	c.rd.arm = nil // the deadline above stays
	c.readsWait()
	return true
}

// sendRefusals writes a shutdown's refusals at once, for at most refusalWriteTimeout: a client
// that does not read them must not hold up the shutdown. A client behind on reading its
// replies, whose refusals would wait behind them (where the kernel tells: a socket or a pipe
// on Linux), gets none: it finds the connection closed once it has read the replies.
func (c *conn) sendRefusals(b []byte) {
	var dst any = c.nc
	if c.nc == nil {
		dst = c.out
	}
	if room := sendRoom(dst); room >= 0 && room < len(b) {
		return
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.writeErr != nil {
		return
	}
	if c.nc == nil {
		c.writeAside(b)
		return
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(refusalWriteTimeout))
	// A failure is not giveUp: closing at once would reset the replies the client has not read.
	if _, err := c.bw.Write(b); err == nil {
		_ = c.bw.Flush()
	}
}

// isKilled reports whether a forced stop has ended the connection.
func (c *conn) isKilled() bool {
	select {
	case <-c.killed:
		return true
	default:
		return false
	}
}

// kill ends the connection at once: calls are cancelled and the transport is closed.
func (c *conn) kill() {
	c.killOnce.Do(func() {
		if c.nc != nil {
			_ = c.nc.Close() // first, so no reply gets out after a forced stop
		}
		c.cancel()
		close(c.killed)
	})
}
