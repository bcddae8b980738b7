package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// onEventLoop runs f with every server it makes serving TCP with the event loop, which
// takes the sockets it serves out of Go's poller at once if detach is set.
func onEventLoop(t *testing.T, detach bool, f func(t *testing.T)) {
	testEventLoop.Store(true)
	testLoopDetach.Store(detach)
	defer func() {
		testEventLoop.Store(false)
		testLoopDetach.Store(false)
	}()
	f(t)
}

// TestTCPOnEventLoop runs the TCP transport's tests with the event loop, the loop and the
// readers running in parallel: pipelining, too-large and stalled half requests, in-flight
// limits, clients that never read, idle timeouts, half closes, shutdowns. They run twice:
// as the loop serves connections, and with the loop taking each socket out of Go's poller
// as soon as it serves it (loopSock), as it does after detachAfter requests.
func TestTCPOnEventLoop(t *testing.T) {
	for name, test := range map[string]func(*testing.T){
		"Pipelining":                TestTCPPipelining,
		"ManyPipelined":             TestTCPManyPipelined,
		"RequestTooLarge":           TestTCPRequestTooLarge,
		"MaxConnections":            TestTCPMaxConnections,
		"InFlightBackpressure":      TestTCPInFlightBackpressure,
		"StalledHalfRequest":        TestTCPStalledHalfRequest,
		"SlowButSteadyClient":       TestTCPSlowButSteadyClient,
		"NeverReadingClient":        TestTCPNeverReadingClient,
		"IdleTimeout":               TestTCPIdleTimeout,
		"ClientHalfClose":           TestTCPClientHalfClose,
		"SourcegraphClient":         TestTCPSourcegraphClient,
		"ShutdownSlowReaderSending": TestTCPShutdownSlowReaderStillSending,
		"SpecExamples":              TestSpecExamples,
		"IDFidelity":                TestIDFidelity,
		"MalformedInput":            TestMalformedInput,
		"ShutdownAnswersInFlight":   TestShutdownAnswersInFlight,
		"ShutdownForced":            TestShutdownForced,
		"QuickPathOverTCP":          TestEventLoopMixedLoad,
	} {
		t.Run(name, func(t *testing.T) { onEventLoop(t, false, test) })
		t.Run(name+"/detached", func(t *testing.T) { onEventLoop(t, true, test) })
	}
}

// TestEventLoopMixedLoad checks that clients mixing quick requests (answered by the loop),
// slow ones (handed back to their readers), pipelined pairs, requests sent in two pieces and
// blank lines each get every reply, and that the loop did serve quick requests and give
// connections back.
func TestEventLoopMixedLoad(t *testing.T) {
	srv := NewServer(&countingQuick{}, Options{Logger: slog.New(slog.DiscardHandler)})
	srv.loopOn = true
	var mu sync.Mutex
	var served, handedBack int
	ended := make(chan struct{}, 16)
	srv.hookConnDone = func(c *conn) {
		if c.lc != nil {
			mu.Lock()
			served += c.lc.served
			handedBack += c.lc.handedBack
			mu.Unlock()
		}
		ended <- struct{}{}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeTCP(ln) }()
	const clients, rounds = 8, 300
	var wg sync.WaitGroup
	for i := range clients {
		c := dialTCP(t, ln.Addr().String())
		wg.Go(func() {
			defer c.conn.Close()
			for j := range rounds {
				method := "fast"
				if j%10 == 9 {
					method = "slow"
				}
				frame := fmt.Sprintf(`{"jsonrpc":"2.0","method":%q,"id":%d}`, method, j)
				want := []string{fmt.Sprintf(`{"jsonrpc":"2.0","result":%q,"id":%d}`, method, j)}
				switch j % 25 {
				case 7: // a second request pipelined behind it, and a blank line
					frame += "\n\n" + fmt.Sprintf(`{"jsonrpc":"2.0","method":"fast","id":%d}`, -j)
					want = append(want, fmt.Sprintf(`{"jsonrpc":"2.0","result":"fast","id":%d}`, -j))
				case 13: // in two pieces
					half := len(frame) / 2
					if _, err := c.conn.Write([]byte(frame[:half])); err != nil {
						t.Errorf("client %d: %v", i, err)
						return
					}
					time.Sleep(time.Millisecond) // the first piece is read alone
					frame = frame[half:]
				}
				if err := c.Send([]byte(frame)); err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
				var got []string
				for range want {
					reply, err := c.Recv()
					if err != nil {
						t.Errorf("client %d, request %d: %v", i, j, err)
						return
					}
					got = append(got, string(reply))
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("client %d: replies %q, want %q", i, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	for range clients {
		<-ended
	}
	mu.Lock()
	defer mu.Unlock()
	if total := clients * rounds; served < total/2 || handedBack < clients*rounds/10 {
		t.Errorf("the loop answered %d of %d requests and gave connections back %d times; want over half, and at least once per slow request", served, total, handedBack)
	}
}

// TestEventLoopFairness checks that while the loop is kept busy by clients that always have
// requests waiting, a new connection is accepted and answered (by its reader: a slow method).
// How long such a connection waits on one processor is measured, not tested (README).
func TestEventLoopFairness(t *testing.T) {
	onEventLoop(t, false, func(t *testing.T) {
		srv := NewServer(&countingQuick{}, Options{Logger: slog.New(slog.DiscardHandler)})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.ServeTCP(ln) }()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			c := dialTCP(t, ln.Addr().String())
			batch := []byte(strings.Repeat(`{"jsonrpc":"2.0","method":"fast","id":1}`+"\n", 64))
			wg.Go(func() { // 64 requests in flight at all times
				go func() {
					for {
						if _, err := c.rd.ReadBytes('\n'); err != nil {
							return
						}
					}
				}()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := c.conn.Write(batch); err != nil {
						return
					}
				}
			})
		}
		time.Sleep(50 * time.Millisecond)
		late := dialTCP(t, ln.Addr().String())
		if got := late.call(t, `{"jsonrpc":"2.0","method":"slow","id":2}`); got != `{"jsonrpc":"2.0","result":"slow","id":2}` {
			t.Errorf("late client: %s", got)
		}
		close(stop)
		wg.Wait()
	})
}

// loopQuick answers "fast", "big" (a 16 MiB string), "wait" (once released) and "ctxwait"
// (once its context ends) as quick methods that never wait, though the last two do, to test
// what happens meanwhile; "maybe" as one that says, on the loop, that it would wait;
// "inline" as a quick method that may wait, "slow" in a handler, and "stuck" in a handler
// that waits to be released, whatever its context says.
type loopQuick struct {
	release chan struct{}
	started chan struct{} // closed by "ctxwait"
	waiting chan struct{} // "wait" has started
	slow    atomic.Int32  // "slow" calls run
}

func (q *loopQuick) Quick(method string) bool { return method != "slow" && method != "stuck" }

func (q *loopQuick) NeverWaits(method string) bool {
	return q.Quick(method) && method != "inline"
}

func (q *loopQuick) Dispatch(ctx context.Context, call *Call) (any, error) {
	switch call.Method {
	case "big":
		return strings.Repeat("x", 16<<20), nil
	case "kilo":
		return strings.Repeat("k", 1000), nil
	case "wait":
		select {
		case q.waiting <- struct{}{}:
		default:
		}
		<-q.release
	case "slow":
		q.slow.Add(1)
	case "ctxwait":
		close(q.started)
		<-ctx.Done()
	case "stuck":
		<-q.release
	case "maybe":
		if InEventLoop(ctx) {
			return nil, ErrWouldWait
		}
	}
	return call.Method, nil
}

// loopServer serves TCP with a loopQuick, with the event loop or without.
func loopServer(t testing.TB, loop bool, opts Options) (*Server, *loopQuick, string) {
	t.Helper()
	return loopServerDetaching(t, loop, false, opts)
}

// loopServerDetaching is loopServer whose loop, if detach is set, takes a socket out of Go's
// poller as soon as it serves the connection (Server.loopDetachAfter 0).
func loopServerDetaching(t testing.TB, loop, detach bool, opts Options) (*Server, *loopQuick, string) {
	t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	q := &loopQuick{release: make(chan struct{}), started: make(chan struct{}), waiting: make(chan struct{}, 1)}
	srv := NewServer(q, opts)
	srv.loopOn, srv.loopDetachAfter = loop, detachAfter
	if detach {
		srv.loopDetachAfter = 0
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeTCP(ln) }()
	t.Cleanup(func() { ln.Close() })
	return srv, q, ln.Addr().String()
}

func loopFrame(method string, id int) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","method":%q,"id":%d}`, method, id)
}

// handedOver returns a client of srv whose connection has answered a request and waits for
// the next one: with the loop, the loop has it.
func handedOver(t testing.TB, srv *Server, addr string) *tcpClient {
	t.Helper()
	c := dialTCP(t, addr)
	if got := c.call(t, loopFrame("fast", 0)); got != `{"jsonrpc":"2.0","result":"fast","id":0}` {
		t.Fatalf("first reply %s", got)
	}
	onLoop(t, srv, c) // the reader finds the socket empty and hands it over
	return c
}

// onLoop waits, if srv uses the event loop, until the loop has client's connection.
func onLoop(t testing.TB, srv *Server, client *tcpClient) {
	t.Helper()
	if !srv.loopOn {
		return
	}
	addr := client.conn.LocalAddr().String()
	waitConns(t, srv, "go to the loop", func(c *conn) bool {
		return c.nc.RemoteAddr().String() != addr || c.lc != nil && c.lc.owner.Load() == ownLoop
	})
}

// shutdownDuringWait sends a "wait" call (id 1), then behind, on a connection the loop has,
// shuts srv down while the call runs, releases it once the connection is stopping, and checks
// that Shutdown returns and the call is answered. It returns the client.
func shutdownDuringWait(t *testing.T, srv *Server, q *loopQuick, addr, behind string) *tcpClient {
	t.Helper()
	c := handedOver(t, srv, addr)
	_ = c.Send([]byte(loopFrame("wait", 1) + behind))
	<-q.waiting
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	waitConns(t, srv, "stop", func(c *conn) bool { return c.stopping.Load() })
	close(q.release)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got, err := c.Recv(); err != nil || string(got) != `{"jsonrpc":"2.0","result":"wait","id":1}` {
		t.Fatalf("reply %q, %v", got, err)
	}
	return c
}

// TestEventLoopEdges checks, without the loop, with it, and with it taking each socket
// out of Go's poller at once (loopSock), what the loop hands back to the reader or must not
// miss: a half close right behind a request, urgent data, a reply the client does not read
// at once (beside another client), requests filling the read buffer, a request too large,
// Shutdown while a quick method runs in the loop (with requests read behind it, which a
// stopping connection does not take), and input that comes while the connection is being
// handed over.
func TestEventLoopEdges(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		run  func(t *testing.T, srv *Server, q *loopQuick, addr string)
	}{
		{name: "half close behind a request", run: func(t *testing.T, srv *Server, _ *loopQuick, addr string) {
			c := handedOver(t, srv, addr)
			_ = c.Send([]byte(loopFrame("fast", 1)))
			_ = c.CloseSend()
			if got, err := c.Recv(); err != nil || string(got) != `{"jsonrpc":"2.0","result":"fast","id":1}` {
				t.Fatalf("reply %q, %v", got, err)
			}
			expectClosed(t, c)
		}},
		{name: "urgent data", run: func(t *testing.T, srv *Server, _ *loopQuick, addr string) {
			c := handedOver(t, srv, addr)
			rc, err := c.conn.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var werr error
			_ = rc.Write(func(fd uintptr) bool {
				_, werr = syscall.Write(int(fd), []byte(loopFrame("fast", 1)+"\n"))
				if werr == nil {
					werr = syscall.Sendto(int(fd), []byte("!"), syscall.MSG_OOB, nil)
				}
				if werr == nil {
					_, werr = syscall.Write(int(fd), []byte(loopFrame("fast", 2)+"\n"))
				}
				return true
			})
			if werr != nil {
				t.Fatal(werr)
			}
			for id := 1; id <= 2; id++ {
				if got, err := c.Recv(); err != nil || string(got) != fmt.Sprintf(`{"jsonrpc":"2.0","result":"fast","id":%d}`, id) {
					t.Fatalf("reply %q, %v", got, err)
				}
			}
		}},
		{name: "reply not read at once", opts: Options{WriteTimeout: 5 * time.Second}, run: func(t *testing.T, srv *Server, _ *loopQuick, addr string) {
			slow := handedOver(t, srv, addr)
			_ = slow.Send([]byte(loopFrame("big", 1)))
			other := handedOver(t, srv, addr)
			if got := other.call(t, loopFrame("fast", 2)); got != `{"jsonrpc":"2.0","result":"fast","id":2}` {
				t.Fatalf("other client: %s", got)
			}
			time.Sleep(50 * time.Millisecond)
			if got, err := slow.Recv(); err != nil || len(got) < 16<<20 {
				t.Fatalf("big reply: %d bytes, %v", len(got), err)
			}
			if got := slow.call(t, loopFrame("fast", 3)); got != `{"jsonrpc":"2.0","result":"fast","id":3}` {
				t.Fatalf("after the big reply: %s", got)
			}
		}},
		{name: "requests filling the read buffer", run: func(t *testing.T, srv *Server, _ *loopQuick, addr string) {
			c := handedOver(t, srv, addr)
			frame := loopFrame("fast", 1)
			frame += strings.Repeat(" ", 63-len(frame)) + "\n" // 64 bytes: 1,024 fill the buffer
			if _, err := c.conn.Write([]byte(strings.Repeat(frame, 1024))); err != nil {
				t.Fatal(err)
			}
			for i := range 1024 {
				if got, err := c.Recv(); err != nil || string(got) != `{"jsonrpc":"2.0","result":"fast","id":1}` {
					t.Fatalf("reply %d: %q, %v", i, got, err)
				}
			}
		}},
		{name: "request too large", opts: Options{MaxRequestBytes: 100}, run: func(t *testing.T, srv *Server, _ *loopQuick, addr string) {
			c := handedOver(t, srv, addr)
			frame := loopFrame("fast", 1)
			got := c.call(t, frame+strings.Repeat(" ", 101-len(frame)))
			if !strings.Contains(got, `"code":-32600`) && !strings.Contains(got, "too large") {
				t.Fatalf("a request over the limit: %s", got)
			}
			if got := c.call(t, loopFrame("fast", 2)); got != `{"jsonrpc":"2.0","result":"fast","id":2}` {
				t.Fatalf("after it: %s", got)
			}
		}},
		{name: "shutdown while the loop runs a call", run: func(t *testing.T, srv *Server, q *loopQuick, addr string) {
			c := shutdownDuringWait(t, srv, q, addr, "")
			expectClosed(t, c)
		}},
		{name: "shutdown with requests read behind the running call", run: func(t *testing.T, srv *Server, q *loopQuick, addr string) {
			// The other two are read behind the call (one write, one read).
			c := shutdownDuringWait(t, srv, q, addr, "\n"+loopFrame("fast", 2)+"\n"+loopFrame("fast", 3))
			// A stopping connection runs no more requests: it refuses them.
			for id := 2; id <= 3; id++ {
				want := fmt.Sprintf(`{"jsonrpc":"2.0","error":{"code":-32000,"message":"Server unavailable","data":{"reason":"shuttingDown"}},"id":%d}`, id)
				if got, err := c.Recv(); err != nil || string(got) != want {
					t.Fatalf("request %d after the stop: %s, %v; want %s", id, got, err, want)
				}
			}
			var ne net.Error
			if got, err := c.Recv(); err == nil {
				t.Fatalf("reply %s after the refusals", got)
			} else if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the server did not close the connection")
			}
		}},
		{name: "shutdown with a request sent after the running call's reply", run: func(t *testing.T, srv *Server, q *loopQuick, addr string) {
			srv.unreadGrace = time.Second
			c := handedOver(t, srv, addr)
			_ = c.Send([]byte(loopFrame("wait", 1)))
			<-q.waiting
			done := make(chan error, 1)
			go func() { done <- srv.Shutdown(context.Background()) }()
			defer func() { <-done }()
			waitConns(t, srv, "stop", func(c *conn) bool { return c.stopping.Load() })
			close(q.release)
			if got, err := c.Recv(); err != nil || string(got) != `{"jsonrpc":"2.0","result":"wait","id":1}` {
				t.Fatalf("reply %q, %v", got, err)
			}
			// The connection reads on for a moment once its calls are answered (an empty
			// read must wait, not hand it back to the loop), and refuses what comes.
			_ = c.Send([]byte(loopFrame("fast", 2)))
			want := `{"jsonrpc":"2.0","error":{"code":-32000,"message":"Server unavailable","data":{"reason":"shuttingDown"}},"id":2}`
			if got, err := c.Recv(); err != nil || string(got) != want {
				t.Fatalf("a request sent after the reply: %s, %v; want %s", got, err, want)
			}
			expectClosed(t, c)
		}},
		{name: "forced shutdown while the loop runs a call", run: func(t *testing.T, srv *Server, q *loopQuick, addr string) {
			c := handedOver(t, srv, addr)
			// A request the loop answers first: with detach, the socket is out of Go's
			// poller when the call runs.
			if got := c.call(t, loopFrame("fast", 1)); got != `{"jsonrpc":"2.0","result":"fast","id":1}` {
				t.Fatalf("reply %s", got)
			}
			_ = c.Send([]byte(loopFrame("ctxwait", 2)))
			<-q.started
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- srv.Shutdown(ctx) }()
			select {
			case err := <-done:
				if err != context.DeadlineExceeded {
					t.Fatalf("Shutdown: %v, want the deadline", err)
				}
			case <-time.After(5 * time.Second): // the connection's Close must not wait for the call
				t.Fatal("a forced Shutdown is still waiting after 5 s")
			}
			// The call ends as its context does, after the stop: its reply must not get out
			// through the loop's own descriptor of the socket.
			if got, err := c.Recv(); err == nil {
				t.Fatalf("reply %s after a forced stop", got)
			} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the server did not close the connection")
			}
		}},
		{name: "forced shutdown while a handler ignores it", run: func(t *testing.T, srv *Server, q *loopQuick, addr string) {
			c := handedOver(t, srv, addr)
			defer close(q.release)
			_ = c.Send([]byte(loopFrame("stuck", 1)))
			waitConns(t, srv, "start the call", func(c *conn) bool { return c.inFlight.Load() == 1 })
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if err := srv.Shutdown(ctx); err != context.DeadlineExceeded {
				t.Fatalf("Shutdown: %v, want the deadline", err)
			}
			// The socket is closed at once, not when the handler returns: the client's
			// writes soon fail, as they do on a connection the loop never had.
			_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			for {
				_, err := c.conn.Write([]byte("\n"))
				if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("the socket is still open 5 s after a forced Shutdown")
				} else if err != nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}},
		{name: "a quick method that may wait", run: func(t *testing.T, srv *Server, _ *loopQuick, addr string) {
			c := handedOver(t, srv, addr)
			_ = c.Send([]byte(loopFrame("inline", 1) + "\n" + loopFrame("fast", 2)))
			for id, method := range []string{"inline", "fast"} {
				if got, err := c.Recv(); err != nil || string(got) != fmt.Sprintf(`{"jsonrpc":"2.0","result":%q,"id":%d}`, method, id+1) {
					t.Fatalf("reply %q, %v", got, err)
				}
			}
		}},
		{name: "input during a hand-over", run: func(t *testing.T, srv *Server, _ *loopQuick, addr string) {
			var client atomic.Pointer[tcpClient]
			var handOvers atomic.Int32
			srv.hookHandOver = func(*conn) {
				// The first hand-over, as soon as the connection is served, adds the
				// socket to the loop's set; the second modifies it: a request that
				// arrives just before must not be missed.
				if handOvers.Add(1) == 2 {
					_ = client.Load().Send([]byte(loopFrame("fast", 4)))
					time.Sleep(20 * time.Millisecond)
				}
			}
			c := dialTCP(t, addr)
			client.Store(c)
			// The loop hands the slow one back; the reader answers the next one and
			// hands the connection over again (once the slow one's handler has let go of
			// its slot: the reply is written first).
			for id, method := range []string{"fast", "slow", "fast"} {
				if got := c.call(t, loopFrame(method, id+1)); got != fmt.Sprintf(`{"jsonrpc":"2.0","result":%q,"id":%d}`, method, id+1) {
					t.Fatalf("reply %s", got)
				}
				waitConns(t, srv, "have nothing in flight", func(c *conn) bool { return c.inFlight.Load() == 0 })
			}
			if !srv.loopOn {
				return
			}
			if got, err := c.Recv(); err != nil || string(got) != `{"jsonrpc":"2.0","result":"fast","id":4}` {
				t.Fatalf("the request sent during the second hand-over (%d hand-overs): %q, %v", handOvers.Load(), got, err)
			}
		}},
	} {
		for _, mode := range []string{"off", "on", "detached"} {
			t.Run(tc.name+"/loop="+mode, func(t *testing.T) {
				srv, q, addr := loopServerDetaching(t, mode != "off", mode == "detached", tc.opts)
				tc.run(t, srv, q, addr)
			})
		}
	}
}

// TestEventLoopLeavesWaitingMethods checks that the loop answers only the quick methods that
// never wait, and leaves to the connection's reader the others and the calls that say they
// would wait (ErrWouldWait), whose replies are the reader's.
func TestEventLoopLeavesWaitingMethods(t *testing.T) {
	srv, _, addr := loopServer(t, true, Options{})
	served := make(chan int, 1)
	srv.hookConnDone = func(c *conn) { served <- c.lc.served }
	c := handedOver(t, srv, addr) // fast, id 0
	for i := 1; i <= 15; i++ {
		method := []string{"inline", "maybe", "fast"}[i%3]
		if got := c.call(t, loopFrame(method, i)); got != fmt.Sprintf(`{"jsonrpc":"2.0","result":%q,"id":%d}`, method, i) {
			t.Fatalf("reply %s", got)
		}
		if method != "inline" {
			onLoop(t, srv, c) // the reader hands the connection over again
		}
	}
	c.conn.Close()
	// The first request is the reader's or the loop's, as it comes before or after the
	// reader's first look at the socket.
	if n := <-served; n != 5 && n != 6 {
		t.Errorf("the loop answered %d requests, want the 5 or 6 that never wait", n)
	}
}

// TestEventLoopBatchesPipelinedReplies checks that the loop writes the replies to a run of
// pipelined requests together, in order, rather than one write each.
func TestEventLoopBatchesPipelinedReplies(t *testing.T) {
	srv, _, addr := loopServer(t, true, Options{})
	type counts struct{ served, writes int }
	done := make(chan counts, 1)
	srv.hookConnDone = func(c *conn) { done <- counts{c.lc.served, c.lc.writes} }
	c := handedOver(t, srv, addr)
	const n = 100
	pipelined(t, c, "fast", n, `"fast"`)
	c.conn.Close()
	// 4 KB of requests come in one read, or a few: not a write a reply.
	if got := <-done; got.served < n || got.writes > 10 {
		t.Errorf("the loop answered %d requests in %d writes, want %d or more in at most 10", got.served, got.writes, n)
	}
}

// TestEventLoopOnlyForItsRequests checks that a connection goes to the loop only after a
// request the loop answers: one whose requests the loop would hand back stays with its
// reader, rather than pay a hand-over and a hand-back each.
func TestEventLoopOnlyForItsRequests(t *testing.T) {
	srv, _, addr := loopServer(t, true, Options{})
	var handOvers atomic.Int32
	srv.hookHandOver = func(*conn) { handOvers.Add(1) }
	c := dialTCP(t, addr)
	for i := 1; i <= 5; i++ {
		for _, method := range []string{"inline", "slow"} {
			if got := c.call(t, loopFrame(method, i)); got != fmt.Sprintf(`{"jsonrpc":"2.0","result":%q,"id":%d}`, method, i) {
				t.Fatalf("reply %s", got)
			}
		}
	}
	time.Sleep(20 * time.Millisecond)
	if n := handOvers.Load(); n != 0 {
		t.Fatalf("%d hand-overs for requests the loop does not answer", n)
	}
	srv.mu.Lock()
	made := srv.loop != nil
	srv.mu.Unlock()
	if made {
		t.Fatal("the server made its event loop before any hand-over")
	}
	c.call(t, loopFrame("fast", 6))
	onLoop(t, srv, c)
	if n := handOvers.Load(); n != 1 {
		t.Fatalf("%d hand-overs after a request the loop answers, want 1", n)
	}
}

// TestEventLoopClosesItsDescriptors checks that the loop's own descriptor of a socket is
// closed as the connection finishes: clients that come and go leave no descriptor behind.
func TestEventLoopClosesItsDescriptors(t *testing.T) {
	srv, _, addr := loopServer(t, true, Options{})
	gone := func() { waitConns(t, srv, "finish", func(*conn) bool { return false }) }
	handedOver(t, srv, addr).conn.Close() // the loop and its set are made
	gone()
	before := openFDs(t)
	for range 20 {
		handedOver(t, srv, addr).conn.Close()
	}
	gone()
	// Fewer is other tests' connections finishing meanwhile; more is a leak.
	if after := openFDs(t); after > before {
		t.Fatalf("%d descriptors open after 20 connections came and went, %d before", after, before)
	}
}

// TestEventLoopSocketLeavesGoPoller checks that once the loop has answered detachAfter
// requests on a connection, its socket is watched by the loop's set alone, through the
// loop's descriptor: the reader's net.Conn is closed, so Go's poller does not watch it
// (loopSock). Given back to the reader (a request in a handler), Go's poller watches it
// again, through a new net.Conn that still serves, and a hand-over leaves it there until the
// loop has answered detachAfter requests again.
func TestEventLoopSocketLeavesGoPoller(t *testing.T) {
	srv, _, addr := loopServer(t, true, Options{})
	c := handedOver(t, srv, addr)
	fd := -1
	waitConns(t, srv, "have a descriptor of the loop's", func(sc *conn) bool {
		sc.lc.sock.mu.Lock()
		defer sc.lc.sock.mu.Unlock()
		fd = sc.lc.sock.fd
		return fd >= 0
	})
	// inGo reports whether an epoll set other than the loop's watches the socket, under
	// another descriptor than the loop's: Go's poller, through the reader's net.Conn.
	inGo := func() bool {
		t.Helper()
		watches := socketWatches(t, fd)
		if !slices.Contains(watches, fd) {
			t.Fatalf("the loop's set does not watch the socket: %v", watches)
		}
		return slices.ContainsFunc(watches, func(tfd int) bool { return tfd != fd })
	}
	for round := range 2 {
		if !inGo() {
			t.Fatalf("round %d: Go's poller does not watch a socket the loop has just taken", round)
		}
		// Sixteen at a time, each run in one segment: a frame split across two reads
		// would send the connection back to its reader, which would answer the rest.
		for range detachAfter / 16 {
			pipelined(t, c, "fast", 16, `"fast"`)
		}
		onLoop(t, srv, c)
		if inGo() {
			t.Fatalf("round %d: Go's poller still watches the socket after the loop answered %d requests", round, detachAfter)
		}
		if got := c.call(t, loopFrame("slow", 1)); got != `{"jsonrpc":"2.0","result":"slow","id":1}` {
			t.Fatalf("reply %s", got)
		}
		// The reader answered it in a handler, and keeps the connection: the last
		// request was not one the loop answers.
		if !inGo() {
			t.Fatalf("round %d: given back to the reader, the socket is not in Go's poller", round)
		}
		if got := c.call(t, loopFrame("fast", 2)); got != `{"jsonrpc":"2.0","result":"fast","id":2}` {
			t.Fatalf("reply %s", got)
		}
		onLoop(t, srv, c)
	}
}

// TestEventLoopTakeBackFails checks that when the reader cannot have a net.Conn again (the
// connection was closed meanwhile; no descriptor left does the same), the connection ends
// without running the requests the loop read and gave back, whose replies could not be
// written.
func TestEventLoopTakeBackFails(t *testing.T) {
	srv, q, addr := loopServerDetaching(t, true, true, Options{})
	c := handedOver(t, srv, addr)
	if got := c.call(t, loopFrame("fast", 1)); got != `{"jsonrpc":"2.0","result":"fast","id":1}` {
		t.Fatalf("reply %s", got)
	}
	onLoop(t, srv, c)
	var sock *loopSock
	waitConns(t, srv, "leave Go's poller", func(sc *conn) bool {
		sock = sc.lc.sock
		return sock.conn() == nil
	})
	_ = sock.Close() // the next attach fails
	_ = c.Send([]byte(loopFrame("slow", 2) + "\n" + loopFrame("slow", 3)))
	expectClosed(t, c)
	waitConns(t, srv, "finish", func(*conn) bool { return false })
	if n := q.slow.Load(); n != 0 {
		t.Errorf("%d requests ran on a connection that could not take their replies", n)
	}
}

// socketWatches returns, for the socket open as descriptor fd, the descriptor numbers under
// which the process's epoll sets watch it: one for each set and each duplicate of a set.
func socketWatches(t *testing.T, fd int) []int {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	ino := "ino:" + strconv.FormatUint(st.Ino, 16)
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var watches []int
	for _, e := range entries {
		if link, _ := os.Readlink("/proc/self/fd/" + e.Name()); link != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		for line := range strings.Lines(string(info)) {
			// tfd:        7 events: 80002019 data: 1  pos:0 ino:5a9 sdev:8
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "tfd:" || !slices.Contains(f, ino) {
				continue
			}
			if tfd, err := strconv.Atoi(f[1]); err == nil {
				watches = append(watches, tfd)
			}
		}
	}
	return watches
}

// openFDs counts the process's open descriptors.
// openFDs counts the process's open socket descriptors. Epoll sets are left out: the loop
// keeps a duplicate of its own (park) while it goes idle now and then, and lets it go after
// a while of input, whenever that falls.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if link, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(link, "socket:") {
			n++
		}
	}
	return n
}

// TestNextTurnGap checks how far apart the loop's turns in Go's poller come: turnMin after
// one that found work outside the loop, twice the gap after one that found none, up to
// turnMax.
func TestNextTurnGap(t *testing.T) {
	for _, tc := range []struct {
		gap   time.Duration
		found bool
		want  time.Duration
	}{
		{turnMin, false, 2 * turnMin},
		{2 * turnMin, false, 4 * turnMin},
		{turnMax * 3 / 4, false, turnMax},
		{turnMax, false, turnMax},
		{turnMax, true, turnMin},
		{turnMin, true, turnMin},
	} {
		if got := nextTurnGap(tc.gap, tc.found); got != tc.want {
			t.Errorf("nextTurnGap(%v, %v) = %v, want %v", tc.gap, tc.found, got, tc.want)
		}
	}
}

// TestEventLoopKeepsItsIdleRegistration checks that the loop registers its set in Go's
// poller once for a run of idle waits, not once each: each registration makes the kernel
// check every socket in the set (75 µs with 1,000 of them).
func TestEventLoopKeepsItsIdleRegistration(t *testing.T) {
	srv, _, addr := loopServer(t, true, Options{})
	c := handedOver(t, srv, addr)
	defer c.conn.Close()
	const idles = 20
	for i := range idles {
		time.Sleep(2 * time.Millisecond) // no input for over loopWait: the loop waits in Go's poller
		want := fmt.Sprintf(`{"jsonrpc":"2.0","result":"fast","id":%d}`, i+1)
		if got := c.call(t, loopFrame("fast", i+1)); got != want {
			t.Fatalf("reply %s, want %s", got, want)
		}
	}
	srv.mu.Lock()
	l := srv.loop
	srv.mu.Unlock()
	// One, or a few if the machine stalled for keepPark between two idle waits.
	if n := l.parks.Load(); n < 1 || n > 3 {
		t.Errorf("the loop registered its set in Go's poller %d times for %d idle waits, want 1 (at most 3)", n, idles)
	}
}

// TestEventLoopSplitsLargeBatches checks that a pipelined run whose replies pass
// loopBatchBytes (requests read at once, replies of a kilobyte) is written in several
// writes, every reply whole and in order.
func TestEventLoopSplitsLargeBatches(t *testing.T) {
	srv, _, addr := loopServer(t, true, Options{})
	done := make(chan int, 1)
	srv.hookConnDone = func(c *conn) { done <- c.lc.writes }
	c := handedOver(t, srv, addr)
	const n = 200 // 9 KB of requests, 200 KB of replies
	pipelined(t, c, "kilo", n, `"`+strings.Repeat("k", 1000)+`"`)
	c.conn.Close()
	if writes := <-done; writes < 3 {
		t.Errorf("%d replies of a kilobyte in %d writes, want 3 or more (%d bytes a write at most)", n, writes, loopBatchBytes)
	}
}

// pipelined sends n requests for method (ids 1 to n) in one write and checks that their
// replies come back in order, each with result (raw JSON).
func pipelined(t *testing.T, c *tcpClient, method string, n int, result string) {
	t.Helper()
	var frames []string
	for id := 1; id <= n; id++ {
		frames = append(frames, loopFrame(method, id))
	}
	if err := c.Send([]byte(strings.Join(frames, "\n"))); err != nil {
		t.Fatal(err)
	}
	for id := 1; id <= n; id++ {
		want := fmt.Sprintf(`{"jsonrpc":"2.0","result":%s,"id":%d}`, result, id)
		if got, err := c.Recv(); err != nil || string(got) != want {
			t.Fatalf("reply %d: %.80q, %v", id, got, err)
		}
	}
}

// BenchmarkEventLoopPipelined measures pingSession of the real service answered by the event
// loop: one connection writing runs of 16 requests at a time and reading their replies. The
// figures include the kernel's work and the client's, in this process, which are the same
// for any build of the server: what changes between builds is the loop's read, parse,
// dispatch, engine, reply and write, 16 requests to a read and a write.
func BenchmarkEventLoopPipelined(b *testing.B) {
	service, tokens := benchPathService(b, 1000)
	srv := NewServer(service, Options{Logger: slog.New(slog.DiscardHandler)})
	srv.loopOn = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.ServeTCP(ln) }()
	b.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	c := dialTCP(b, ln.Addr().String())
	frames := make([][]byte, len(tokens))
	for i, tok := range tokens {
		frames[i] = []byte(pathFrames["pingSession"](i+1, tok) + "\n")
	}
	// The first request goes to the reader, which then hands the connection to the loop.
	if got := c.call(b, strings.TrimSuffix(string(frames[0]), "\n")); !strings.Contains(got, `"result":{}`) {
		b.Fatalf("reply %s", got)
	}
	_ = c.conn.SetReadDeadline(time.Time{}) // call's, which a long -benchtime outlasts
	const run = 16
	var batch []byte
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	for i := 0; i < b.N; i += run {
		n := min(run, b.N-i)
		batch = batch[:0]
		for j := range n {
			batch = append(batch, frames[(i+j)%len(frames)]...)
		}
		if _, err := c.conn.Write(batch); err != nil {
			b.Fatal(err)
		}
		for range n {
			if _, err := c.rd.ReadSlice('\n'); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkEventLoopHandBack measures a connection going back and forth between the loop
// and its reader: a request answered in a handler, after which the reader keeps the
// connection; a request the reader answers, after which it hands the connection over; and
// one the loop answers. With "detached" the loop takes the socket out of Go's poller as it
// answers, and the reader makes a new net.Conn when the next request goes back to it: the
// difference is what that round trip costs (loopSock, detachAfter).
func BenchmarkEventLoopHandBack(b *testing.B) {
	for _, detach := range []bool{false, true} {
		b.Run(map[bool]string{false: "kept", true: "detached"}[detach], func(b *testing.B) {
			srv, _, addr := loopServerDetaching(b, true, detach, Options{})
			b.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
			c := handedOver(b, srv, addr)
			frames := [][]byte{[]byte(loopFrame("slow", 1) + "\n"), []byte(loopFrame("fast", 2) + "\n"), []byte(loopFrame("fast", 3) + "\n")}
			_ = c.conn.SetReadDeadline(time.Time{})
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			for range b.N {
				for _, frame := range frames {
					if _, err := c.conn.Write(frame); err != nil {
						b.Fatal(err)
					}
					if _, err := c.rd.ReadSlice('\n'); err != nil {
						b.Fatal(err)
					}
				}
			}
			reportCPU(b, cpu)
		})
	}
}
