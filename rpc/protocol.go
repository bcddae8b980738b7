package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/sourcegraph/jsonrpc2"
)

// Transport names, as they appear in ClientInfo.Transport.
const (
	TransportTCP   = "tcp"
	TransportHTTP  = "http"
	TransportStdio = "stdio"
)

// ClientInfo identifies who sent a request.
type ClientInfo struct {
	// Addr is the client's IP address without a port for TCP and HTTP, and "stdio" for stdio.
	Addr string
	// Transport is TransportTCP, TransportHTTP or TransportStdio.
	Transport string
}

// Call is one valid JSON-RPC request, after the protocol checks.
//
// A Call and everything it holds belong to the dispatcher: nothing in it is reused after
// Dispatch returns, so it may be kept. The one exception is a call of a method that a
// QuickDispatcher calls quick: that Call is reused, and its Params alias a read buffer.
type Call struct {
	// Method is the request's method name.
	Method string
	// Params is the raw JSON of the request's params member: an object or an array, never
	// decoded by the protocol layer. It is nil when the request has no params.
	Params json.RawMessage
	// IsNotification is true for a request without an "id" member. It is still run, but no
	// reply is sent, not even for an error. A request with "id": null is not a notification.
	IsNotification bool
	// Client says who sent the request and over which transport.
	Client ClientInfo
	// BearerToken is the token of an HTTP "Authorization: Bearer" header, "" otherwise.
	BearerToken string
}

// Dispatcher runs calls. It is called concurrently, from many connections and from several
// requests of one connection.
//
// The result is marshalled with encoding/json, except a json.RawMessage, which is sent as it
// is (after a validity check); a nil result is sent as null. An error that is, or wraps, a
// *jsonrpc2.Error is sent with its code, message and data; any other error goes through
// Options.MapError. A -32603 reply never carries detail: the detail is logged. A panic in
// Dispatch is recovered, logged with its stack and answered with -32603 "Internal error".
//
// The context is cancelled when the reply can no longer be delivered: a TCP or stdio
// connection whose replies cannot be written, an HTTP client that disconnected, ServeStdio's
// context ending, or Shutdown giving up waiting. A client that merely closes its sending side
// still gets its replies.
type Dispatcher interface {
	Dispatch(ctx context.Context, call *Call) (result any, err error)
}

// DispatcherFunc adapts an ordinary function to the Dispatcher interface.
type DispatcherFunc func(ctx context.Context, call *Call) (any, error)

// Dispatch calls f(ctx, call).
func (f DispatcherFunc) Dispatch(ctx context.Context, call *Call) (any, error) {
	return f(ctx, call)
}

// CodeUnavailable (-32000, in the range JSON-RPC leaves to implementations) answers a request
// the server cannot take now; data.reason is "tooManyConnections" or "shuttingDown".
const CodeUnavailable = -32000

// Standard error messages of the JSON-RPC 2.0 specification.
const (
	msgParseError     = "Parse error"
	msgInvalidRequest = "Invalid Request"
	msgMethodNotFound = "Method not found"
	msgInvalidParams  = "Invalid params"
	msgInternalError  = "Internal error"
	msgUnavailable    = "Server unavailable"
)

// Reasons in the data member of protocol errors, {"reason": ...}.
const (
	reasonInvalidJSON        = "invalidJson"          // -32700: not JSON
	reasonInvalidUTF8        = "invalidUtf8"          // -32700: a string is not UTF-8
	reasonNotAnObject        = "notAnObject"          // -32600: a request that is not an object
	reasonEmptyBatch         = "emptyBatch"           // -32600: []
	reasonBatchTooLarge      = "batchTooLarge"        // -32600: more than MaxBatch elements
	reasonRequestTooLarge    = "requestTooLarge"      // -32600: more than MaxRequestBytes
	reasonDuplicateMember    = "duplicateMember"      // -32600: a member given twice
	reasonBadVersion         = "badVersion"           // -32600: "jsonrpc" missing or not "2.0"
	reasonBadMethod          = "badMethod"            // -32600: "method" missing or not a string
	reasonBadParams          = "badParams"            // -32600: "params" neither object nor array
	reasonBadID              = "badId"                // -32600: "id" neither string, number nor null
	reasonMethodNotAllowed   = "httpMethodNotAllowed" // HTTP 405
	reasonUnsupportedMedia   = "unsupportedMediaType" // HTTP 415
	reasonIncompleteBody     = "incompleteBody"       // HTTP 400
	reasonIncompleteRequest  = "incompleteRequest"    // -32700: a TCP request cut by RequestReadTimeout
	reasonTooManyConnections = "tooManyConnections"   // -32000
	reasonShuttingDown       = "shuttingDown"         // -32000
)

// MethodNotFound returns the -32601 error for a method the server does not have; data names
// the method: {"method": "foo.get"}.
func MethodNotFound(method string) *jsonrpc2.Error {
	e := &jsonrpc2.Error{Code: jsonrpc2.CodeMethodNotFound, Message: msgMethodNotFound}
	e.SetError(map[string]string{"method": method})
	return e
}

// InvalidParams returns a -32602 error whose data names the offending field and says why:
// {"field": "username", "reason": "must be 1 to 64 bytes"}. field may be "" when the params
// as a whole are wrong (not an object, say).
func InvalidParams(field, reason string) *jsonrpc2.Error {
	e := &jsonrpc2.Error{Code: jsonrpc2.CodeInvalidParams, Message: msgInvalidParams}
	e.SetError(struct {
		Field  string `json:"field,omitempty"`
		Reason string `json:"reason"`
	}{field, reason})
	return e
}

func newError(code int64, message, data string) *jsonrpc2.Error {
	e := &jsonrpc2.Error{Code: code, Message: message}
	if data != "" {
		raw := json.RawMessage(data)
		e.Data = &raw
	}
	return e
}

// reasonData is the data member {"reason": reason}; reasons are plain identifiers.
func reasonData(reason string) string { return `{"reason":"` + reason + `"}` }

func limitData(reason string, limit int) string {
	return `{"reason":"` + reason + `","limit":` + strconv.Itoa(limit) + `}`
}

func errParse(reason string) *jsonrpc2.Error {
	return newError(jsonrpc2.CodeParseError, msgParseError, reasonData(reason))
}

func errInvalidRequest(reason string) *jsonrpc2.Error {
	return newError(jsonrpc2.CodeInvalidRequest, msgInvalidRequest, reasonData(reason))
}

func errRequestTooLarge(limit int) *jsonrpc2.Error {
	return newError(jsonrpc2.CodeInvalidRequest, msgInvalidRequest, limitData(reasonRequestTooLarge, limit))
}

func errBatchTooLarge(limit int) *jsonrpc2.Error {
	return newError(jsonrpc2.CodeInvalidRequest, msgInvalidRequest, limitData(reasonBatchTooLarge, limit))
}

func errTooManyConnections(limit int) *jsonrpc2.Error {
	return newError(CodeUnavailable, msgUnavailable, limitData(reasonTooManyConnections, limit))
}

func errShuttingDown() *jsonrpc2.Error {
	return newError(CodeUnavailable, msgUnavailable, reasonData(reasonShuttingDown))
}

func errInternal() *jsonrpc2.Error {
	return &jsonrpc2.Error{Code: jsonrpc2.CodeInternalError, Message: msgInternalError}
}

// errPanicked marks a dispatch that panicked; it was logged already.
var errPanicked = errors.New("rpc: dispatcher panicked")

// ---------------------------------------------------------------------------------------
// Scanning: a strict, allocation-free JSON validator that also finds the members of a
// request object. Nesting depth is bounded only by the frame size (the stack is a byte per
// level), so deeply nested input is answered, not refused.

// strStop marks the bytes that end the fast path inside a JSON string.
var strStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	for c := 0x80; c < 0x100; c++ {
		t[c] = true
	}
	return t
}()

// Byte masks for testing eight bytes of a word at once (skipPlain).
const (
	ones  = 0x0101010101010101 // 0x01 in every byte
	highs = 0x8080808080808080 // the top bit of every byte
)

// skipPlain returns the index of the first byte at or after i that strStop marks, or
// len(data). It tests eight bytes at a time, so a token's 48 characters take six steps
// instead of 48: with the two scans of a pingSession token (the frame's and the params'),
// BenchmarkRequestPath/pingSession went from 695-699 ns to 675-681.
func skipPlain(data []byte, i int) int {
	for ; i+8 <= len(data); i += 8 {
		if stopsIn(binary.LittleEndian.Uint64(data[i:])) {
			break // the byte loop finds which
		}
	}
	for i < len(data) && !strStop[data[i]] {
		i++
	}
	return i
}

// stopsIn reports whether one of the eight bytes in w is one strStop marks: '"', '\\', below
// 0x20, or 0x80 and above. (v - ones) &^ v & highs is non-zero exactly when a byte of v is
// zero, and (w - 0x20*ones) &^ w & highs when a byte of w is below 0x20, for words whose bytes
// are all below 0x80 (w & highs catches the others).
func stopsIn(w uint64) bool {
	quote, backslash := w^('"'*ones), w^('\\'*ones)
	return ((quote-ones)&^quote|(backslash-ones)&^backslash|(w-0x20*ones)&^w|w)&highs != 0
}

type scanner struct {
	data    []byte
	pos     int
	stack   []byte // '{' or '[' per open container
	badUTF8 bool   // the input failed on invalid UTF-8
}

func (s *scanner) reset(data []byte) {
	s.data, s.pos, s.badUTF8 = data, 0, false
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the byte at the current position, 0 at the end (never valid there).
func (s *scanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// str scans a string that starts at the current position.
func (s *scanner) str() bool {
	data := s.data
	i := s.pos
	if i >= len(data) || data[i] != '"' {
		return false
	}
	i++
	for {
		i = skipPlain(data, i)
		if i >= len(data) {
			return false
		}
		switch c := data[i]; {
		case c == '"':
			s.pos = i + 1
			return true
		case c == '\\':
			i++
			if i >= len(data) {
				return false
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if i+4 >= len(data) {
					return false
				}
				for _, h := range data[i+1 : i+5] {
					if !isHex(h) {
						return false
					}
				}
				i += 5
			default:
				return false
			}
		case c < 0x20:
			return false
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size <= 1 {
				s.badUTF8 = true
				return false
			}
			i += size
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number scans a number per RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	data := s.data
	i := s.pos
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data):
		return false
	case data[i] == '0':
		i++
	case isDigit(data[i]):
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(data) && data[i] == '.' {
		i++
		start := i
		for i < len(data) && isDigit(data[i]) {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		start := i
		for i < len(data) && isDigit(data[i]) {
			i++
		}
		if i == start {
			return false
		}
	}
	s.pos = i
	return true
}

func (s *scanner) literal(word string) bool {
	if len(s.data)-s.pos >= len(word) && string(s.data[s.pos:s.pos+len(word)]) == word {
		s.pos += len(word)
		return true
	}
	return false
}

// key scans an object key and its colon.
func (s *scanner) key() bool {
	if !s.str() {
		return false
	}
	s.skipSpace()
	if s.peek() != ':' {
		return false
	}
	s.pos++
	return true
}

// value scans one JSON value starting at the current position (leading space allowed).
func (s *scanner) value() bool {
	s.stack = s.stack[:0]
	for {
		// A value is expected here.
		s.skipSpace()
		if s.pos >= len(s.data) {
			return false
		}
		switch c := s.data[s.pos]; c {
		case '{':
			s.pos++
			s.skipSpace()
			if s.peek() == '}' {
				s.pos++
				break
			}
			if !s.key() {
				return false
			}
			s.stack = append(s.stack, '{')
			continue
		case '[':
			s.pos++
			s.skipSpace()
			if s.peek() == ']' {
				s.pos++
				break
			}
			s.stack = append(s.stack, '[')
			continue
		case '"':
			if !s.str() {
				return false
			}
		case 't':
			if !s.literal("true") {
				return false
			}
		case 'f':
			if !s.literal("false") {
				return false
			}
		case 'n':
			if !s.literal("null") {
				return false
			}
		default:
			if c != '-' && !isDigit(c) || !s.number() {
				return false
			}
		}
		// A value is complete: close containers until one continues with a comma.
		for {
			if len(s.stack) == 0 {
				return true
			}
			s.skipSpace()
			if s.pos >= len(s.data) {
				return false
			}
			c, top := s.data[s.pos], s.stack[len(s.stack)-1]
			if c == ',' {
				s.pos++
				if top == '{' {
					s.skipSpace()
					if !s.key() {
						return false
					}
				}
				break
			}
			if top == '{' && c == '}' || top == '[' && c == ']' {
				s.pos++
				s.stack = s.stack[:len(s.stack)-1]
				continue
			}
			return false
		}
	}
}

// valid reports whether data is exactly one JSON value, with optional surrounding space.
func (s *scanner) valid(data []byte) bool {
	s.reset(data)
	if !s.value() {
		return false
	}
	s.skipSpace()
	return s.pos == len(s.data)
}

// ---------------------------------------------------------------------------------------
// Parsing a frame into requests.

// rawRequest is one request object as found in a frame; its slices alias the frame.
type rawRequest struct {
	version, method, params, id []byte // raw JSON of each member, nil when absent
	seen                        uint8  // members present (member* bits)
	dup                         uint8  // members present more than once
	invalid                     string // why the request is invalid; "" when it is valid
}

const (
	memberVersion uint8 = 1 << iota
	memberMethod
	memberParams
	memberID
)

// isNotification reports whether the request has no "id" member.
func (r *rawRequest) isNotification() bool { return r.seen&memberID == 0 }

// replyID is the raw id to echo: nil (sent as null) when there is none or it is unusable.
func (r *rawRequest) replyID() []byte { return r.id }

type frameKind uint8

const (
	kindParseError frameKind = iota
	kindSingle
	kindBatch
)

// parser splits a frame into requests. Parsers are pooled; the requests alias the frame.
type parser struct {
	sc       scanner
	reqs     []rawRequest
	batchLen int        // elements in a batch, counted past MaxBatch too
	scratch  rawRequest // elements past MaxBatch are validated here and dropped
}

var parserPool = sync.Pool{New: func() any { return &parser{reqs: make([]rawRequest, 0, 4)} }}

func getParser() *parser { return parserPool.Get().(*parser) }

func putParser(p *parser) {
	clear(p.reqs) // drop references into the frame
	p.reqs = p.reqs[:0]
	p.scratch = rawRequest{}
	p.sc.data = nil
	if cap(p.reqs) > 1024 || cap(p.sc.stack) > 64<<10 {
		return
	}
	parserPool.Put(p)
}

// parse reads a frame: one request, or a batch of at most maxBatch kept requests. It returns
// kindParseError with a reason when the frame is not one valid JSON value.
func (p *parser) parse(frame []byte, maxBatch int) (frameKind, string) {
	sc := &p.sc
	sc.reset(frame)
	p.reqs = p.reqs[:0]
	p.batchLen = 0
	sc.skipSpace()
	kind := kindSingle
	if sc.peek() == '[' {
		kind = kindBatch
		sc.pos++
		sc.skipSpace()
		if sc.peek() == ']' {
			sc.pos++
		} else {
			for {
				sc.skipSpace()
				req := &p.scratch
				if p.batchLen < maxBatch {
					p.reqs = append(p.reqs, rawRequest{})
					req = &p.reqs[len(p.reqs)-1]
				}
				if !p.element(req) {
					return kindParseError, p.syntaxReason()
				}
				if req.invalid != "" {
					req.id = nil // API.md: an invalid element's error has "id": null
				}
				p.batchLen++
				sc.skipSpace()
				if c := sc.peek(); c == ',' {
					sc.pos++
					continue
				} else if c == ']' {
					sc.pos++
					break
				}
				return kindParseError, p.syntaxReason()
			}
		}
	} else {
		p.reqs = append(p.reqs, rawRequest{})
		if !p.element(&p.reqs[0]) {
			return kindParseError, p.syntaxReason()
		}
	}
	sc.skipSpace()
	if sc.pos != len(sc.data) {
		return kindParseError, p.syntaxReason()
	}
	return kind, ""
}

func (p *parser) syntaxReason() string {
	if p.sc.badUTF8 {
		return reasonInvalidUTF8
	}
	return reasonInvalidJSON
}

// element reads one request: an object, or any other value, which is an invalid request.
func (p *parser) element(req *rawRequest) bool {
	*req = rawRequest{}
	if p.sc.peek() == '{' {
		return p.object(req)
	}
	if !p.sc.value() {
		return false
	}
	req.invalid = reasonNotAnObject
	return true
}

// object reads a request object, keeping the raw JSON of the members JSON-RPC defines and
// skipping (but validating) any other member.
func (p *parser) object(req *rawRequest) bool {
	sc := &p.sc
	sc.pos++ // '{'
	sc.skipSpace()
	if sc.peek() == '}' {
		sc.pos++
	} else {
		for {
			sc.skipSpace()
			keyStart := sc.pos
			if !sc.str() {
				return false
			}
			key := sc.data[keyStart:sc.pos]
			sc.skipSpace()
			if sc.peek() != ':' {
				return false
			}
			sc.pos++
			sc.skipSpace()
			valueStart := sc.pos
			if !sc.value() {
				return false
			}
			req.member(key, sc.data[valueStart:sc.pos])
			sc.skipSpace()
			if c := sc.peek(); c == ',' {
				sc.pos++
				continue
			} else if c == '}' {
				sc.pos++
				break
			}
			return false
		}
	}
	req.validate()
	return true
}

// member records one member of a request object; key is its raw JSON string.
func (r *rawRequest) member(key, value []byte) {
	name := key[1 : len(key)-1]
	if bytes.IndexByte(name, '\\') >= 0 {
		var unescaped string
		if json.Unmarshal(key, &unescaped) != nil {
			return
		}
		name = []byte(unescaped)
	}
	var bit uint8
	switch string(name) {
	case "jsonrpc":
		bit, r.version = memberVersion, value
	case "method":
		bit, r.method = memberMethod, value
	case "params":
		bit, r.params = memberParams, value
	case "id":
		bit, r.id = memberID, value
	default:
		return // members JSON-RPC does not define are ignored
	}
	if r.seen&bit != 0 {
		r.dup |= bit
	}
	r.seen |= bit
}

// validate applies the request object rules of JSON-RPC 2.0 and keeps the id only when it
// can be echoed.
func (r *rawRequest) validate() {
	idOK := r.seen&memberID != 0 && r.dup&memberID == 0 && validID(r.id)
	if !idOK {
		r.id = nil
	}
	if string(r.params) == "null" {
		// Strictly params must be an object or array when present, but common clients
		// (sourcegraph/jsonrpc2's Conn, jrpc2) send null for "no params": treat it as absent.
		r.params = nil
	}
	switch {
	case r.dup != 0:
		r.invalid = reasonDuplicateMember
	case !isVersion2(r.version):
		r.invalid = reasonBadVersion
	case r.method == nil || r.method[0] != '"':
		r.invalid = reasonBadMethod
	case r.params != nil && r.params[0] != '{' && r.params[0] != '[':
		r.invalid = reasonBadParams
	case r.seen&memberID != 0 && !idOK:
		r.invalid = reasonBadID
	}
}

// validID reports whether a request's raw id value may be echoed: a string, a number or null.
func validID(raw []byte) bool {
	if len(raw) == 0 {
		return false
	}
	c := raw[0]
	return c == '"' || c == '-' || isDigit(c) || c == 'n'
}

func isVersion2(raw []byte) bool {
	if string(raw) == `"2.0"` {
		return true
	}
	if len(raw) == 0 || raw[0] != '"' || bytes.IndexByte(raw, '\\') < 0 {
		return false
	}
	var v string
	return json.Unmarshal(raw, &v) == nil && v == "2.0"
}

// ---------------------------------------------------------------------------------------
// Encoding replies.

// outBuf accumulates one reply (or one batch of replies). It is pooled together with a
// json.Encoder that writes into it, so a result is encoded without an intermediate copy.
type outBuf struct {
	b   []byte
	enc *json.Encoder
	sc  scanner

	wouldWait bool // the event loop's call said ErrWouldWait: there is no reply (serveMethod)
}

// Write appends p; it lets the json.Encoder write into the buffer.
func (o *outBuf) Write(p []byte) (int, error) {
	o.b = append(o.b, p...)
	return len(p), nil
}

var outPool = sync.Pool{New: func() any {
	o := &outBuf{b: make([]byte, 0, 512)}
	o.enc = json.NewEncoder(o)
	o.enc.SetEscapeHTML(false)
	return o
}}

func getOut() *outBuf {
	o := outPool.Get().(*outBuf)
	o.b, o.wouldWait = o.b[:0], false
	return o
}

func putOut(o *outBuf) {
	if cap(o.b) > 64<<10 {
		return // let a buffer that grew for one big reply go
	}
	o.sc.data = nil
	outPool.Put(o)
}

var errInvalidRaw = errors.New("rpc: json.RawMessage result is not valid JSON")

func appendID(dst, id []byte) []byte {
	if id == nil {
		return append(dst, "null"...)
	}
	return append(dst, id...)
}

// appendResult appends a success reply. On error nothing useful was appended; the caller
// truncates.
func (o *outBuf) appendResult(id []byte, result any) error {
	o.b = append(o.b, `{"jsonrpc":"2.0","result":`...)
	switch r := result.(type) {
	case nil:
		o.b = append(o.b, "null"...)
	case Empty: // the common results, without encoding/json
		o.b = append(o.b, "{}"...)
	case bool:
		o.b = strconv.AppendBool(o.b, r)
	case Session:
		o.b = r.appendJSON(o.b)
	case SessionsResult:
		o.b = r.appendJSON(o.b)
	case json.RawMessage:
		if len(r) == 0 {
			o.b = append(o.b, "null"...)
		} else if !o.appendRaw(r) {
			return errInvalidRaw
		}
	default:
		if err := o.enc.Encode(result); err != nil {
			return err
		}
		o.b = o.b[:len(o.b)-1] // Encode ends with a newline
	}
	o.b = append(o.b, `,"id":`...)
	o.b = appendID(o.b, id)
	o.b = append(o.b, '}')
	return nil
}

// appendError appends an error reply; invalid data is left out rather than sent.
func (o *outBuf) appendError(id []byte, e *jsonrpc2.Error) {
	o.b = append(o.b, `{"jsonrpc":"2.0","error":{"code":`...)
	o.b = strconv.AppendInt(o.b, e.Code, 10)
	o.b = append(o.b, `,"message":`...)
	o.b = appendString(o.b, e.Message)
	if e.Data != nil && len(*e.Data) > 0 {
		mark := len(o.b)
		o.b = append(o.b, `,"data":`...)
		if !o.appendRaw(*e.Data) {
			o.b = o.b[:mark]
		}
	}
	o.b = append(o.b, `},"id":`...)
	o.b = appendID(o.b, id)
	o.b = append(o.b, '}')
}

// appendRaw appends a raw JSON value after checking it, without line breaks, which can only
// be insignificant space in valid JSON: a reply must fit on one line.
func (o *outBuf) appendRaw(raw []byte) bool {
	if !o.sc.valid(raw) {
		return false
	}
	o.sc.data = nil
	if bytes.IndexByte(raw, '\n') < 0 && bytes.IndexByte(raw, '\r') < 0 {
		o.b = append(o.b, raw...)
		return true
	}
	for _, c := range raw {
		if c != '\n' && c != '\r' {
			o.b = append(o.b, c)
		}
	}
	return true
}

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// ---------------------------------------------------------------------------------------
// Serving a frame: the one code path behind every transport.

// serveFrame answers one frame (a request or a batch). It appends the reply, if there is one,
// to out and reports whether there is; notifications and all-notification batches have none.
// Batch elements run one after another, in order, and their replies keep that order.
func (s *Server) serveFrame(ctx context.Context, frame []byte, client ClientInfo, bearer string, out *outBuf) bool {
	p := getParser()
	defer putParser(p)
	kind, reason := p.parse(frame, s.opts.MaxBatch)
	switch kind {
	case kindParseError:
		out.appendError(nil, errParse(reason))
		return true
	case kindSingle:
		return s.serveRequest(ctx, &p.reqs[0], client, bearer, out)
	}
	if p.batchLen == 0 {
		out.appendError(nil, errInvalidRequest(reasonEmptyBatch))
		return true
	}
	if p.batchLen > s.opts.MaxBatch {
		out.appendError(nil, errBatchTooLarge(s.opts.MaxBatch))
		return true
	}
	start := len(out.b)
	out.b = append(out.b, '[')
	replies := 0
	for i := range p.reqs {
		mark := len(out.b)
		if replies > 0 {
			out.b = append(out.b, ',')
		}
		if s.serveRequest(ctx, &p.reqs[i], client, bearer, out) {
			replies++
		} else {
			out.b = out.b[:mark]
		}
	}
	if replies == 0 {
		out.b = out.b[:start]
		return false
	}
	out.b = append(out.b, ']')
	return true
}

// serveRequest answers one request object, appending its reply unless it is a valid
// notification.
func (s *Server) serveRequest(ctx context.Context, req *rawRequest, client ClientInfo, bearer string, out *outBuf) bool {
	if req.invalid != "" {
		out.appendError(req.replyID(), errInvalidRequest(req.invalid))
		return true
	}
	m, interned := s.methodName(req.method)
	return s.serveMethod(ctx, req, m, interned, client, bearer, out)
}

// serveMethod is serveRequest for a valid request whose method name is decoded. The Call of a
// quick method is reused (QuickDispatcher).
func (s *Server) serveMethod(ctx context.Context, req *rawRequest, m internedMethod, interned bool, client ClientInfo, bearer string, out *outBuf) bool {
	method := m.name
	var call *Call
	if m.quick {
		call = callPool.Get().(*Call)
	} else {
		call = new(Call)
	}
	*call = Call{
		Method:         method,
		Params:         req.params,
		IsNotification: req.isNotification(),
		Client:         client,
		BearerToken:    bearer,
	}
	result, err := s.dispatch(ctx, call)
	wouldWait := err == ErrWouldWait && InEventLoop(ctx)
	var wire *jsonrpc2.Error
	if err != nil && !wouldWait {
		wire = s.wireError(call, err)
	}
	if m.quick {
		*call = Call{}
		callPool.Put(call)
	}
	if wouldWait {
		out.wouldWait = true
		return false
	}
	if !interned && (wire == nil || wire.Code != jsonrpc2.CodeMethodNotFound) {
		s.names.remember(s.internedMethod(method))
	}
	if req.isNotification() {
		return false
	}
	if wire != nil {
		out.appendError(req.replyID(), wire)
		return true
	}
	mark := len(out.b)
	if err := out.appendResult(req.replyID(), result); err != nil {
		out.b = out.b[:mark]
		s.log.Error("rpc: cannot encode result", "method", method,
			"transport", client.Transport, "client", client.Addr, "err", err)
		out.appendError(req.replyID(), errInternal())
	}
	return true
}

var callPool = sync.Pool{New: func() any { return new(Call) }}

// dispatch runs the dispatcher, turning a panic into errPanicked after logging it.
func (s *Server) dispatch(ctx context.Context, call *Call) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("rpc: dispatcher panicked", "method", call.Method,
				"transport", call.Client.Transport, "client", call.Client.Addr,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			result, err = nil, errPanicked
		}
	}()
	return s.d.Dispatch(ctx, call)
}

// wireError turns a dispatch error into what goes on the wire. It never returns code 0, and
// -32603 always goes out as a bare "Internal error" with the detail logged.
func (s *Server) wireError(call *Call, err error) *jsonrpc2.Error {
	if err == errPanicked {
		return errInternal()
	}
	var wire *jsonrpc2.Error
	if !errors.As(err, &wire) || wire == nil {
		wire = nil
		if s.opts.MapError != nil {
			wire = s.opts.MapError(err)
		}
	}
	if wire == nil || wire.Code == 0 || wire.Code == jsonrpc2.CodeInternalError {
		logUnknown(s.log, err, "method", call.Method, "transport", call.Client.Transport, "client", call.Client.Addr)
		return errInternal()
	}
	return wire
}

// methodName decodes the raw method string. Names that dispatched to a known method are
// interned, so the hot path does not allocate a string per request, and an interned name
// says whether its method is quick (QuickDispatcher), so that is not looked up again.
func (s *Server) methodName(raw []byte) (m internedMethod, interned bool) {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') >= 0 {
		var unescaped string
		_ = json.Unmarshal(raw, &unescaped) // validated by the scanner
		return internedMethod{name: unescaped}, false
	}
	if m, ok := s.names.lookup(inner); ok {
		return m, true
	}
	return internedMethod{name: string(inner)}, false
}

// internedMethod is a method name the dispatcher knew, and whether the method is quick.
type internedMethod struct {
	name       string
	quick      bool
	neverWaits bool // quick and never waiting: the event loop may run it (NeverWaiter)
}

// internTable maps method names to shared strings. Reads are lock-free (copy on write); it
// holds at most maxInterned names, and only names the dispatcher knew.
type internTable struct {
	names atomic.Pointer[map[string]internedMethod]
	mu    sync.Mutex
}

const maxInterned = 512

func (t *internTable) lookup(b []byte) (internedMethod, bool) {
	if m := t.names.Load(); m != nil {
		s, ok := (*m)[string(b)]
		return s, ok
	}
	return internedMethod{}, false
}

func (t *internTable) remember(m internedMethod) {
	name := m.name
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.names.Load()
	if old != nil {
		if _, ok := (*old)[name]; ok || len(*old) >= maxInterned {
			return
		}
	}
	next := make(map[string]internedMethod, 1+lenMap(old))
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[name] = m
	t.names.Store(&next)
}

func lenMap(m *map[string]internedMethod) int {
	if m == nil {
		return 0
	}
	return len(*m)
}
