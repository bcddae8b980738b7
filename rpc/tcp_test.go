package rpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"
)

const subtractFrame = `{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}`
const subtractReply = `{"jsonrpc":"2.0","result":19,"id":1}`

// connDone returns a channel that receives every connection the server finishes.
func (ts *testServer) connDone() <-chan *conn {
	ch := make(chan *conn, 64)
	ts.hookConnDone = func(c *conn) { ch <- c }
	return ch
}

// waitConnDone waits for the server to finish a connection.
func waitConnDone(t testing.TB, ch <-chan *conn) *conn {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(clientTimeout):
		t.Fatal("the server did not close the connection")
		return nil
	}
}

// expectClosed checks that the server closes the client's connection (after any replies).
func expectClosed(t testing.TB, c *tcpClient) {
	t.Helper()
	for {
		_, err := c.Recv()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server did not close the connection")
		}
		return
	}
}

// TestTCPPipelining checks that pipelined requests run concurrently and a fast reply overtakes a slow one.
func TestTCPPipelining(t *testing.T) {
	ts := newTestServer(t, Options{})
	client := dialTCP(t, ts.listenTCP(t))
	_ = client.Send([]byte(`{"jsonrpc":"2.0","method":"block","id":"slow"}` + "\n" + subtractFrame))
	ts.fake.waitEntered(t, 1)
	if got, _ := client.Recv(); string(got) != subtractReply {
		t.Fatalf("first reply %q, want the fast one", got)
	}
	ts.fake.releaseOne(t)
	if got, _ := client.Recv(); string(got) != `{"jsonrpc":"2.0","result":"released","id":"slow"}` {
		t.Fatalf("second reply %q", got)
	}
}

// TestTCPManyPipelined checks that a thousand requests written at once all get their reply.
func TestTCPManyPipelined(t *testing.T) {
	ts := newTestServer(t, Options{MaxInFlightPerConn: 8})
	client := dialTCP(t, ts.listenTCP(t))
	const n = 1000
	go func() {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `{"jsonrpc":"2.0","method":"subtract","params":[%d,1],"id":%d}`+"\n", i+1, i)
		}
		_ = client.Send([]byte(strings.TrimSuffix(b.String(), "\n")))
	}()
	seen := make(map[int]bool)
	for range n {
		reply, err := client.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ Result, ID int }
		if err := json.Unmarshal(reply, &r); err != nil || r.Result != r.ID {
			t.Fatalf("reply %s", reply)
		}
		seen[r.ID] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct replies", len(seen))
	}
}

// TestTCPRequestTooLarge checks that an over-long line is answered with requestTooLarge and the connection goes on.
func TestTCPRequestTooLarge(t *testing.T) {
	ts := newTestServer(t, Options{MaxRequestBytes: 1024})
	client := dialTCP(t, ts.listenTCP(t))
	padded := `{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1` + strings.Repeat(" ", 1024-len(subtractFrame)) + `}`
	if got := client.call(t, padded); got != subtractReply {
		t.Fatalf("request of exactly the limit: %s", got)
	}
	go func() { _ = client.Send([]byte(strings.Repeat("x", 4<<20))) }()
	want := `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"reason":"requestTooLarge","limit":1024}},"id":null}`
	if got, err := client.Recv(); string(got) != want {
		t.Fatalf("over-long line: %s, %v", got, err)
	}
	if got := client.call(t, subtractFrame); got != subtractReply {
		t.Fatalf("after: %s", got)
	}
	// An over-long request whose id comes before its params is answered with that id, so a
	// client with calls in flight knows which one it was: from a line held whole, and from
	// the start of one too long to hold.
	for _, size := range []int{1100, 4 << 20} {
		go func() {
			_ = client.Send([]byte(`{"jsonrpc":"2.0","id":"big-7","method":"subtract","params":["` + strings.Repeat("x", size) + `"]}`))
		}()
		want := `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"reason":"requestTooLarge","limit":1024}},"id":"big-7"}`
		if got, err := client.Recv(); string(got) != want {
			t.Fatalf("over-long request of %d bytes with its id first: %s, %v", size, got, err)
		}
	}
}

// TestLeadingID checks which ids of a request's start leadingID reads: a string, number or
// null id that comes whole before any member cut off, and nothing else.
func TestLeadingID(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{`{"jsonrpc":"2.0","id":7,"method":"m","params":["xxx`, `7`},
		{` { "id" : "a\"b" , "params": [`, `"a\"b"`},
		{`{"jsonrpc":"2.0","method":"m","params":{"x":[1,{"id":2}]},"id":-3.5}`, `-3.5`},
		{`{"id":null,"params":[`, `null`},
		{`{"jsonrpc":"2.0","params":["xxx`, ``}, // cut off before the id
		{`{"id":{"a":1},"params":[1]}`, ``},     // not a valid id
		{`{"id":[1],"params":[1]}`, ``},         // not a valid id
		{`{"id:":1,"params":[`, ``},             // another member
		{`{"id":12`, ``},                        // the id itself may be cut off
		{`[{"id":1}]`, ``},                      // a batch
		{`{"id":1,"id":2,"params":[`, ``},       // given twice: a whole request would be answered with null
		{`{"\u0069d":5,"params":[`, `5`},        // an escaped name
		{`not json`, ``},
	} {
		if got := string(leadingID([]byte(tc.data))); got != tc.want {
			t.Errorf("leadingID(%s) = %q, want %q", tc.data, got, tc.want)
		}
	}
}

// TestRefusalID checks how a frame read during a shutdown is refused: with its id, with null
// when its id cannot be read or it is a batch, and not at all when blank or a notification.
func TestRefusalID(t *testing.T) {
	const none = "-" // no reply
	for _, tc := range []struct{ frame, want string }{
		{`{"jsonrpc":"2.0","method":"m","params":{"id":2},"id":"x"}`, `"x"`},
		{`{"jsonrpc":"2.0","method":"m","id":null}`, `null`},
		{`{"jsonrpc":"2.0","method":"m","params":[1]}`, none}, // a notification
		{`  `, none},
		{`[{"jsonrpc":"2.0","method":"m","id":1}]`, `null`}, // a batch
		{`{"jsonrpc":"2.0","method":"m","id":1,"id":2}`, `null`},
		{`{"jsonrpc":"2.0","method":"m","params":[1`, `null`}, // not JSON
		{`{}`, `null`},
		{`not json`, `null`},
	} {
		id, answer := refusalID([]byte(tc.frame))
		got := none
		if answer {
			got = string(id)
			if id == nil {
				got = "null"
			}
		}
		if got != tc.want {
			t.Errorf("refusalID(%s) = %s, want %s", tc.frame, got, tc.want)
		}
	}
}

// TestTCPMaxConnections checks that a connection over the limit gets one error line and is closed, and a slot frees when a client leaves.
func TestTCPMaxConnections(t *testing.T) {
	ts := newTestServer(t, Options{MaxConnections: 2})
	done := ts.connDone()
	addr := ts.listenTCP(t)
	first, second := dialTCP(t, addr), dialTCP(t, addr)
	for _, c := range []*tcpClient{first, second} {
		if got := c.call(t, subtractFrame); got != subtractReply {
			t.Fatal(got)
		}
	}
	extra := dialTCP(t, addr)
	_ = extra.Send([]byte(subtractFrame)) // the refusal must survive unread input
	want := `{"jsonrpc":"2.0","error":{"code":-32000,"message":"Server unavailable","data":{"reason":"tooManyConnections","limit":2}},"id":null}`
	if got, err := extra.Recv(); string(got) != want {
		t.Fatalf("extra connection: %q, %v", got, err)
	}
	if got, err := extra.Recv(); err != io.EOF {
		t.Fatalf("extra connection after the error: %q, %v", got, err)
	}
	first.conn.Close()
	waitConnDone(t, done)
	if got := dialTCP(t, addr).call(t, subtractFrame); got != subtractReply {
		t.Fatalf("after a slot freed: %s", got)
	}
}

// TestTCPInFlightBackpressure checks that a connection with MaxInFlightPerConn calls running is not read further until one reply is written.
func TestTCPInFlightBackpressure(t *testing.T) {
	ts := newTestServer(t, Options{MaxInFlightPerConn: 2})
	blocked := make(chan struct{}, 16)
	ts.hookReaderBlocked = func() { blocked <- struct{}{} }
	client := dialTCP(t, ts.listenTCP(t))
	_ = client.Send([]byte(strings.Repeat(`{"jsonrpc":"2.0","method":"block","id":1}`+"\n", 2) + subtractFrame))
	ts.fake.waitEntered(t, 2)
	select {
	case <-blocked:
	case <-time.After(clientTimeout):
		t.Fatal("the reader did not wait for a slot")
	}
	if n := ts.fake.calls.Load(); n != 2 {
		t.Fatalf("%d calls dispatched while the reader waits, want 2", n)
	}
	ts.fake.releaseOne(t)
	want := map[string]bool{`{"jsonrpc":"2.0","result":"released","id":1}`: true, subtractReply: true}
	for range 2 {
		got, err := client.Recv()
		if err != nil || !want[string(got)] {
			t.Fatalf("reply %q, %v", got, err)
		}
		delete(want, string(got))
	}
	ts.fake.releaseOne(t)
	if got, _ := client.Recv(); string(got) != `{"jsonrpc":"2.0","result":"released","id":1}` {
		t.Fatalf("last reply %q", got)
	}
}

// TestTCPStalledHalfRequest checks that a client that sends half a request and stalls gets a
// -32700 incompleteRequest line after RequestReadTimeout and is dropped, its earlier request
// answered, without holding up another client.
func TestTCPStalledHalfRequest(t *testing.T) {
	ts := newTestServer(t, Options{RequestReadTimeout: 200 * time.Millisecond, ReadIdleTimeout: time.Minute})
	addr := ts.listenTCP(t)
	stalled := dialTCP(t, addr)
	if _, err := stalled.conn.Write([]byte(subtractFrame + "\n" + `{"jsonrpc":"2.0","method":"sub`)); err != nil {
		t.Fatal(err)
	}
	other := dialTCP(t, addr)
	if got := other.call(t, subtractFrame); got != subtractReply {
		t.Fatalf("other client: %s", got)
	}
	start := time.Now()
	for _, want := range []string{subtractReply,
		`{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":{"reason":"incompleteRequest"}},"id":null}`} {
		if got, err := stalled.Recv(); string(got) != want {
			t.Fatalf("stalled client got %q (%v), want %s", got, err, want)
		}
	}
	expectClosed(t, stalled)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("dropped after %v", elapsed)
	}
	if got := other.call(t, subtractFrame); got != subtractReply {
		t.Fatalf("other client after: %s", got)
	}
}

// TestTCPSlowButSteadyClient checks that a request trickling in faster than RequestReadTimeout per whole frame is served, and frames do not share one deadline.
func TestTCPSlowButSteadyClient(t *testing.T) {
	ts := newTestServer(t, Options{RequestReadTimeout: 300 * time.Millisecond})
	client := dialTCP(t, ts.listenTCP(t))
	for range 3 {
		half := len(subtractFrame) / 2
		_, _ = client.conn.Write([]byte(subtractFrame[:half]))
		time.Sleep(150 * time.Millisecond) // time passing is what is tested
		if got := client.call(t, subtractFrame[half:]); got != subtractReply {
			t.Fatalf("got %s", got)
		}
	}
}

// TestTCPNeverReadingClient checks that a client that never reads its replies is dropped after WriteTimeout without holding up another client.
func TestTCPNeverReadingClient(t *testing.T) {
	ts := newTestServer(t, Options{WriteTimeout: 200 * time.Millisecond})
	done := ts.connDone()
	addr := ts.listenTCP(t)
	deaf := dialTCP(t, addr)
	_ = deaf.conn.(*net.TCPConn).SetReadBuffer(4096)
	_ = deaf.Send([]byte(strings.Repeat(`{"jsonrpc":"2.0","method":"big","params":[1048576],"id":1}`+"\n", 16)))

	other := dialTCP(t, addr)
	if got := other.call(t, subtractFrame); got != subtractReply {
		t.Fatalf("other client: %s", got)
	}
	c := waitConnDone(t, done)
	var ne net.Error
	if !errors.As(c.writeErr, &ne) || !ne.Timeout() {
		t.Fatalf("connection ended with write error %v, want a timeout", c.writeErr)
	}
	if got := other.call(t, subtractFrame); got != subtractReply {
		t.Fatalf("other client after: %s", got)
	}
}

// TestTCPIdleTimeout checks that an idle connection is closed after ReadIdleTimeout but one with a call in flight is not.
func TestTCPIdleTimeout(t *testing.T) {
	const idle = 150 * time.Millisecond
	ts := newTestServer(t, Options{ReadIdleTimeout: idle})
	addr := ts.listenTCP(t)

	busy := dialTCP(t, addr)
	_ = busy.Send([]byte(`{"jsonrpc":"2.0","method":"block","id":1}`))
	ts.fake.waitEntered(t, 1)
	time.Sleep(3 * idle) // the call outlives several idle periods
	ts.fake.releaseOne(t)
	if got, err := busy.Recv(); err != nil || string(got) != `{"jsonrpc":"2.0","result":"released","id":1}` {
		t.Fatalf("busy connection: %q, %v", got, err)
	}
	start := time.Now()
	expectClosed(t, busy)
	if elapsed := time.Since(start); elapsed < idle/2 {
		t.Errorf("closed %v after the last reply, want about %v", elapsed, idle)
	}
}

// TestTCPClientHalfClose checks that a client that sends requests and closes its side still gets every reply.
func TestTCPClientHalfClose(t *testing.T) {
	ts := newTestServer(t, Options{})
	client := dialTCP(t, ts.listenTCP(t))
	_ = client.Send([]byte(`{"jsonrpc":"2.0","method":"block","id":1}` + "\n" + subtractFrame))
	_ = client.CloseSend()
	ts.fake.waitEntered(t, 1)
	if got, _ := client.Recv(); string(got) != subtractReply {
		t.Fatalf("got %q", got)
	}
	ts.fake.releaseOne(t)
	if got, _ := client.Recv(); string(got) != `{"jsonrpc":"2.0","result":"released","id":1}` {
		t.Fatalf("got %q", got)
	}
	expectClosed(t, client)
}

// TestTCPSourcegraphClient checks interoperability with github.com/sourcegraph/jsonrpc2's Conn as a client.
func TestTCPSourcegraphClient(t *testing.T) {
	ts := newTestServer(t, Options{})
	nc, err := net.Dial("tcp", ts.listenTCP(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	client := jsonrpc2.NewConn(ctx, jsonrpc2.NewPlainObjectStream(nc), nil)
	defer client.Close()

	var result int
	if err := client.Call(ctx, "subtract", []int{42, 23}, &result); err != nil || result != 19 {
		t.Fatalf("subtract: %d, %v", result, err)
	}
	if err := client.Call(ctx, "subtract", map[string]int{"minuend": 42, "subtrahend": 23}, &result, jsonrpc2.StringID()); err != nil || result != 19 {
		t.Fatalf("subtract with a string id: %d, %v", result, err)
	}
	err = client.Call(ctx, "foobar", nil, &result)
	var rpcErr *jsonrpc2.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc2.CodeMethodNotFound {
		t.Fatalf("foobar: %v", err)
	}
	if err := client.Notify(ctx, "notify_hello", []int{7}); err != nil {
		t.Fatal(err)
	}
	var data []any
	if err := client.Call(ctx, "get_data", nil, &data); err != nil || len(data) != 2 {
		t.Fatalf("get_data: %v, %v", data, err)
	}
}

// BenchmarkTCPRoundTrip measures one client doing request, reply, request, reply over loopback TCP; allocations count both sides.
func BenchmarkTCPRoundTrip(b *testing.B) {
	ts := newTestServer(b, Options{Logger: slog.New(slog.DiscardHandler)})
	client := dialTCP(b, ts.listenTCP(b))
	benchRoundTrip(b, client.conn)
}

// BenchmarkPipeRoundTrip measures the same round trip over net.Pipe, without the kernel.
func BenchmarkPipeRoundTrip(b *testing.B) {
	ts := newTestServer(b, Options{Logger: slog.New(slog.DiscardHandler)})
	clientEnd, serverEnd := net.Pipe()
	ts.startTCP(serverEnd)
	defer clientEnd.Close()
	benchRoundTrip(b, clientEnd)
}

func benchRoundTrip(b *testing.B, conn net.Conn) {
	rd := bufio.NewReader(conn)
	request := []byte(subtractFrame + "\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := conn.Write(request); err != nil {
			b.Fatal(err)
		}
		if _, err := rd.ReadSlice('\n'); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTCPPipelined measures throughput of one connection with requests written ahead of replies.
func BenchmarkTCPPipelined(b *testing.B) {
	ts := newTestServer(b, Options{Logger: slog.New(slog.DiscardHandler)})
	client := dialTCP(b, ts.listenTCP(b))
	b.ReportAllocs()
	n := b.N
	go func() {
		w := bufio.NewWriter(client.conn)
		for range n {
			_, _ = w.WriteString(subtractFrame + "\n")
		}
		_ = w.Flush()
	}()
	for range n {
		if _, err := client.rd.ReadSlice('\n'); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTCPParallel measures 50 clients, one connection each, no pipelining, like redis-benchmark's default.
func BenchmarkTCPParallel(b *testing.B) {
	ts := newTestServer(b, Options{Logger: slog.New(slog.DiscardHandler)})
	addr := ts.listenTCP(b)
	var mu sync.Mutex
	b.ReportAllocs()
	b.SetParallelism(max(1, 50/max(1, runtime.GOMAXPROCS(0))))
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		client := dialTCP(b, addr)
		mu.Unlock()
		request := []byte(subtractFrame + "\n")
		for pb.Next() {
			if _, err := client.conn.Write(request); err != nil {
				b.Error(err)
				return
			}
			if _, err := client.rd.ReadSlice('\n'); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestTCPShutdownSlowReaderStillSending checks that Shutdown delivers every reply to a client
// that keeps sending and reads its replies slowly, more than a second's worth behind: closing
// with its input unread would reset the connection and throw away what it has not read yet.
func TestTCPShutdownSlowReaderStillSending(t *testing.T) {
	ts := newTestServer(t, Options{MaxInFlightPerConn: 40})
	nc, err := net.Dial("tcp", ts.listenTCP(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// A small receive buffer keeps the replies the client has not read in the server's send
	// queue, where closing with a reset would discard them.
	if err := nc.(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	const request = `{"jsonrpc":"2.0","method":"big","params":[200000],"id":1}` + "\n"
	stopWriting := make(chan struct{})
	var writer sync.WaitGroup
	writer.Go(func() {
		batch := strings.Repeat(request, 16)
		for {
			select {
			case <-stopWriting:
				return
			default:
			}
			_ = nc.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			_, _ = nc.Write([]byte(batch)) // a timeout only means the server reads no more
		}
	})
	defer func() { close(stopWriting); writer.Wait() }()

	r := bufio.NewReaderSize(nc, 1<<20)
	readReply := func() ([]byte, error) {
		_ = nc.SetReadDeadline(time.Now().Add(clientTimeout))
		return r.ReadBytes('\n')
	}
	if _, err := readReply(); err != nil { // the load is under way
		t.Fatal(err)
	}
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shutdown <- ts.Shutdown(ctx)
	}()
	replies, refusals := 1, 0
	for {
		if refusals == 0 {
			time.Sleep(100 * time.Millisecond) // a slow reader: what is queued takes seconds to read
		}
		line, err := readReply()
		if err == io.EOF && len(line) == 0 {
			break
		}
		if err != nil {
			t.Fatalf("after %d whole replies: %v (a reply cut after %d bytes)", replies, err, len(line))
		}
		switch {
		case refusals == 0 && strings.HasPrefix(string(line), `{"jsonrpc":"2.0","result":"xxx`):
			replies++
		case strings.Contains(string(line), `"shuttingDown"`) && strings.HasSuffix(string(line), `"id":1}`+"\n"):
			refusals++ // a request read after the calls in flight: not run
		default:
			t.Fatalf("after %d replies and %d refusals: %.60q", replies, refusals, line)
		}
	}
	if refusals > ts.opts.MaxInFlightPerConn {
		t.Errorf("%d requests refused, want at most %d", refusals, ts.opts.MaxInFlightPerConn)
	}
	if err := <-shutdown; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	t.Logf("%d replies of 200 kB, all whole, read one every 100 ms; %d requests refused", replies, refusals)
}

// TestTCPRefusalsBounded checks that at most so many connections over the limit are being
// told so at once, each for up to lingerGrace: the ones beyond are closed without the error
// line, so refused clients cannot hold descriptors as fast as they connect.
func TestTCPRefusalsBounded(t *testing.T) {
	const maxRefusing = 64 // instead of 4,096
	ts := newTestServer(t, Options{MaxConnections: 1})
	ts.refusing = make(chan struct{}, maxRefusing)
	addr := ts.listenTCP(t)
	if got := dialTCP(t, addr).call(t, subtractFrame); got != subtractReply {
		t.Fatal(got)
	}
	const extra = maxRefusing + 16
	clients := make([]*tcpClient, extra)
	for i := range clients {
		clients[i] = dialTCP(t, addr) // none reads yet, so every refusal lingers
	}
	told := 0
	for _, c := range clients {
		_ = c.conn.SetReadDeadline(time.Now().Add(clientTimeout))
		if got, _ := c.Recv(); bytes.Contains(got, []byte("tooManyConnections")) {
			told++
		}
	}
	if told == 0 || told > maxRefusing {
		t.Errorf("%d of %d refused connections got the error line, want 1 to %d", told, extra, maxRefusing)
	}
}

// TestRefusalsLoggedOnceASecond checks that connections refused over MaxConnections, TCP and
// HTTP, are logged one line a second at most: the first at once, those of the second after it
// held back and logged at its end in one line that counts them.
func TestRefusalsLoggedOnceASecond(t *testing.T) {
	ts := newTestServer(t, Options{MaxConnections: 1})
	tcpAddr := ts.listenTCP(t)
	httpAddr := strings.TrimSuffix(strings.TrimPrefix(ts.listenHTTP(t), "http://"), "/")
	if got := dialTCP(t, tcpAddr).call(t, subtractFrame); got != subtractReply {
		t.Fatal(got)
	}
	kept, err := net.Dial("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	if code, _ := postOnConn(t, kept, bufio.NewReader(kept), subtractFrame); code != http.StatusOK {
		t.Fatalf("the HTTP connection within the limit: %d", code)
	}
	refused := func(addr, request string) {
		t.Helper()
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(clientTimeout))
		_, _ = nc.Write([]byte(request)) // the refusal may have come already
		if reply, err := io.ReadAll(nc); err != nil || !bytes.Contains(reply, []byte("tooManyConnections")) {
			t.Fatalf("a connection over the limit: %q, %v", reply, err)
		}
	}
	lines := func() []string {
		var out []string
		for line := range strings.Lines(ts.logs.String()) {
			if strings.Contains(line, "rpc: refusing connection") {
				out = append(out, line)
			}
		}
		return out
	}
	const httpRequest = "POST / HTTP/1.1\r\nHost: sessiond\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	refused(tcpAddr, subtractFrame+"\n")
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "transport=tcp") {
		t.Fatalf("the first refusal logged %q, want one line at once", got)
	}
	ts.mu.Lock()
	ts.refusalLogged = time.Now().Add(time.Hour) // however long the refusals below take, within the second
	ts.mu.Unlock()
	for range 10 {
		refused(tcpAddr, subtractFrame+"\n")
		refused(httpAddr, httpRequest)
	}
	if got := lines(); len(got) != 1 {
		t.Fatalf("20 refusals within the second logged %d lines, want them held back: %q", len(got), got)
	}
	ts.mu.Lock()
	pending := ts.refusalFlush != nil
	ts.mu.Unlock()
	if !pending {
		t.Fatal("no flush of the held-back refusals is due")
	}
	ts.flushRefusals() // as its timer does at the end of the second
	got := lines()
	if len(got) != 2 || !strings.Contains(got[1], "transport=http") || !strings.Contains(got[1], `tooManyConnections`) ||
		!strings.Contains(got[1], "refusedInTheLastSecond=20") {
		t.Fatalf("the held-back refusals logged %q, want a second line naming the last and counting 20", got)
	}
}
