package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sourcegraph/jsonrpc2"
)

// HTTPHandler returns the handler for JSON-RPC over HTTP: POST with a JSON body, one request
// or a batch, answered with 200 and an application/json body, or 204 No Content when the body
// held only notifications. JSON-RPC errors are 200 replies like any other; the status code
// only reports transport faults, each still with a JSON-RPC error body:
//
//   - 405 for a method other than POST (with Allow: POST);
//   - 415 for a Content-Type other than application/json (a missing one is accepted);
//   - 413 for a body over Options.MaxRequestBytes;
//   - 400 for a body that could not be read in full within Options.RequestReadTimeout;
//   - 503 on a connection opened while Options.MaxConnections HTTP connections were open
//     (ServeHTTPListener: at once, before any request, and the connection is then closed),
//     when MaxConnections requests are running already (a handler mounted elsewhere), or
//     during Shutdown.
//
// "Authorization: Bearer X" sets Call.BearerToken to X for every call of the body. The
// handler does not look at the path; mount it where it belongs (ServeHTTPListener mounts it
// on every path).
func (s *Server) HTTPHandler() http.Handler { return httpHandler{s} }

// ServeHTTPListener serves HTTPHandler on ln with the server's timeouts: headers must arrive
// within RequestReadTimeout and idle keep-alive connections close after ReadIdleTimeout.
// Shutdown stops it gracefully. It returns ErrServerClosed after Shutdown.
func (s *Server) ServeHTTPListener(ln net.Listener) error {
	hs := &http.Server{
		Handler:        s.HTTPHandler(),
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:    func(net.Listener) context.Context { return s.baseCtx },
	}
	if t := s.opts.RequestReadTimeout; t > 0 {
		hs.ReadHeaderTimeout = t
	}
	if t := s.opts.ReadIdleTimeout; t > 0 {
		hs.IdleTimeout = t
	}
	// Open connections count against MaxConnections (httpLimitListener); each one counted
	// is let go of here.
	hs.ConnState = func(c net.Conn, state http.ConnState) {
		if state == http.StateClosed || state == http.StateHijacked {
			s.closeHTTPConn()
		}
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.httpServers[hs] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.httpServers, hs)
		s.mu.Unlock()
	}()
	// Its connections read and write with raw system calls, as TCP connections do (rawio_linux.go).
	err := hs.Serve(httpLimitListener{rawListen(ln), s})
	if errors.Is(err, http.ErrServerClosed) {
		return ErrServerClosed
	}
	return err
}

type httpHandler struct{ s *Server }

func (h httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.s
	s.workOutside()
	// The body's deadline is set before anything else: a request refused without its body
	// being read still has it read, or drained, after the reply (net/http does so to keep the
	// connection), and a client that never sends it must not hold the connection.
	rc := http.NewResponseController(w)
	if t := s.opts.RequestReadTimeout; t > 0 {
		_ = rc.SetReadDeadline(time.Now().Add(t))
	}
	if r.URL.Path == healthPath && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		s.serveHealth(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		w.Header().Set("Connection", "close")
		writeHTTPError(w, http.StatusMethodNotAllowed, nil, errInvalidRequest(reasonMethodNotAllowed))
		return
	}
	if !jsonContentType(r.Header.Get("Content-Type")) {
		w.Header().Set("Connection", "close")
		writeHTTPError(w, http.StatusUnsupportedMediaType, nil, errInvalidRequest(reasonUnsupportedMedia))
		return
	}
	limit := s.opts.MaxRequestBytes
	if r.ContentLength > int64(limit) {
		// The reply names the request, as over TCP, when the start of its body is there
		// already: it is read for a moment, not waited for, and not asked for (a client that
		// sent "Expect: 100-continue" is refused before it sends the body).
		var head []byte
		if !strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
			_ = rc.SetReadDeadline(time.Now().Add(idPeek))
			head, _ = io.ReadAll(io.LimitReader(r.Body, firstBodyChunk))
		}
		w.Header().Set("Connection", "close")
		writeHTTPError(w, http.StatusRequestEntityTooLarge, leadingID(head), errRequestTooLarge(limit))
		return
	}
	body, err := readBody(r.Body, r.ContentLength, limit)
	if err != nil {
		w.Header().Set("Connection", "close")
		if errors.Is(err, errBodyTooLarge) {
			writeHTTPError(w, http.StatusRequestEntityTooLarge, leadingID(body), errRequestTooLarge(limit))
		} else {
			writeHTTPError(w, http.StatusBadRequest, nil, errParse(reasonIncompleteBody))
		}
		return
	}
	// Counted once its body is in: a client slow to send one holds no other caller's place.
	leave, refusal := s.enterHTTP()
	if refusal != nil {
		w.Header().Set("Connection", "close")
		writeHTTPError(w, http.StatusServiceUnavailable, nil, refusal)
		return
	}
	defer leave()

	client := ClientInfo{Addr: remoteHost(r.RemoteAddr), Transport: TransportHTTP}
	out := getOut()
	defer putOut(out)
	if !s.serveFrame(r.Context(), body, client, bearerToken(r.Header.Get("Authorization")), out) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	out.b = append(out.b, '\n')
	if t := s.opts.WriteTimeout; t > 0 {
		_ = rc.SetWriteDeadline(time.Now().Add(t))
	}
	header := w.Header()
	header.Set("Content-Type", "application/json")
	header.Set("Content-Length", strconv.Itoa(len(out.b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out.b)
}

// httpLimitListener hands ServeHTTPListener's server the connections within
// MaxConnections. One over it is answered 503 with tooManyConnections and closed, as a TCP
// connection over it gets an error line: once its request's head has come (a reply before
// it is one Go's client fails the request on), or after a second without one, in the
// bounded pool of refusals (Server.refuse), so that connections that send nothing cannot
// hold a descriptor each beyond any limit.
type httpLimitListener struct {
	net.Listener
	s *Server
}

func (l httpLimitListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil || l.s.openHTTPConn() {
			return nc, err
		}
		refusal := errTooManyConnections(l.s.opts.MaxConnections)
		l.s.refuse(nc, TransportHTTP, refusal, httpRefusal(refusal))
	}
}

// httpRefusal is the whole reply that refuses an HTTP connection: 503, the connection
// closed, the error in the body.
func httpRefusal(refusal *jsonrpc2.Error) *outBuf {
	body := getOut()
	defer putOut(body)
	body.appendError(nil, refusal)
	body.b = append(body.b, '\n')
	out := getOut()
	out.b = append(out.b, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "...)
	out.b = strconv.AppendInt(out.b, int64(len(body.b)), 10)
	out.b = append(out.b, "\r\n\r\n"...)
	out.b = append(out.b, body.b...)
	return out
}

// openHTTPConn counts an HTTP connection if it is within MaxConnections, and reports whether
// it is.
func (s *Server) openHTTPConn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.atConnLimit(s.httpConns) {
		return false
	}
	s.httpConns++
	return true
}

// closeHTTPConn ends the count of a connection openHTTPConn counted.
func (s *Server) closeHTTPConn() {
	s.mu.Lock()
	s.httpConns--
	s.mu.Unlock()
}

// enterHTTP counts a running HTTP request against MaxConnections.
func (s *Server) enterHTTP() (leave func(), refusal *jsonrpc2.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, errShuttingDown()
	}
	if s.atConnLimit(s.httpActive) {
		return nil, errTooManyConnections(s.opts.MaxConnections)
	}
	s.httpActive++
	return s.leaveHTTP, nil
}

func (s *Server) leaveHTTP() {
	s.mu.Lock()
	s.httpActive--
	if s.httpActive == 0 && s.httpIdle != nil {
		close(s.httpIdle)
		s.httpIdle = nil
	}
	s.mu.Unlock()
}

var errBodyTooLarge = errors.New("rpc: request body too large")

// idPeek is how long a body over the limit is read for the id its reply carries.
const idPeek = 20 * time.Millisecond

// firstBodyChunk is the most readBody reserves before a body's bytes arrive.
const firstBodyChunk = 64 << 10

// readBody reads a whole body of at most limit bytes into a new slice (calls keep slices of
// it, so it is not pooled). A longer body is errBodyTooLarge, returned with the bytes read.
func readBody(body io.Reader, contentLength int64, limit int) ([]byte, error) {
	size := 512
	if contentLength > 0 {
		// Room to see the EOF without growing, up to a first chunk: beyond it the buffer
		// grows with what arrives, so clients that announce big bodies and send nothing do
		// not get a megabyte each reserved.
		size = int(min(contentLength+1, firstBodyChunk))
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return buf, errBodyTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// healthPath answers GET and HEAD with whether the server can serve calls, for load
// balancers and orchestrators' probes: 200 {"status":"serving"}, or 503
// {"status":"unavailable","error":{…}} with the error a call would get now (1010
// storeUnavailable while Redis does not answer, or while the disk under --data is too full
// for changes). Any other method there is a JSON-RPC POST.
const healthPath = "/health"

// healthTimeout bounds a health check, so that a probe is answered while the store hangs.
const healthTimeout = 2 * time.Second

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	var err error
	if hc, ok := s.d.(HealthChecker); ok {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		err = hc.Health(ctx)
		cancel()
	}
	body := []byte(`{"status":"serving"}` + "\n")
	status := http.StatusOK
	if err != nil {
		status = http.StatusServiceUnavailable
		wire, _ := json.Marshal(toWireError(s.log, err))
		body = fmt.Appendf(nil, `{"status":"unavailable","error":%s}`+"\n", wire)
	}
	header := w.Header()
	header.Set("Content-Type", "application/json")
	header.Set("Cache-Control", "no-store")
	header.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// writeHTTPError answers with the error e for the request with this id (nil: null).
func writeHTTPError(w http.ResponseWriter, status int, id []byte, e *jsonrpc2.Error) {
	out := getOut()
	defer putOut(out)
	out.appendError(id, e)
	out.b = append(out.b, '\n')
	header := w.Header()
	header.Set("Content-Type", "application/json")
	header.Set("Content-Length", strconv.Itoa(len(out.b)))
	w.WriteHeader(status)
	_, _ = w.Write(out.b)
}

// jsonContentType accepts no Content-Type, application/json and the JSON-RPC media types
// some clients send. Refusing text/plain and forms keeps browsers' simple cross-site POSTs
// out.
func jsonContentType(value string) bool {
	if value == "" {
		return true
	}
	mediaType, _, err := mime.ParseMediaType(value)
	if err != nil {
		return false
	}
	switch mediaType {
	case "application/json", "application/json-rpc", "application/jsonrequest":
		return true
	}
	return false
}

// bearerToken returns X from "Bearer X" (scheme case-insensitive), "" otherwise.
func bearerToken(authorization string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

func remoteHost(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}
