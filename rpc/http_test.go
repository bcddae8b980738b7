package rpc

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHTTPStatuses checks the status code, headers and body of each kind of HTTP request.
func TestHTTPStatuses(t *testing.T) {
	ts := newTestServer(t, Options{MaxRequestBytes: 256})
	url := ts.listenHTTP(t)
	tooLarge := `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"reason":"requestTooLarge","limit":256}},"id":null}` + "\n"
	tests := []struct {
		name        string
		method      string
		contentType string
		body        io.Reader
		status      int
		want        string // exact body
	}{
		{"single call", "POST", "application/json", strings.NewReader(subtractFrame), 200, subtractReply + "\n"},
		{"charset parameter", "POST", "application/json; charset=utf-8", strings.NewReader(subtractFrame), 200, subtractReply + "\n"},
		{"no content type", "POST", "", strings.NewReader(subtractFrame), 200, subtractReply + "\n"},
		{"notification", "POST", "application/json", strings.NewReader(`{"jsonrpc":"2.0","method":"update","params":[1]}`), 204, ""},
		{"all-notification batch", "POST", "application/json", strings.NewReader(`[{"jsonrpc":"2.0","method":"update"},{"jsonrpc":"2.0","method":"nope"}]`), 204, ""},
		{"parse error is a 200", "POST", "application/json", strings.NewReader(`{`), 200,
			`{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":{"reason":"invalidJson"}},"id":null}` + "\n"},
		{"empty body", "POST", "application/json", strings.NewReader(``), 200,
			`{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":{"reason":"invalidJson"}},"id":null}` + "\n"},
		{"GET", "GET", "", nil, 405,
			`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"reason":"httpMethodNotAllowed"}},"id":null}` + "\n"},
		{"text/plain", "POST", "text/plain", strings.NewReader(subtractFrame), 415,
			`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"reason":"unsupportedMediaType"}},"id":null}` + "\n"},
		{"form", "POST", "application/x-www-form-urlencoded", strings.NewReader(subtractFrame), 415,
			`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"reason":"unsupportedMediaType"}},"id":null}` + "\n"},
		{"too large with Content-Length", "POST", "application/json", strings.NewReader(strings.Repeat(" ", 300)), 413, tooLarge},
		{"too large chunked", "POST", "application/json", io.MultiReader(strings.NewReader(strings.Repeat(" ", 300))), 413, tooLarge},
		{"too large with Content-Length, its id first", "POST", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":"big-1","params":"` + strings.Repeat("x", 300) + `"}`), 413,
			strings.Replace(tooLarge, `"id":null`, `"id":"big-1"`, 1)},
		{"too large chunked, its id first", "POST", "application/json", io.MultiReader(strings.NewReader(`{"id":7,"method":"x","params":"` + strings.Repeat("x", 300) + `"}`)), 413,
			strings.Replace(tooLarge, `"id":null`, `"id":7`, 1)},
		{"at the limit", "POST", "application/json", strings.NewReader(subtractFrame + strings.Repeat(" ", 256-len(subtractFrame))), 200, subtractReply + "\n"},
	}
	client := &http.Client{Timeout: clientTimeout}
	for _, tc := range tests {
		req, err := http.NewRequest(tc.method, url, tc.body)
		if err != nil {
			t.Fatal(err)
		}
		if tc.contentType != "" {
			req.Header.Set("Content-Type", tc.contentType)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || string(body) != tc.want {
			t.Errorf("%s: %d %q, want %d %q", tc.name, resp.StatusCode, body, tc.status, tc.want)
		}
		if tc.want != "" && resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: Content-Type %q", tc.name, resp.Header.Get("Content-Type"))
		}
		if tc.status == 405 && resp.Header.Get("Allow") != "POST" {
			t.Errorf("%s: Allow %q", tc.name, resp.Header.Get("Allow"))
		}
	}
}

// TestHTTPMaxConnections checks that requests over MaxConnections get 503 with tooManyConnections while the others run.
func TestHTTPMaxConnections(t *testing.T) {
	t.Run("its own listener", func(t *testing.T) {
		ts := newTestServer(t, Options{MaxConnections: 1})
		testHTTPMaxConnections(t, ts, ts.listenHTTP(t))
	})
	// Mounted on the caller's server, where only running requests are counted.
	t.Run("a handler mounted elsewhere", func(t *testing.T) {
		ts := newTestServer(t, Options{MaxConnections: 1})
		own := &http.Server{Handler: ts.HTTPHandler()}
		ln := newUnusedListener(t)
		go func() { _ = own.Serve(ln) }()
		t.Cleanup(func() { own.Close() })
		testHTTPMaxConnections(t, ts, "http://"+ln.Addr().String()+"/")
	})
}

func testHTTPMaxConnections(t *testing.T, ts *testServer, url string) {
	first := make(chan error, 1)
	slow := newHTTPClient(url)
	go func() { first <- slow.Send([]byte(`{"jsonrpc":"2.0","method":"block","id":1}`)) }()
	ts.fake.waitEntered(t, 1)

	resp, err := newHTTPClient(url).post([]byte(subtractFrame))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `{"jsonrpc":"2.0","error":{"code":-32000,"message":"Server unavailable","data":{"reason":"tooManyConnections","limit":1}},"id":null}` + "\n"
	if resp.StatusCode != http.StatusServiceUnavailable || string(body) != want {
		t.Fatalf("second request: %d %s", resp.StatusCode, body)
	}
	ts.fake.releaseOne(t)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got, _ := slow.Recv(); string(got) != `{"jsonrpc":"2.0","result":"released","id":1}` {
		t.Fatalf("first request: %s", got)
	}
}

// TestHTTPShutdown checks that Shutdown answers HTTP calls in flight, refuses new ones with 503 shuttingDown, and stops ServeHTTPListener.
func TestHTTPShutdown(t *testing.T) {
	ts := newTestServer(t, Options{})
	ln := newUnusedListener(t)
	served := make(chan error, 1)
	go func() { served <- ts.ServeHTTPListener(ln) }()
	// The same handler mounted by the caller on a server of its own, which Shutdown does not close.
	own := &http.Server{Handler: ts.HTTPHandler()}
	ownLn := newUnusedListener(t)
	go func() { _ = own.Serve(ownLn) }()
	defer own.Close()

	inFlight := newHTTPClient("http://" + ln.Addr().String() + "/")
	first := make(chan error, 1)
	go func() { first <- inFlight.Send([]byte(`{"jsonrpc":"2.0","method":"block","id":1}`)) }()
	ts.fake.waitEntered(t, 1)

	shutdown := make(chan error, 1)
	go func() { shutdown <- ts.Shutdown(context.Background()) }()
	<-ts.shutdownCh

	resp, err := newHTTPClient("http://" + ownLn.Addr().String() + "/").post([]byte(subtractFrame))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `{"jsonrpc":"2.0","error":{"code":-32000,"message":"Server unavailable","data":{"reason":"shuttingDown"}},"id":null}` + "\n"
	if resp.StatusCode != http.StatusServiceUnavailable || string(body) != want {
		t.Fatalf("during shutdown: %d %s", resp.StatusCode, body)
	}

	ts.fake.releaseOne(t)
	if err := <-first; err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	if got, _ := inFlight.Recv(); string(got) != `{"jsonrpc":"2.0","result":"released","id":1}` {
		t.Fatalf("in-flight reply: %s", got)
	}
	if err := <-shutdown; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != ErrServerClosed {
		t.Fatalf("ServeHTTPListener: %v", err)
	}
}

// TestHTTPStalledClients checks that clients stalling in the headers or the body are dropped after RequestReadTimeout while another client is served, refused requests whose body never comes included.
func TestHTTPStalledClients(t *testing.T) {
	ts := newTestServer(t, Options{RequestReadTimeout: 200 * time.Millisecond})
	url := ts.listenHTTP(t)
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")
	for _, tc := range []struct {
		name, sent, status, reason string
	}{
		{"headers", "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: appl", "", ""},
		{"body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\":", "HTTP/1.1 400", "incompleteBody"},
		{"refused media type", "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n", "HTTP/1.1 415", "unsupportedMediaType"},
		{"refused method", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", "HTTP/1.1 405", "httpMethodNotAllowed"},
	} {
		stalled, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer stalled.Close()
		if _, err := stalled.Write([]byte(tc.sent)); err != nil {
			t.Fatal(err)
		}
		other := newHTTPClient(url)
		if err := other.Send([]byte(subtractFrame)); err != nil {
			t.Fatalf("%s: other client: %v", tc.name, err)
		}
		_ = stalled.SetReadDeadline(time.Now().Add(clientTimeout))
		got, err := io.ReadAll(stalled)
		var ne net.Error
		if asNetError(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: the stalled client was not dropped", tc.name)
		}
		if !strings.HasPrefix(string(got), tc.status) {
			t.Errorf("%s: stalled client got %q", tc.name, got)
		}
		if tc.reason != "" && !bytes.Contains(got, []byte(`"`+tc.reason+`"`)) {
			t.Errorf("%s: no %s error in %q", tc.name, tc.reason, got)
		}
	}
}

func asNetError(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}

// TestHTTPKeepAlive checks that several requests share one keep-alive connection.
func TestHTTPKeepAlive(t *testing.T) {
	ts := newTestServer(t, Options{})
	addr := strings.TrimSuffix(strings.TrimPrefix(ts.listenHTTP(t), "http://"), "/")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	rd := bufio.NewReader(nc)
	for range 3 {
		if _, body := postOnConn(t, nc, rd, subtractFrame); body != subtractReply+"\n" {
			t.Fatalf("got %q", body)
		}
	}
}

// postOnConn posts frame on the HTTP connection nc (rd reads it) and returns the reply's
// status code and body.
func postOnConn(t *testing.T, nc net.Conn, rd *bufio.Reader, frame string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+nc.RemoteAddr().String()+"/", strings.NewReader(frame))
	req.Header.Set("Content-Type", "application/json")
	if err := req.Write(nc); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(rd, req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body)
}

// BenchmarkHTTPRoundTrip measures one keep-alive client posting one request at a time.
func BenchmarkHTTPRoundTrip(b *testing.B) {
	ts := newTestServer(b, Options{Logger: slog.New(slog.DiscardHandler)})
	client := newHTTPClient(ts.listenHTTP(b))
	frame := []byte(subtractFrame)
	b.ReportAllocs()
	for b.Loop() {
		if err := client.Send(frame); err != nil {
			b.Fatal(err)
		}
		client.replies = client.replies[:0]
	}
}

// TestReadBodyReservesWhatArrives checks that readBody reserves memory for the bytes that
// arrive, not for the Content-Length a client announces, and still reads whole bodies of
// every size up to the limit.
func TestReadBodyReservesWhatArrives(t *testing.T) {
	const limit = 1 << 20
	for _, tc := range []struct {
		announced, sent int
		maxCap          int
	}{
		{limit, 10, firstBodyChunk},
		{100, 100, 101},
		{limit, limit, 2 * limit},
		{-1, 3000, 2 * 3000},
	} {
		body := bytes.Repeat([]byte{'x'}, tc.sent)
		got, err := readBody(bytes.NewReader(body), int64(tc.announced), limit)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("announced %d, sent %d: read %d bytes, %v", tc.announced, tc.sent, len(got), err)
		}
		if cap(got) > tc.maxCap {
			t.Errorf("announced %d, sent %d: reserved %d bytes, want at most %d", tc.announced, tc.sent, cap(got), tc.maxCap)
		}
	}
}

// TestHTTPMaxConnectionsCountsOpenConnections checks that ServeHTTPListener counts open
// connections, idle keep-alive ones too, against MaxConnections: one more gets 503
// tooManyConnections and is closed, with a request or without, while those within it go on
// serving, and once one of them closes a new connection is served.
func TestHTTPMaxConnectionsCountsOpenConnections(t *testing.T) {
	ts := newTestServer(t, Options{MaxConnections: 2})
	addr := strings.TrimSuffix(strings.TrimPrefix(ts.listenHTTP(t), "http://"), "/")
	roundTrip := func(nc net.Conn, rd *bufio.Reader) (int, string) {
		t.Helper()
		return postOnConn(t, nc, rd, subtractFrame)
	}
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		_ = nc.SetDeadline(time.Now().Add(clientTimeout))
		return nc, bufio.NewReader(nc)
	}
	var kept []net.Conn
	var readers []*bufio.Reader
	for range 2 {
		nc, rd := dial()
		if code, body := roundTrip(nc, rd); code != http.StatusOK || body != subtractReply+"\n" {
			t.Fatalf("within the limit: %d %q", code, body)
		}
		kept, readers = append(kept, nc), append(readers, rd)
	}
	extra, rd := dial()
	code, body := roundTrip(extra, rd)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"reason":"tooManyConnections","limit":2`) {
		t.Fatalf("a third connection: %d %q, want 503 tooManyConnections", code, body)
	}
	if _, err := rd.ReadByte(); err != io.EOF {
		t.Errorf("the third connection was not closed: %v", err)
	}
	// The two kept connections, idle meanwhile, still serve.
	if code, _ := roundTrip(kept[1], readers[1]); code != http.StatusOK {
		t.Errorf("a kept connection after the refusal: %d", code)
	}
	// Connections over the limit that send nothing are answered and closed all the same
	// (after waiting a second for a request), rather than each holding a descriptor while it
	// waits.
	var idles []net.Conn
	var idleReaders []*bufio.Reader
	for range 50 {
		idle, rd := dial()
		idles, idleReaders = append(idles, idle), append(idleReaders, rd)
	}
	for i, idle := range idles {
		rd := idleReaders[i]
		resp, err := http.ReadResponse(rd, nil)
		if err != nil {
			t.Fatalf("an idle connection over the limit: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"reason":"tooManyConnections","limit":2`) {
			t.Fatalf("an idle connection over the limit: %d %q, want 503 tooManyConnections", resp.StatusCode, body)
		}
		if _, err := rd.ReadByte(); err != io.EOF {
			t.Fatalf("an idle connection over the limit was not closed: %v", err)
		}
		idle.Close()
	}
	kept[0].Close()
	for deadline := time.Now().Add(clientTimeout); ; {
		nc, rd := dial()
		code, _ := roundTrip(nc, rd)
		if code == http.StatusOK {
			break
		}
		nc.Close()
		if time.Now().After(deadline) {
			t.Fatalf("a new connection after one closed: still %d", code)
		}
		time.Sleep(10 * time.Millisecond) // until the server has seen the close
	}
}

// TestHTTPSlowBodyHoldsNoPlace checks that a request still sending its body does not count
// against MaxConnections' running requests: another caller is served meanwhile.
func TestHTTPSlowBodyHoldsNoPlace(t *testing.T) {
	ts := newTestServer(t, Options{MaxConnections: 1})
	// The handler on a server of the caller's, where only running requests are counted; the
	// first request's body tells when the handler starts reading it, after a count made
	// before the body would have been made.
	reading := make(chan struct{})
	var once sync.Once
	handler := ts.HTTPHandler()
	own := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { r.Body = readSignal{r.Body, reading} })
		handler.ServeHTTP(w, r)
	})}
	ln := newUnusedListener(t)
	go func() { _ = own.Serve(ln) }()
	defer own.Close()
	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := slow.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\":")); err != nil {
		t.Fatal(err)
	}
	<-reading
	if err := newHTTPClient("http://" + ln.Addr().String() + "/").Send([]byte(subtractFrame)); err != nil {
		t.Fatalf("another caller while a body trickles in: %v", err)
	}
}

// readSignal is a request body that closes its channel when it is first read.
type readSignal struct {
	io.ReadCloser
	first chan struct{}
}

func (r readSignal) Read(p []byte) (int, error) {
	select {
	case <-r.first:
	default:
		close(r.first)
	}
	return r.ReadCloser.Read(p)
}

// TestHTTPTooLargeAnsweredAtOnce checks that a body announced over the limit is refused
// without waiting for it: not after the body's read timeout (an hour here) and, when the
// client asks with "Expect: 100-continue", without inviting it to send the body.
func TestHTTPTooLargeAnsweredAtOnce(t *testing.T) {
	ts := newTestServer(t, Options{MaxRequestBytes: 256, RequestReadTimeout: time.Hour})
	url := ts.listenHTTP(t)
	for _, expect := range []string{"", "Expect: 100-continue\r\n"} {
		conn, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/"))
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(clientTimeout))
		if _, err := conn.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + expect + "Content-Length: 100000000\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		status, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if err != nil || !strings.HasPrefix(status, "HTTP/1.1 413") {
			t.Errorf("%q: status line %q, %v; want 413 without the body", expect, status, err)
		}
	}
}
