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
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/memstore"
	"github.com/sessiond/sessiond/internal/syncbuf"
)

// ---------------------------------------------------------------------------------------
// A fake dispatcher with the methods of the JSON-RPC 2.0 specification's examples and a few
// for testing the server itself.

type fakeDispatcher struct {
	entered chan string   // a "block" call started (buffered)
	release chan struct{} // each receive lets one "block" call return
	calls   atomic.Int64
	last    atomic.Pointer[Call]
}

// quickFake is the fakeDispatcher with its methods that only compute (and the one that
// panics) quick and never waiting: the TCP tests run with the event loop answering them
// (TestTCPOnEventLoop).
type quickFake struct{ *fakeDispatcher }

func (quickFake) Quick(method string) bool {
	switch method {
	case "subtract", "sum", "update", "notify_hello", "notify_sum", "get_data", "echo", "big", "whoami", "panic", "fail":
		return true
	}
	return false
}

func (q quickFake) NeverWaits(method string) bool { return q.Quick(method) }

func newFakeDispatcher() *fakeDispatcher {
	return &fakeDispatcher{entered: make(chan string, 1024), release: make(chan struct{})}
}

func (f *fakeDispatcher) Dispatch(ctx context.Context, call *Call) (any, error) {
	f.calls.Add(1)
	f.last.Store(call)
	switch call.Method {
	case "subtract":
		var positional []float64
		if err := json.Unmarshal(call.Params, &positional); err == nil && len(positional) == 2 {
			return positional[0] - positional[1], nil
		}
		var named struct{ Minuend, Subtrahend *float64 }
		if err := json.Unmarshal(call.Params, &named); err == nil && named.Minuend != nil && named.Subtrahend != nil {
			return *named.Minuend - *named.Subtrahend, nil
		}
		return nil, InvalidParams("", "want [minuend, subtrahend] or {minuend, subtrahend}")
	case "sum":
		var numbers []float64
		if err := json.Unmarshal(call.Params, &numbers); err != nil {
			return nil, InvalidParams("", err.Error())
		}
		total := 0.0
		for _, n := range numbers {
			total += n
		}
		return total, nil
	case "update", "notify_hello", "notify_sum":
		return nil, nil
	case "get_data":
		return []any{"hello", 5}, nil
	case "echo":
		return call.Params, nil
	case "big":
		var size []int
		if err := json.Unmarshal(call.Params, &size); err != nil || len(size) != 1 {
			return nil, InvalidParams("", "want [size]")
		}
		return bigString(size[0]), nil
	case "whoami":
		return map[string]any{"addr": call.Client.Addr, "transport": call.Client.Transport,
			"bearer": call.BearerToken, "notification": call.IsNotification}, nil
	case "block":
		f.entered <- call.Method
		select {
		case <-f.release:
			return "released", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case "panic":
		panic("secret detail: password=hunter2")
	case "fail":
		return nil, errors.New("database at /var/lib/secret is on fire")
	case "wrapped":
		return nil, fmt.Errorf("context: %w", &jsonrpc2.Error{Code: 12031, Message: "bad token"})
	case "code0":
		return nil, &jsonrpc2.Error{Code: 0, Message: "zero"}
	case "internalDetail":
		return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeInternalError, Message: "stack trace here"}
	case "badRaw":
		return json.RawMessage(`{"a":`), nil
	case "prettyRaw":
		return json.RawMessage("{\n  \"a\": [1,\r\n 2]\n}"), nil
	case "unencodable":
		return make(chan int), nil
	}
	return nil, MethodNotFound(call.Method)
}

// bigString returns a JSON string of n x's, cached: tests ask for the same sizes again.
func bigString(n int) json.RawMessage {
	bigMu.Lock()
	defer bigMu.Unlock()
	if raw, ok := bigCache[n]; ok {
		return raw
	}
	raw := json.RawMessage(`"` + strings.Repeat("x", n) + `"`)
	bigCache[n] = raw
	return raw
}

var (
	bigMu    sync.Mutex
	bigCache = map[int]json.RawMessage{}
)

// waitEntered waits for n "block" calls to start.
func (f *fakeDispatcher) waitEntered(t testing.TB, n int) {
	t.Helper()
	for range n {
		select {
		case <-f.entered:
		case <-time.After(10 * time.Second):
			t.Fatalf("a blocking call did not start")
		}
	}
}

// releaseOne lets one blocked call return.
func (f *fakeDispatcher) releaseOne(t testing.TB) {
	t.Helper()
	select {
	case f.release <- struct{}{}:
	case <-time.After(10 * time.Second):
		t.Fatalf("no blocked call to release")
	}
}

type testServer struct {
	*Server
	fake *fakeDispatcher
	logs *syncbuf.Buffer
}

// newTestServer returns a server around a fake dispatcher, logging at debug level into a
// buffer, shut down when the test ends.
func newTestServer(t testing.TB, opts Options) *testServer {
	t.Helper()
	logs := &syncbuf.Buffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	fake := newFakeDispatcher()
	var d Dispatcher = fake
	if testEventLoop.Load() {
		d = quickFake{fake} // so that the loop answers some of the requests
	}
	srv := NewServer(d, opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return &testServer{Server: srv, fake: fake, logs: logs}
}

// listenTCP serves TCP on a loopback port and returns its address.
func (ts *testServer) listenTCP(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ts.ServeTCP(ln) }()
	return ln.Addr().String()
}

// listenHTTP serves HTTP on a loopback port and returns its URL.
func (ts *testServer) listenHTTP(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ts.ServeHTTPListener(ln) }()
	return "http://" + ln.Addr().String() + "/"
}

// ---------------------------------------------------------------------------------------
// Wire transcripts.

// TranscriptStep is one request of a wire transcript and the replies it must get.
type TranscriptStep struct {
	Line    int      // line of the request in the transcript
	Request string   // sent as one frame, exactly as written
	Replies []string // expected replies, compacted
}

// ParseTranscript reads a wire transcript in go-ethereum's form:
//
//	// a comment; blank lines are ignored too
//	--> {"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}
//	<-- {"jsonrpc":"2.0","result":19,"id":1}
//	--> {"jsonrpc":"2.0","method":"update","params":[1,2,3,4,5]}
//
// Each "-->" line is one request frame, sent byte for byte. The "<--" lines after it are the
// replies it must get, none for a notification. An expected reply is compacted before it is
// compared, so spacing is free, but member order, number spelling and string escapes must be
// exactly what the server sends: {"jsonrpc","result"|"error","id"}.
func ParseTranscript(text string) ([]TranscriptStep, error) {
	var steps []TranscriptStep
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "", strings.HasPrefix(trimmed, "//"):
		case strings.HasPrefix(trimmed, "--> "):
			steps = append(steps, TranscriptStep{Line: i + 1, Request: strings.TrimPrefix(trimmed, "--> ")})
		case strings.HasPrefix(trimmed, "<-- "):
			if len(steps) == 0 {
				return nil, fmt.Errorf("line %d: a reply before any request", i+1)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, []byte(strings.TrimPrefix(trimmed, "<-- "))); err != nil {
				return nil, fmt.Errorf("line %d: reply is not JSON: %v", i+1, err)
			}
			last := &steps[len(steps)-1]
			last.Replies = append(last.Replies, compact.String())
		default:
			return nil, fmt.Errorf("line %d: want -->, <-- or //", i+1)
		}
	}
	return steps, nil
}

// TranscriptClient is one client of the server over some transport.
type TranscriptClient interface {
	// Send sends one request frame.
	Send(frame []byte) error
	// Recv returns the next reply; io.EOF once the server has closed the stream.
	Recv() ([]byte, error)
	// CloseSend tells the server that no more requests come.
	CloseSend() error
}

// ReplayTranscript plays a transcript over client, step by step: it sends each request, then
// reads as many replies as the transcript expects for it and compares them byte for byte.
// At the end it closes the sending side and checks that no reply is left over, which is how
// a notification's missing reply is verified without waiting.
func ReplayTranscript(t testing.TB, client TranscriptClient, transcript string) {
	t.Helper()
	steps, err := ParseTranscript(transcript)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range steps {
		if err := client.Send([]byte(step.Request)); err != nil {
			t.Fatalf("line %d: send: %v", step.Line, err)
		}
		got := make([]string, 0, len(step.Replies))
		for range step.Replies {
			reply, err := client.Recv()
			if err != nil {
				t.Fatalf("line %d: %s\nwant reply, got %v", step.Line, step.Request, err)
			}
			got = append(got, string(reply))
		}
		want := slices.Clone(step.Replies)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("line %d: --> %s\n got <-- %s\nwant <-- %s", step.Line, step.Request,
				strings.Join(got, "\n         "), strings.Join(want, "\n         "))
		}
	}
	if err := client.CloseSend(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if reply, err := client.Recv(); err != io.EOF {
		t.Errorf("after the last request: got %q, %v; want no more replies", reply, err)
	}
}

// ---------------------------------------------------------------------------------------
// Clients for each transport.

const clientTimeout = 10 * time.Second

// tcpClient speaks newline-delimited JSON over a TCP connection.
type tcpClient struct {
	conn net.Conn
	rd   *bufio.Reader
}

func dialTCP(t testing.TB, addr string) *tcpClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &tcpClient{conn: conn, rd: bufio.NewReaderSize(conn, 64<<10)}
}

func (c *tcpClient) Send(frame []byte) error {
	_, err := c.conn.Write(append(slices.Clip(frame), '\n'))
	return err
}

func (c *tcpClient) Recv() ([]byte, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(clientTimeout))
	line, err := c.rd.ReadBytes('\n')
	if err != nil {
		if err == io.EOF && len(line) == 0 {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("read %q: %w", line, err)
	}
	return bytes.TrimSuffix(line, []byte("\n")), nil
}

func (c *tcpClient) CloseSend() error { return c.conn.(*net.TCPConn).CloseWrite() }

// call sends one frame and returns the next reply, failing the test on error.
func (c *tcpClient) call(t testing.TB, frame string) string {
	t.Helper()
	if err := c.Send([]byte(frame)); err != nil {
		t.Fatal(err)
	}
	reply, err := c.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return string(reply)
}

// waitConns waits until ok holds for every connection of srv (what it waits for, in words).
func waitConns(t testing.TB, srv *Server, what string, ok func(*conn) bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		srv.mu.Lock()
		all := true
		for c := range srv.conns {
			all = all && ok(c)
		}
		srv.mu.Unlock()
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the connections do not %s after 5 s", what)
		}
	}
}

// stdioClient runs ServeStdio over pipes.
type stdioClient struct {
	framing Framing
	in      io.WriteCloser
	out     *bufio.Reader
	done    chan error // ServeStdio's result
}

// startStdio runs ServeStdio over in-process pipes (io.Pipe), whose reads take no deadline.
func startStdio(t testing.TB, srv *Server, framing Framing) *stdioClient {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	return serveStdioOver(t, srv, framing, inR, inW, outR, outW)
}

// startStdioFiles runs ServeStdio over OS pipes (os.Pipe), which take read and write
// deadlines, unless blocking: then the server's ends are put in blocking mode, as their Fd
// method does, and ignore the deadlines they take.
func startStdioFiles(t testing.TB, srv *Server, framing Framing, blocking bool) *stdioClient {
	t.Helper()
	inR, inW := osPipe(t) // inR closed after inW's Cleanup: registered first, run last
	outR, outW := osPipe(t)
	if blocking {
		inR.Fd()
		outW.Fd()
	}
	return serveStdioOver(t, srv, framing, inR, inW, outR, outW)
}

// osPipe returns an OS pipe, which takes read and write deadlines; both ends are closed when
// the test ends, if they are open still.
func osPipe(t testing.TB) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		w.Close()
	})
	return r, w
}

// serveStdioOver serves the client writing to inW and reading outR; outW is closed once
// ServeStdio returns, the client's ends when the test ends.
func serveStdioOver(t testing.TB, srv *Server, framing Framing, inR io.Reader, inW io.WriteCloser, outR io.ReadCloser, outW io.WriteCloser) *stdioClient {
	c := &stdioClient{framing: framing, in: inW, out: bufio.NewReader(outR), done: make(chan error, 1)}
	go func() {
		err := srv.ServeStdio(context.Background(), inR, outW, framing)
		outW.Close()
		c.done <- err
	}()
	t.Cleanup(func() {
		inW.Close()
		outR.Close()
	})
	return c
}

func (c *stdioClient) Send(frame []byte) error { return c.sendAll(string(frame)) }

// sendAll sends frames in one write.
func (c *stdioClient) sendAll(frames ...string) error {
	var b []byte
	for _, frame := range frames {
		if c.framing == FramingContentLength {
			b = fmt.Appendf(b, "Content-Length: %d\r\n\r\n%s", len(frame), frame)
		} else {
			b = append(append(b, frame...), '\n')
		}
	}
	_, err := c.in.Write(b)
	return err
}

func (c *stdioClient) Recv() ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := c.recv()
		ch <- result{b, err}
	}()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-time.After(clientTimeout):
		return nil, errors.New("stdio: no reply in time")
	}
}

func (c *stdioClient) recv() ([]byte, error) {
	if c.framing == FramingNewline {
		line, err := c.out.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			return nil, io.EOF
		}
		if err != nil {
			return nil, err
		}
		return bytes.TrimSuffix(line, []byte("\n")), nil
	}
	length := -1
	for {
		line, err := c.out.ReadString('\n')
		if err == io.EOF && line == "" && length < 0 {
			return nil, io.EOF
		}
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			if length, err = strconv.Atoi(v); err != nil {
				return nil, err
			}
		}
	}
	body := make([]byte, length)
	_, err := io.ReadFull(c.out, body)
	return body, err
}

func (c *stdioClient) CloseSend() error { return c.in.Close() }

// wait returns ServeStdio's result.
func (c *stdioClient) wait(t testing.TB) error {
	t.Helper()
	select {
	case err := <-c.done:
		return err
	case <-time.After(clientTimeout):
		t.Fatal("ServeStdio did not return")
		return nil
	}
}

// httpClient posts each frame as one request; a 204 is no reply.
type httpClient struct {
	url     string
	client  *http.Client
	header  http.Header
	replies [][]byte
}

func newHTTPClient(url string) *httpClient {
	return &httpClient{url: url, client: &http.Client{Timeout: clientTimeout, Transport: &http.Transport{}}}
}

func (c *httpClient) Send(frame []byte) error {
	resp, err := c.post(frame)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusNoContent:
		if len(body) != 0 {
			return fmt.Errorf("204 with a body %q", body)
		}
		return nil
	case http.StatusOK:
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			return fmt.Errorf("Content-Type %q", ct)
		}
		c.replies = append(c.replies, bytes.TrimSuffix(body, []byte("\n")))
		return nil
	}
	return fmt.Errorf("status %d: %s", resp.StatusCode, body)
}

func (c *httpClient) post(frame []byte) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(frame))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range c.header {
		req.Header[k] = v
	}
	return c.client.Do(req)
}

func (c *httpClient) Recv() ([]byte, error) {
	if len(c.replies) == 0 {
		return nil, io.EOF
	}
	reply := c.replies[0]
	c.replies = c.replies[1:]
	return reply, nil
}

func (c *httpClient) CloseSend() error { return nil }

// transports runs f once per transport, each with a fresh client of a fresh server.
func transports(t *testing.T, opts Options, f func(t *testing.T, ts *testServer, client TranscriptClient)) {
	t.Run("tcp", func(t *testing.T) {
		ts := newTestServer(t, opts)
		f(t, ts, dialTCP(t, ts.listenTCP(t)))
	})
	t.Run("stdio", func(t *testing.T) {
		ts := newTestServer(t, opts)
		f(t, ts, startStdio(t, ts.Server, FramingNewline))
	})
	t.Run("stdio-content-length", func(t *testing.T) {
		ts := newTestServer(t, opts)
		f(t, ts, startStdio(t, ts.Server, FramingContentLength))
	})
	t.Run("http", func(t *testing.T) {
		ts := newTestServer(t, opts)
		f(t, ts, newHTTPClient(ts.listenHTTP(t)))
	})
}

// ---------------------------------------------------------------------------------------
// The examples of the JSON-RPC 2.0 specification (section 7), requests byte for byte.
// Replies are the specification's plus our data members.
const specExamples = `
// rpc call with positional parameters
--> {"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}
<-- {"jsonrpc": "2.0", "result": 19, "id": 1}
--> {"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}
<-- {"jsonrpc": "2.0", "result": -19, "id": 2}

// rpc call with named parameters
--> {"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}
<-- {"jsonrpc": "2.0", "result": 19, "id": 3}
--> {"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}
<-- {"jsonrpc": "2.0", "result": 19, "id": 4}

// a notification
--> {"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}
--> {"jsonrpc": "2.0", "method": "foobar"}

// rpc call of non-existent method
--> {"jsonrpc": "2.0", "method": "foobar", "id": "1"}
<-- {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found", "data": {"method": "foobar"}}, "id": "1"}

// rpc call with invalid JSON
--> {"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]
<-- {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error", "data": {"reason": "invalidJson"}}, "id": null}

// rpc call with invalid Request object
--> {"jsonrpc": "2.0", "method": 1, "params": "bar"}
<-- {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request", "data": {"reason": "badMethod"}}, "id": null}

// rpc call Batch, invalid JSON
--> [ {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"}, {"jsonrpc": "2.0", "method" ]
<-- {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error", "data": {"reason": "invalidJson"}}, "id": null}

// rpc call with an empty Array
--> []
<-- {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request", "data": {"reason": "emptyBatch"}}, "id": null}

// rpc call with an invalid Batch (but not empty)
--> [1]
<-- [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request", "data": {"reason": "notAnObject"}}, "id": null}]

// rpc call with invalid Batch
--> [1,2,3]
<-- [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request", "data": {"reason": "notAnObject"}}, "id": null}, {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request", "data": {"reason": "notAnObject"}}, "id": null}, {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request", "data": {"reason": "notAnObject"}}, "id": null}]

// rpc call Batch
--> [{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"}, {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}, {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"}, {"foo": "boo"}, {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"}, {"jsonrpc": "2.0", "method": "get_data", "id": "9"}]
<-- [{"jsonrpc": "2.0", "result": 7, "id": "1"}, {"jsonrpc": "2.0", "result": 19, "id": "2"}, {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request", "data": {"reason": "badVersion"}}, "id": null}, {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found", "data": {"method": "foo.get"}}, "id": "5"}, {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}]

// rpc call Batch (all notifications)
--> [{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]}, {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]
`

// idFidelity checks that ids come back byte for byte, whatever their spelling.
const idFidelity = `
--> {"jsonrpc":"2.0","method":"get_data","id":"a\"b\\c\u00e9\ud83d\ude00 \/"}
<-- {"jsonrpc":"2.0","result":["hello",5],"id":"a\"b\\c\u00e9\ud83d\ude00 \/"}
--> {"jsonrpc":"2.0","method":"get_data","id":"\ud800"}
<-- {"jsonrpc":"2.0","result":["hello",5],"id":"\ud800"}
--> {"jsonrpc":"2.0","method":"get_data","id":-0}
<-- {"jsonrpc":"2.0","result":["hello",5],"id":-0}
--> {"jsonrpc":"2.0","method":"get_data","id":-42}
<-- {"jsonrpc":"2.0","result":["hello",5],"id":-42}
--> {"jsonrpc":"2.0","method":"get_data","id":12345678901234567890}
<-- {"jsonrpc":"2.0","result":["hello",5],"id":12345678901234567890}
--> {"jsonrpc":"2.0","method":"get_data","id":123456789012345678901234567890123456789}
<-- {"jsonrpc":"2.0","result":["hello",5],"id":123456789012345678901234567890123456789}
--> {"jsonrpc":"2.0","method":"get_data","id":1.5}
<-- {"jsonrpc":"2.0","result":["hello",5],"id":1.5}
--> {"jsonrpc":"2.0","method":"get_data","id":1.50E+400}
<-- {"jsonrpc":"2.0","result":["hello",5],"id":1.50E+400}
--> {"jsonrpc":"2.0","method":"get_data","id":""}
<-- {"jsonrpc":"2.0","result":["hello",5],"id":""}
--> {"jsonrpc":"2.0","method":"get_data","id":null}
<-- {"jsonrpc":"2.0","result":["hello",5],"id":null}
--> {"id":7,"jsonrpc":"2.0","method":"get_data"}
<-- {"jsonrpc":"2.0","result":["hello",5],"id":7}
--> {"jsonrpc":"2.0","method":"nope","id":"x"}
<-- {"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found","data":{"method":"nope"}},"id":"x"}
// an invalid request echoes a readable id
--> {"jsonrpc":"1.0","method":"get_data","id":99}
<-- {"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"reason":"badVersion"}},"id":99}
--> {"jsonrpc":"2.0","method":"get_data","params":"x","id":[1]}
<-- {"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"reason":"badParams"}},"id":null}
--> {"jsonrpc":"2.0","method":"get_data","id":{"a":1}}
<-- {"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"reason":"badId"}},"id":null}
--> {"jsonrpc":"2.0","method":"get_data","id":true}
<-- {"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"reason":"badId"}},"id":null}
--> {"jsonrpc":"2.0","method":"get_data","id":1,"id":2}
<-- {"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"reason":"duplicateMember"}},"id":null}
// in a batch an invalid element's error has id null (API.md), whatever its id
--> [{"jsonrpc":"2.0","method":"get_data","id":"b1"},{"jsonrpc":"2.0","method":5,"id":"b2"},{"jsonrpc":"2.0","method":"get_data","id":null}]
<-- [{"jsonrpc":"2.0","result":["hello",5],"id":"b1"},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"reason":"badMethod"}},"id":null},{"jsonrpc":"2.0","result":["hello",5],"id":null}]
`

// TestSpecExamples replays every example of the JSON-RPC 2.0 specification over each transport.
func TestSpecExamples(t *testing.T) {
	transports(t, Options{}, func(t *testing.T, ts *testServer, client TranscriptClient) {
		ReplayTranscript(t, client, specExamples)
	})
}

// TestIDFidelity checks over each transport that ids are echoed byte for byte and null ids are answered.
func TestIDFidelity(t *testing.T) {
	transports(t, Options{}, func(t *testing.T, ts *testServer, client TranscriptClient) {
		ReplayTranscript(t, client, idFidelity)
	})
}

// malformedCases are inputs that must be answered, never with -32603, on a connection that
// stays usable.
var malformedCases = []struct {
	name  string
	frame string
	code  int64
}{
	{"invalid UTF-8 in a string", "{\"jsonrpc\":\"2.0\",\"method\":\"subtract\",\"params\":[42,23],\"id\":\"\xff\xfe\"}", jsonrpc2.CodeParseError},
	{"invalid UTF-8 outside strings", "{\"jsonrpc\":\"2.0\",\xc3\x28}", jsonrpc2.CodeParseError},
	{"UTF-8 encoded surrogate", "{\"jsonrpc\":\"2.0\",\"method\":\"\xed\xa0\x80\",\"id\":1}", jsonrpc2.CodeParseError},
	{"overlong UTF-8", "{\"jsonrpc\":\"2.0\",\"method\":\"\xc0\xaf\",\"id\":1}", jsonrpc2.CodeParseError},
	{"NUL byte", "{\"jsonrpc\":\"2.0\",\"method\":\"a\x00\",\"id\":1}", jsonrpc2.CodeParseError},
	{"deeply nested params", `{"jsonrpc":"2.0","method":"subtract","params":[` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `],"id":1}`, jsonrpc2.CodeInvalidParams},
	{"deeply nested and unclosed", strings.Repeat("[", 200000), jsonrpc2.CodeParseError},
	{"deeply nested objects", strings.Repeat(`{"a":`, 50000) + "1" + strings.Repeat("}", 50000), jsonrpc2.CodeInvalidRequest},
	{"huge number in params", `{"jsonrpc":"2.0","method":"subtract","params":[1e999999,1],"id":1}`, jsonrpc2.CodeInvalidParams},
	{"very long number", `{"jsonrpc":"2.0","method":"subtract","params":[` + strings.Repeat("9", 5000) + `,1],"id":1}`, jsonrpc2.CodeInvalidParams},
	{"duplicate method", `{"jsonrpc":"2.0","method":"subtract","method":"sum","params":[1,2],"id":1}`, jsonrpc2.CodeInvalidRequest},
	{"duplicate keys in params", `{"jsonrpc":"2.0","method":"subtract","params":{"minuend":1,"minuend":42,"subtrahend":23},"id":1}`, 0},
	{"trailing garbage", `{"jsonrpc":"2.0","method":"get_data","id":1}}`, jsonrpc2.CodeParseError},
	{"two values on one line", `{"jsonrpc":"2.0","method":"get_data","id":1} {"jsonrpc":"2.0","method":"get_data","id":2}`, jsonrpc2.CodeParseError},
	{"bare string", `"hello"`, jsonrpc2.CodeInvalidRequest},
	{"bare null", `null`, jsonrpc2.CodeInvalidRequest},
	{"lone surrogate escape in method", `{"jsonrpc":"2.0","method":"\ud800","id":1}`, jsonrpc2.CodeMethodNotFound},
	{"bad escape", `{"jsonrpc":"2.0","method":"\x","id":1}`, jsonrpc2.CodeParseError},
	{"unterminated string", `{"jsonrpc":"2.0","method":"get_data`, jsonrpc2.CodeParseError},
	{"leading zero", `{"jsonrpc":"2.0","method":"get_data","id":01}`, jsonrpc2.CodeParseError},
	{"response object", `{"jsonrpc":"2.0","result":1,"id":1}`, jsonrpc2.CodeInvalidRequest},
	{"JSON-RPC 1.0 request", `{"method":"get_data","params":[],"id":1}`, jsonrpc2.CodeInvalidRequest},
}

// TestMalformedInput checks over each transport that malformed requests get a protocol error (never -32603) and do not end the connection.
func TestMalformedInput(t *testing.T) {
	transports(t, Options{}, func(t *testing.T, ts *testServer, client TranscriptClient) {
		for _, tc := range malformedCases {
			if err := client.Send([]byte(tc.frame)); err != nil {
				t.Fatalf("%s: send: %v", tc.name, err)
			}
			reply, err := client.Recv()
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			var resp struct {
				Error *jsonrpc2.Error
			}
			if err := json.Unmarshal(reply, &resp); err != nil {
				t.Fatalf("%s: reply %q: %v", tc.name, reply, err)
			}
			var code int64
			if resp.Error != nil {
				code = resp.Error.Code
			}
			if code != tc.code {
				t.Errorf("%s: code %d, want %d (reply %.200s)", tc.name, code, tc.code, reply)
			}
			// The connection still works.
			if err := client.Send([]byte(`{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":"after"}`)); err != nil {
				t.Fatalf("%s: send after: %v", tc.name, err)
			}
			if reply, err := client.Recv(); err != nil || string(reply) != `{"jsonrpc":"2.0","result":19,"id":"after"}` {
				t.Fatalf("%s: after: %q, %v", tc.name, reply, err)
			}
		}
		if strings.Contains(ts.logs.String(), "level=ERROR") {
			t.Errorf("malformed input logged an internal error:\n%s", ts.logs)
		}
	})
}

// TestDispatchErrors checks how dispatcher errors and panics reach the wire: never code 0, never internal detail, detail logged.
func TestDispatchErrors(t *testing.T) {
	tests := []struct {
		method  string
		reply   string
		logged  string // must appear in the log
		mapErr  func(error) *jsonrpc2.Error
		nothing string // must not appear in the reply
	}{
		{method: "panic", reply: `{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":1}`,
			logged: "password=hunter2", nothing: "hunter2"},
		{method: "fail", reply: `{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":1}`,
			logged: "on fire", nothing: "fire"},
		{method: "wrapped", reply: `{"jsonrpc":"2.0","error":{"code":12031,"message":"bad token"},"id":1}`},
		{method: "code0", reply: `{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":1}`,
			logged: "zero"},
		{method: "internalDetail", reply: `{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":1}`,
			logged: "stack trace here", nothing: "stack"},
		{method: "fail", mapErr: func(error) *jsonrpc2.Error { return &jsonrpc2.Error{Code: 450, Message: "mapped"} },
			reply: `{"jsonrpc":"2.0","error":{"code":450,"message":"mapped"},"id":1}`},
		{method: "fail", mapErr: func(error) *jsonrpc2.Error { return nil },
			reply: `{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":1}`, logged: "on fire"},
		{method: "fail", mapErr: func(error) *jsonrpc2.Error { return &jsonrpc2.Error{Message: "code zero"} },
			reply: `{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":1}`, logged: "on fire"},
		{method: "badRaw", reply: `{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":1}`,
			logged: "not valid JSON"},
		{method: "prettyRaw", reply: "{\"jsonrpc\":\"2.0\",\"result\":{  \"a\": [1, 2]},\"id\":1}"},
		{method: "unencodable", reply: `{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":1}`,
			logged: "unsupported type"},
	}
	for _, tc := range tests {
		ts := newTestServer(t, Options{MapError: tc.mapErr})
		out := getOut()
		frame := `{"jsonrpc":"2.0","method":"` + tc.method + `","id":1}`
		if !ts.serveFrame(context.Background(), []byte(frame), ClientInfo{}, "", out) {
			t.Fatalf("%s: no reply", tc.method)
		}
		if got := string(out.b); got != tc.reply {
			t.Errorf("%s: got  %s\nwant %s", tc.method, got, tc.reply)
		}
		if tc.nothing != "" && strings.Contains(string(out.b), tc.nothing) {
			t.Errorf("%s: reply leaks %q", tc.method, tc.nothing)
		}
		if tc.logged != "" && !strings.Contains(ts.logs.String(), tc.logged) {
			t.Errorf("%s: log lacks %q:\n%s", tc.method, tc.logged, ts.logs)
		}
		if tc.method == "panic" && !strings.Contains(ts.logs.String(), "goroutine") {
			t.Errorf("panic: log lacks the stack:\n%s", ts.logs)
		}
		putOut(out)
	}
}

// TestAbandonedCallIsNoError checks that a call of the Service given up because its client
// went away (its context cancelled) is answered -32603, if anyone still reads it, and logged
// once, at debug level, as abandoned: not as an internal error.
func TestAbandonedCallIsNoError(t *testing.T) {
	eng, err := engine.New(memstore.New(memstore.Options{}), pathEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := NewServer(NewService(eng, []byte(`{}`), log), Options{Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client has gone
	out := getOut()
	defer putOut(out)
	frame := `{"jsonrpc":"2.0","method":"createSession","params":{"username":"admin","password":"x"},"id":1}`
	if !srv.serveFrame(ctx, []byte(frame), ClientInfo{}, "", out) {
		t.Fatal("no reply")
	}
	if got, want := string(out.b), `{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":1}`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "level=DEBUG") || !strings.Contains(lines[0], "call abandoned") ||
		!strings.Contains(lines[0], "method=createSession") {
		t.Errorf("an abandoned call logged %q, want one debug line naming it", lines)
	}
}

// TestNotificationErrorsAreSilent checks that failing, panicking and unknown notifications get no reply, alone or in a batch.
func TestNotificationErrorsAreSilent(t *testing.T) {
	ts := newTestServer(t, Options{})
	for _, frame := range []string{
		`{"jsonrpc":"2.0","method":"panic"}`,
		`{"jsonrpc":"2.0","method":"fail","params":[]}`,
		`{"jsonrpc":"2.0","method":"nope"}`,
		`[{"jsonrpc":"2.0","method":"nope"},{"jsonrpc":"2.0","method":"panic"}]`,
	} {
		out := getOut()
		if ts.serveFrame(context.Background(), []byte(frame), ClientInfo{}, "", out) || len(out.b) != 0 {
			t.Errorf("%s: got a reply %q", frame, out.b)
		}
		putOut(out)
	}
}

// TestClientInfo checks that each transport fills Call.Client and HTTP fills Call.BearerToken.
func TestClientInfo(t *testing.T) {
	const frame = `{"jsonrpc":"2.0","method":"whoami","id":1}`
	ts := newTestServer(t, Options{})

	tcp := dialTCP(t, ts.listenTCP(t))
	if got, want := tcp.call(t, frame), `{"jsonrpc":"2.0","result":{"addr":"127.0.0.1","bearer":"","notification":false,"transport":"tcp"},"id":1}`; got != want {
		t.Errorf("tcp: %s, want %s", got, want)
	}

	stdio := startStdio(t, ts.Server, FramingNewline)
	_ = stdio.Send([]byte(frame))
	if got, _ := stdio.Recv(); string(got) != `{"jsonrpc":"2.0","result":{"addr":"stdio","bearer":"","notification":false,"transport":"stdio"},"id":1}` {
		t.Errorf("stdio: %s", got)
	}

	web := newHTTPClient(ts.listenHTTP(t))
	web.header = http.Header{"Authorization": {"bearer  tok.en-1 "}}
	if err := web.Send([]byte(frame)); err != nil {
		t.Fatal(err)
	}
	if got, _ := web.Recv(); string(got) != `{"jsonrpc":"2.0","result":{"addr":"127.0.0.1","bearer":"tok.en-1","notification":false,"transport":"http"},"id":1}` {
		t.Errorf("http: %s", got)
	}
	web.header = http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}
	_ = web.Send([]byte(frame))
	if got, _ := web.Recv(); !strings.Contains(string(got), `"bearer":""`) {
		t.Errorf("http basic auth: %s", got)
	}
}

// TestShutdownAnswersInFlight checks over each stream transport that Shutdown waits for calls in flight, writes their replies, then closes.
func TestShutdownAnswersInFlight(t *testing.T) {
	for _, transport := range []string{"tcp", "stdio"} {
		t.Run(transport, func(t *testing.T) {
			ts := newTestServer(t, Options{})
			var client TranscriptClient
			var stdio *stdioClient
			serveDone := make(chan error, 1)
			if transport == "tcp" {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				go func() { serveDone <- ts.ServeTCP(ln) }()
				client = dialTCP(t, ln.Addr().String())
			} else {
				stdio = startStdio(t, ts.Server, FramingNewline)
				client = stdio
			}
			_ = client.Send([]byte(`{"jsonrpc":"2.0","method":"block","id":1}`))
			ts.fake.waitEntered(t, 1)

			shutdownDone := make(chan error, 1)
			go func() { shutdownDone <- ts.Shutdown(context.Background()) }()
			select {
			case err := <-shutdownDone:
				t.Fatalf("Shutdown returned %v with a call in flight", err)
			default:
			}
			ts.fake.releaseOne(t)
			reply, err := client.Recv()
			if err != nil || string(reply) != `{"jsonrpc":"2.0","result":"released","id":1}` {
				t.Fatalf("in-flight reply: %q, %v", reply, err)
			}
			if reply, err := client.Recv(); err != io.EOF {
				t.Fatalf("after shutdown: %q, %v; want EOF", reply, err)
			}
			if err := <-shutdownDone; err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if transport == "tcp" {
				if err := <-serveDone; err != ErrServerClosed {
					t.Fatalf("ServeTCP: %v", err)
				}
			} else if err := stdio.wait(t); err != ErrServerClosed {
				t.Fatalf("ServeStdio: %v", err)
			}
		})
	}
}

// TestShutdownForced checks that Shutdown whose context ends cancels the calls, closes the connections and returns the context's error.
func TestShutdownForced(t *testing.T) {
	ts := newTestServer(t, Options{})
	client := dialTCP(t, ts.listenTCP(t))
	_ = client.Send([]byte(`{"jsonrpc":"2.0","method":"block","id":1}`))
	ts.fake.waitEntered(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown: %v, want deadline exceeded", err)
	}
	if reply, err := client.Recv(); err == nil {
		t.Fatalf("got %q after a forced shutdown; want the connection closed", reply)
	}
	if err := ts.ServeTCP(newUnusedListener(t)); err != ErrServerClosed {
		t.Fatalf("ServeTCP after Shutdown: %v", err)
	}
}

func newUnusedListener(t testing.TB) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestMethodNamesInterned checks that known method names are interned and unknown ones are not.
func TestMethodNamesInterned(t *testing.T) {
	ts := newTestServer(t, Options{})
	out := getOut()
	defer putOut(out)
	for _, frame := range []string{
		`{"jsonrpc":"2.0","method":"get_data","id":1}`,
		`{"jsonrpc":"2.0","method":"nope","id":1}`,
	} {
		ts.serveFrame(context.Background(), []byte(frame), ClientInfo{}, "", out)
	}
	if _, ok := ts.names.lookup([]byte("get_data")); !ok {
		t.Error("get_data not interned")
	}
	if _, ok := ts.names.lookup([]byte("nope")); ok {
		t.Error("unknown method interned")
	}
}

// countingQuick is a QuickDispatcher whose "fast" method is quick; it counts the Quick calls.
type countingQuick struct {
	asked atomic.Int32
}

func (q *countingQuick) Quick(method string) bool {
	q.asked.Add(1)
	return method == "fast"
}

// NeverWaits makes the event loop answer "fast" (NeverWaiter).
func (q *countingQuick) NeverWaits(method string) bool { return method == "fast" }

func (q *countingQuick) Dispatch(_ context.Context, call *Call) (any, error) {
	switch call.Method {
	case "fast", "slow":
		return call.Method, nil
	}
	return nil, MethodNotFound(call.Method)
}

// TestQuickMethodRemembered checks that the server asks its QuickDispatcher about a method
// name until the name is interned, then takes the answer from the intern table: a quick
// method stays quick, a slow one slow, and unknown or escaped names are asked every time.
func TestQuickMethodRemembered(t *testing.T) {
	q := &countingQuick{}
	srv := NewServer(q, Options{Logger: slog.New(slog.DiscardHandler)})
	out := getOut()
	defer putOut(out)
	serve := func(method string) {
		out.b = out.b[:0]
		srv.serveFrame(context.Background(), []byte(`{"jsonrpc":"2.0","method":"`+method+`","id":1}`), ClientInfo{}, "", out)
	}
	for _, c := range []struct {
		raw        string // the method as it is on the wire, quoted
		serveFirst bool   // dispatch it once first, which interns a known name
		quick      bool
		asked      int32 // Quick calls for this check
	}{
		{`"fast"`, false, true, 1},      // not interned yet
		{`"fast"`, true, true, 0},       // interned: remembered as quick
		{`"slow"`, true, false, 0},      // interned: remembered as not quick
		{`"nope"`, true, false, 1},      // unknown names are never interned
		{`"f\u0061st"`, false, true, 1}, // escaped: decoded, not interned
	} {
		if c.serveFirst {
			serve(c.raw[1 : len(c.raw)-1])
		}
		q.asked.Store(0)
		m, _ := srv.quickMethod([]byte(c.raw))
		name, quick := m.name, m.quick
		if quick != c.quick || q.asked.Load() != c.asked {
			t.Errorf("%s: %q quick %v after %d Quick calls, want %v after %d", c.raw, name, quick, q.asked.Load(), c.quick, c.asked)
		}
	}
}
