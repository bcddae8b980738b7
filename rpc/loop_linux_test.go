//go:build !race

package rpc

import (
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// onEventLoop runs f with every server it makes serving TCP with the event loop.
func onEventLoop(t *testing.T, f func(t *testing.T)) {
	testEventLoop.Store(true)
	defer testEventLoop.Store(false)
	f(t)
}

// TestTCPOnEventLoop runs the TCP transport's tests with the event loop, the loop and the
// readers running in parallel: pipelining, too-large and stalled half requests, in-flight
// limits, clients that never read, idle timeouts, half closes, shutdowns.
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
		t.Run(name, func(t *testing.T) { onEventLoop(t, test) })
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
	onEventLoop(t, func(t *testing.T) {
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
