package rpc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"
)

// TestStdioEOFFinishesInFlight checks that EOF on input lets calls in flight finish and their replies be flushed before ServeStdio returns nil.
func TestStdioEOFFinishesInFlight(t *testing.T) {
	for _, framing := range []Framing{FramingNewline, FramingContentLength} {
		t.Run(framing.String(), func(t *testing.T) {
			ts := newTestServer(t, Options{})
			client := startStdio(t, ts.Server, framing)
			_ = client.Send([]byte(`{"jsonrpc":"2.0","method":"block","id":1}`))
			_ = client.Send([]byte(subtractFrame))
			ts.fake.waitEntered(t, 1)
			if got, _ := client.Recv(); string(got) != subtractReply {
				t.Fatalf("got %q", got)
			}
			_ = client.CloseSend()
			select {
			case err := <-client.done:
				t.Fatalf("ServeStdio returned %v with a call in flight", err)
			default:
			}
			ts.fake.releaseOne(t)
			if got, _ := client.Recv(); string(got) != `{"jsonrpc":"2.0","result":"released","id":1}` {
				t.Fatalf("got %q", got)
			}
			if err := client.wait(t); err != nil {
				t.Fatalf("ServeStdio: %v", err)
			}
			if got, err := client.Recv(); err != io.EOF {
				t.Fatalf("after return: %q, %v", got, err)
			}
		})
	}
}

// TestStdioEOFInsideMessage checks that input ending inside a message is an end of input like
// any other in both framings: the whole messages are answered, the cut one gets a parse error
// (id null), and ServeStdio returns nil; Content-Length framing also logs the cut as a warning.
func TestStdioEOFInsideMessage(t *testing.T) {
	const cutReply = `{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":{"reason":"badHeader","detail":"input ended inside a message"}},"id":null}`
	withHeader := func(body string) string { return fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body) }
	for _, tc := range []struct {
		name    string
		framing Framing
		input   string
		cut     string // the reply to the cut message
	}{
		{"newline", FramingNewline, subtractFrame + "\n" + `{"jsonrpc":"2.0","met`,
			`{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":{"reason":"invalidJson"}},"id":null}`},
		{"content-length body", FramingContentLength, withHeader(subtractFrame) + "Content-Length: 40\r\n\r\n{\"jsonrpc\":", cutReply},
		{"content-length headers", FramingContentLength, withHeader(subtractFrame) + "Content-Length: 40\r\n", cutReply},
		{"content-length over-long body", FramingContentLength, withHeader(subtractFrame) + "Content-Length: 900000000\r\n\r\n{", cutReply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, Options{})
			var out bytes.Buffer
			if err := ts.ServeStdio(context.Background(), strings.NewReader(tc.input), &out, tc.framing); err != nil {
				t.Fatalf("ServeStdio: %v, want nil", err)
			}
			client := &stdioClient{framing: tc.framing, out: bufio.NewReader(&out)}
			want := map[string]bool{subtractReply: true, tc.cut: true} // in any order
			for range len(want) {
				got, err := client.Recv()
				if !want[string(got)] {
					t.Fatalf("unexpected reply %q, %v; logs:\n%s", got, err, ts.logs.String())
				}
				delete(want, string(got))
			}
			if got, err := client.Recv(); err != io.EOF {
				t.Fatalf("after the replies: %q, %v", got, err)
			}
			warned := strings.Contains(ts.logs.String(), `level=WARN msg="rpc: input ended inside a message`)
			if warned != (tc.framing == FramingContentLength) {
				t.Errorf("warning logged: %v; logs:\n%s", warned, ts.logs.String())
			}
		})
	}
}

// TestStdioContextCancel checks that cancelling ServeStdio's context cancels the calls, flushes and returns the context's error.
func TestStdioContextCancel(t *testing.T) {
	ts := newTestServer(t, Options{})
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	defer inW.Close()
	defer outR.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.ServeStdio(ctx, inR, outW, FramingNewline) }()
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	_, _ = inW.Write([]byte(`{"jsonrpc":"2.0","method":"block","id":1}` + "\n"))
	ts.fake.waitEntered(t, 1)
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("ServeStdio: %v, want context.Canceled", err)
	}
}

// TestStdioForcedStopWritesNothingAfter checks that once a forced stop has made ServeStdio
// return, the calls it cancelled write nothing more to its output.
func TestStdioForcedStopWritesNothingAfter(t *testing.T) {
	ts := newTestServer(t, Options{})
	inR, inW := io.Pipe()
	defer inW.Close()
	out := &afterReturn{}
	done := make(chan error, 1)
	go func() { done <- ts.ServeStdio(context.Background(), inR, out, FramingNewline) }()
	_, _ = inW.Write([]byte(`{"jsonrpc":"2.0","method":"block","id":1}` + "\n"))
	ts.fake.waitEntered(t, 1)
	var c *conn
	waitConns(t, ts.Server, "the stdio connection", func(x *conn) bool { c = x; return true })
	if c == nil {
		t.Fatal("no stdio connection")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // forced at once
	_ = ts.Shutdown(ctx)
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ServeStdio: %v, want ErrServerClosed", err)
	}
	out.returned.Store(true)
	<-c.done // the cancelled call has ended and its reply was sent, or not
	if n := out.after.Load(); n != 0 {
		t.Errorf("%d writes after ServeStdio returned", n)
	}
}

// afterReturn is an output that counts the writes made once returned is set.
type afterReturn struct {
	returned atomic.Bool
	after    atomic.Int64
}

func (w *afterReturn) Write(p []byte) (int, error) {
	if w.returned.Load() {
		w.after.Add(1)
	}
	return len(p), nil
}

// TestStdioWriteFailure checks that ServeStdio returns the write error when nobody reads its output.
func TestStdioWriteFailure(t *testing.T) {
	ts := newTestServer(t, Options{})
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	defer inW.Close()
	outR.Close()
	done := make(chan error, 1)
	go func() { done <- ts.ServeStdio(context.Background(), inR, outW, FramingNewline) }()
	_, _ = inW.Write([]byte(subtractFrame + "\n"))
	if err := <-done; !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("ServeStdio: %v, want io.ErrClosedPipe", err)
	}
}

// TestStdioContentLengthResync checks that Content-Length framing answers a bad header and a bad body, then serves the next message.
func TestStdioContentLengthResync(t *testing.T) {
	ts := newTestServer(t, Options{})
	client := startStdio(t, ts.Server, FramingContentLength)
	_, _ = client.in.Write([]byte("Content-Lenght: 5\r\n\r\n"))
	_ = client.Send([]byte(`{"jsonrpc":`))
	_ = client.Send([]byte(subtractFrame))
	want := map[string]bool{ // replies come in any order
		`{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":{"reason":"badHeader","detail":"missing Content-Length"}},"id":null}`: true,
		`{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":{"reason":"invalidJson"}},"id":null}`:                                 true,
		subtractReply: true,
	}
	for range len(want) {
		got, err := client.Recv()
		if !want[string(got)] {
			t.Fatalf("unexpected reply %s, %v", got, err)
		}
		delete(want, string(got))
	}
}

// TestStdioSourcegraphClient checks interoperability with github.com/sourcegraph/jsonrpc2's Conn using its VS Code (Content-Length) codec.
func TestStdioSourcegraphClient(t *testing.T) {
	ts := newTestServer(t, Options{})
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	go func() { _ = ts.ServeStdio(context.Background(), inR, outW, FramingContentLength) }()
	ctx := context.Background()
	stream := jsonrpc2.NewBufferedStream(pipeConn{outR, inW}, jsonrpc2.VSCodeObjectCodec{})
	client := jsonrpc2.NewConn(ctx, stream, nil)
	defer client.Close()

	var result int
	if err := client.Call(ctx, "sum", []int{1, 2, 4}, &result); err != nil || result != 7 {
		t.Fatalf("sum: %d, %v", result, err)
	}
	var rpcErr *jsonrpc2.Error
	if err := client.Call(ctx, "foobar", nil, &result); !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc2.CodeMethodNotFound {
		t.Fatalf("foobar: %v", err)
	}
}

// pipeConn joins the two pipe ends a client uses into one connection.
type pipeConn struct {
	*io.PipeReader
	*io.PipeWriter
}

func (p pipeConn) Close() error {
	p.PipeReader.Close()
	return p.PipeWriter.Close()
}

// refusedReply is the reply to a request refused during a shutdown, with id.
func refusedReply(id string) string {
	return `{"jsonrpc":"2.0","error":{"code":-32000,"message":"Server unavailable","data":{"reason":"shuttingDown"}},"id":` + id + `}`
}

// The requests the shutdown tests send behind their calls: three refused (4, the batch with
// id null, "x"), a notification among them that gets nothing, and one (6) beyond
// MaxInFlightPerConn 3, which is not answered.
var (
	unreadBehind = []string{
		`{"jsonrpc":"2.0","method":"subtract","params":[5,1],"id":4}`,
		`{"jsonrpc":"2.0","method":"notify_hello","params":[7]}`,
		`[{"jsonrpc":"2.0","method":"subtract","params":[5,1],"id":5}]`,
		`{"jsonrpc":"2.0","method":"subtract","params":[5,1],"id":"x"}`,
		`{"jsonrpc":"2.0","method":"subtract","params":[5,1],"id":6}`,
	}
	unreadRefused = []string{refusedReply("4"), refusedReply("null"), refusedReply(`"x"`)}
)

// TestStdioShutdownRefusesUnread checks, in both framings, with input that takes a read
// deadline (an OS pipe), one that takes none (io.Pipe) and one that ignores it (an OS pipe in
// blocking mode), that Shutdown answers the calls in flight, then refuses the requests behind
// them with shuttingDown and their ids, up to MaxInFlightPerConn, whether they were read
// before the stop or sent after it.
func TestStdioShutdownRefusesUnread(t *testing.T) {
	blocks := []string{
		`{"jsonrpc":"2.0","method":"block","id":1}`,
		`{"jsonrpc":"2.0","method":"block","id":2}`,
		`{"jsonrpc":"2.0","method":"block","id":3}`,
	}
	for _, framing := range []Framing{FramingNewline, FramingContentLength} {
		for _, tc := range []struct {
			name       string
			pipes      string // "os", "io" (reads take no deadline), "blocking" (OS pipes that ignore it)
			readBehind bool   // the requests are read behind the calls, the reader waiting for a slot; else sent after the stop
		}{
			{"read behind the calls", "os", true},
			{"sent after the stop", "os", false},
			{"read behind the calls, no read deadline", "io", true},
			{"sent after the stop, no read deadline", "io", false}, // to the Read left waiting
			{"read behind the calls, deadline ignored", "blocking", true},
			{"sent after the stop, deadline ignored", "blocking", false},
		} {
			t.Run(framing.String()+"/"+tc.name, func(t *testing.T) {
				ts := newTestServer(t, Options{MaxInFlightPerConn: 3})
				blocked := make(chan struct{}, 1)
				ts.hookReaderBlocked = func() {
					select {
					case blocked <- struct{}{}:
					default:
					}
				}
				var client *stdioClient
				if tc.pipes == "io" {
					client = startStdio(t, ts.Server, framing)
				} else {
					client = startStdioFiles(t, ts.Server, framing, tc.pipes == "blocking")
				}
				if tc.readBehind {
					_ = client.sendAll(append(slices.Clone(blocks), unreadBehind...)...)
					<-blocked // request 4 is read and waits for a slot
				} else {
					_ = client.sendAll(blocks...)
				}
				ts.fake.waitEntered(t, len(blocks))
				shutdown := make(chan error, 1)
				go func() { shutdown <- ts.Shutdown(context.Background()) }()
				waitConns(t, ts.Server, "stop", func(c *conn) bool { return c.stopping.Load() })
				if !tc.readBehind {
					_ = client.sendAll(unreadBehind...)
				}
				for range blocks {
					ts.fake.releaseOne(t)
				}

				results := map[string]bool{}
				for id := 1; id <= len(blocks); id++ {
					results[fmt.Sprintf(`{"jsonrpc":"2.0","result":"released","id":%d}`, id)] = true
				}
				for range blocks { // in any order
					if got, err := client.Recv(); err != nil || !results[string(got)] {
						t.Fatalf("a call in flight: %q, %v; want its result", got, err)
					} else {
						delete(results, string(got))
					}
				}
				for _, want := range unreadRefused {
					if got, err := client.Recv(); err != nil || string(got) != want {
						t.Fatalf("got %q, %v; want %s", got, err, want)
					}
				}
				if got, err := client.Recv(); err != io.EOF {
					t.Fatalf("after the refusals: %q, %v; want EOF", got, err)
				}
				if err := <-shutdown; err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
				if err := client.wait(t); err != ErrServerClosed {
					t.Fatalf("ServeStdio: %v, want ErrServerClosed", err)
				}
			})
		}
	}
}

// TestStdioShutdownRefusesDuringGrace checks, in both framings, with input that takes a read
// deadline, one that takes none and one that ignores it, that a request sent once the calls in
// flight are answered, within the grace, is refused too, and that the input is not read
// further when it cannot be given a deadline.
func TestStdioShutdownRefusesDuringGrace(t *testing.T) {
	for _, framing := range []Framing{FramingNewline, FramingContentLength} {
		for _, pipes := range []string{"os", "io", "blocking"} { // as in TestStdioShutdownRefusesUnread
			t.Run(framing.String()+"/"+pipes, func(t *testing.T) {
				ts := newTestServer(t, Options{})
				ts.unreadGrace = time.Second // instead of 10 ms: the test writes after a round trip
				var client *stdioClient
				if pipes == "io" {
					client = startStdio(t, ts.Server, framing)
				} else {
					client = startStdioFiles(t, ts.Server, framing, pipes == "blocking")
				}
				_ = client.Send([]byte(`{"jsonrpc":"2.0","method":"block","id":1}`))
				ts.fake.waitEntered(t, 1)
				shutdown := make(chan error, 1)
				go func() { shutdown <- ts.Shutdown(context.Background()) }()
				waitConns(t, ts.Server, "stop", func(c *conn) bool { return c.stopping.Load() })
				ts.fake.releaseOne(t)
				if got, err := client.Recv(); err != nil || string(got) != `{"jsonrpc":"2.0","result":"released","id":1}` {
					t.Fatalf("the call in flight: %q, %v", got, err)
				}
				_ = client.Send([]byte(`{"jsonrpc":"2.0","method":"subtract","params":[5,1],"id":2}`))
				got, err := client.Recv()
				switch {
				case pipes == "blocking" && err == io.EOF:
					// The stop found the reader between two reads: a blocking input gets no
					// Read after it, so a request sent then is not read (ServeStdio's doc).
				case err != nil || string(got) != refusedReply("2"):
					t.Fatalf("a request sent after the reply: %q, %v; want %s", got, err, refusedReply("2"))
				default:
					if got, err := client.Recv(); err != io.EOF {
						t.Fatalf("after the refusal: %q, %v; want EOF", got, err)
					}
				}
				if err := <-shutdown; err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
			})
		}
	}
}

// TestStdioShutdownStuckOutput checks that refusals to a client that has stopped reading its
// output hold Shutdown up for about the grace and refusalWriteTimeout only, whether the output
// takes no write deadline (the write is left behind) or takes one (the write is over, and
// the deadline taken off again, before ServeStdio returns).
func TestStdioShutdownStuckOutput(t *testing.T) {
	for _, deadline := range []bool{false, true} {
		t.Run(fmt.Sprintf("deadline=%v", deadline), func(t *testing.T) { testStdioShutdownStuckOutput(t, deadline) })
	}
}

func testStdioShutdownStuckOutput(t *testing.T, deadline bool) {
	ts := newTestServer(t, Options{})
	inR, inW := osPipe(t)
	stuck := &stuckWriter{stuck: make(chan struct{}), replied: make(chan struct{})}
	defer close(stuck.stuck)
	var out io.Writer = stuck
	if deadline {
		out = &deadlineWriter{stuckWriter: stuck}
	}
	served := make(chan error, 1)
	go func() { served <- ts.ServeStdio(context.Background(), inR, out, FramingNewline) }()
	_, _ = inW.Write([]byte(`{"jsonrpc":"2.0","method":"block","id":1}` + "\n"))
	ts.fake.waitEntered(t, 1)
	start := time.Now()
	shutdown := make(chan error, 1)
	go func() { shutdown <- ts.Shutdown(context.Background()) }()
	waitConns(t, ts.Server, "stop", func(c *conn) bool { return c.stopping.Load() })
	_, _ = inW.Write([]byte(subtractFrame + "\n")) // to be refused
	ts.fake.releaseOne(t)
	<-stuck.replied
	select {
	case err := <-shutdown:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown waits for a client that does not read")
	}
	elapsed := time.Since(start)
	if err := <-served; err != ErrServerClosed {
		t.Fatalf("ServeStdio: %v, want ErrServerClosed", err)
	}
	if d, ok := out.(*deadlineWriter); ok {
		if n, set := d.busy.Load(), d.deadline.Load(); n != 0 || set != nil {
			t.Errorf("ServeStdio returned with %d writes in progress and the deadline %v set", n, set)
		}
	}
	if stuck.writes.Load() != 2 {
		t.Fatalf("%d writes, want the reply's and the refusal's", stuck.writes.Load())
	}
	if limit := ts.unreadGrace + refusalWriteTimeout + 1500*time.Millisecond; elapsed > limit {
		t.Errorf("Shutdown took %v, want under %v", elapsed, limit)
	}
	t.Logf("Shutdown took %v", elapsed)
}

// stuckWriter takes its first write (closing replied), and blocks every later one until
// stuck is closed: a client that reads one reply, then stops reading.
type stuckWriter struct {
	writes  atomic.Int32
	stuck   chan struct{}
	replied chan struct{}
}

func (w *stuckWriter) Write(p []byte) (int, error) {
	if w.writes.Add(1) == 1 {
		close(w.replied)
		return len(p), nil
	}
	<-w.stuck
	return 0, io.ErrClosedPipe
}

// deadlineWriter is a stuckWriter that takes a write deadline, and ends a blocked write a
// little after it, as Go's poller does; busy counts the writes in progress.
type deadlineWriter struct {
	*stuckWriter
	busy     atomic.Int32
	deadline atomic.Pointer[time.Time] // nil: none
}

func (w *deadlineWriter) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		w.deadline.Store(nil)
	} else {
		w.deadline.Store(&t)
	}
	return nil
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.busy.Add(1)
	defer w.busy.Add(-1)
	if w.stuckWriter.writes.Load() == 0 {
		return w.stuckWriter.Write(p)
	}
	w.stuckWriter.writes.Add(1)
	for {
		select {
		case <-w.stuck:
			return 0, io.ErrClosedPipe
		case <-time.After(time.Millisecond):
		}
		if d := w.deadline.Load(); d != nil && time.Since(*d) > 5*time.Millisecond {
			return 0, os.ErrDeadlineExceeded
		}
	}
}
