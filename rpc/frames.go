package rpc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/sourcegraph/jsonrpc2"
)

// Framing selects how JSON-RPC messages are delimited on a byte stream.
type Framing int

const (
	// FramingNewline carries one JSON value per line, replies one per line. Blank lines are
	// ignored and a carriage return before the newline is dropped. It is the default.
	FramingNewline Framing = iota
	// FramingContentLength precedes each message with header lines and a blank line, as the
	// Language Server Protocol does: "Content-Length: 52\r\n\r\n{...}". Headers other than
	// Content-Length are ignored. Replies are framed the same way.
	FramingContentLength
)

// String returns the framing's name: "newline" or "content-length".
func (f Framing) String() string {
	switch f {
	case FramingNewline:
		return "newline"
	case FramingContentLength:
		return "content-length"
	default:
		return "Framing(" + strconv.Itoa(int(f)) + ")"
	}
}

const (
	// initialReadBuffer is the read buffer a connection starts with; it grows for long frames
	// (up to the request size limit) and shrinks back once they are consumed.
	initialReadBuffer = 16 << 10
	// maxHeaderLine bounds one Content-Length header line.
	maxHeaderLine = 4 << 10
	// maxEmptyReads guards against a reader that keeps returning (0, nil).
	maxEmptyReads = 100
)

// frameError is a fault in one frame that leaves the stream in sync: the connection answers it
// with reply (id null, or the request's own when it could be read) and carries on reading.
type frameError struct {
	reply *jsonrpc2.Error
	id    []byte // the request's id when it could be read (leadingID), else nil: id null
}

func (e *frameError) Error() string { return "rpc: bad frame: " + e.reply.Message }

// frameReader cuts a byte stream into frames without copying them: a frame returned by next
// aliases the reader's buffer and is valid until the following call.
//
// It never buffers more than the request size limit: an over-long line is skipped as it
// arrives and an over-long Content-Length body is discarded, each answered by a frameError.
type frameReader struct {
	src     io.Reader
	framing Framing
	max     int // request size limit in bytes

	buf  []byte
	r, w int   // unread data is buf[r:w]
	err  error // read error held back until the data before it is consumed

	discarding bool   // newline framing: skipping the rest of an over-long line
	discardID  []byte // the id of the line discarding skips (leadingID), else nil
	skipBody   int64  // Content-Length framing: bytes of an over-long body still to skip
	inHeaders  bool   // Content-Length framing: between the first header line and the body
	// Content-Length framing, kept across a read error so that next resumes the message: the
	// length its headers gave so far (-1: none yet), and whether they are all read (inBody).
	length int64
	inBody bool

	// arm, when set, is called before every read from src with whether a frame has been
	// started and not finished; the TCP transport sets its read deadline there. An error
	// aborts the read.
	arm func(partial bool) error
}

func newFrameReader(src io.Reader, framing Framing, maxBytes int) *frameReader {
	size := initialReadBuffer
	if maxBytes+2 < size {
		size = maxBytes + 2
	}
	return &frameReader{src: src, framing: framing, max: maxBytes, buf: make([]byte, size)}
}

// partial reports whether the reader is in the middle of a frame.
func (fr *frameReader) partial() bool {
	return fr.w > fr.r || fr.discarding || fr.skipBody > 0 || fr.inHeaders
}

// next returns the next frame. A *frameError reports a frame that is answered with an error
// and skipped; any other error is the stream's (io.EOF at a clean end) and ends it. After a
// read error that is not io.EOF the reader may be called again, for instance after a read
// deadline was extended, and continues where it stopped.
func (fr *frameReader) next() ([]byte, error) {
	fr.shrink()
	if fr.framing == FramingContentLength {
		return fr.nextContentLength()
	}
	if fr.discarding {
		return nil, fr.discardLine()
	}
	line, _, err := fr.readLine(fr.max)
	return line, err
}

// shrink gives back a buffer that grew for one big frame once that frame is consumed, so an
// idle connection does not hold a megabyte.
func (fr *frameReader) shrink() {
	if len(fr.buf) > 4*initialReadBuffer && fr.w-fr.r <= initialReadBuffer {
		small := make([]byte, initialReadBuffer)
		fr.w = copy(small, fr.buf[fr.r:fr.w])
		fr.r = 0
		fr.buf = small
	}
}

// fill reads more bytes into the buffer, compacting or growing it when it is full.
func (fr *frameReader) fill() error {
	if fr.err != nil {
		err := fr.err
		if err == io.EOF {
			// EOF stays: every later read sees it too.
			return err
		}
		fr.err = nil
		return err
	}
	if fr.r == fr.w {
		fr.r, fr.w = 0, 0
	}
	if fr.w == len(fr.buf) {
		if fr.r > 0 {
			fr.w = copy(fr.buf, fr.buf[fr.r:fr.w])
			fr.r = 0
		} else {
			size := 2 * len(fr.buf)
			if limit := max(fr.max, maxHeaderLine) + 2; size > limit {
				size = limit
			}
			if size <= len(fr.buf) {
				// Callers never let a frame outgrow the limit; reaching this is a bug.
				return errors.New("rpc: frame buffer full")
			}
			grown := make([]byte, size)
			copy(grown, fr.buf[:fr.w])
			fr.buf = grown
		}
	}
	if fr.arm != nil {
		if err := fr.arm(fr.partial()); err != nil {
			return err
		}
	}
	for range maxEmptyReads {
		n, err := fr.src.Read(fr.buf[fr.w:])
		fr.w += n
		if err != nil {
			if n > 0 {
				fr.err = err
				return nil
			}
			return err
		}
		if n > 0 {
			return nil
		}
	}
	return io.ErrNoProgress
}

// readLine returns the next line without its line ending, and the offset in buf where it
// started. A line longer than limit is skipped and reported as requestTooLarge. A last line
// without a newline before io.EOF is returned as a line.
func (fr *frameReader) readLine(limit int) (line []byte, start int, err error) {
	scanned := 0
	for {
		if i := bytes.IndexByte(fr.buf[fr.r+scanned:fr.w], '\n'); i >= 0 {
			start = fr.r
			end := fr.r + scanned + i
			fr.r = end + 1
			line = trimCR(fr.buf[start:end])
			if len(line) > limit {
				return nil, start, fr.tooLarge(slices.Clone(leadingID(line)))
			}
			return line, start, nil
		}
		scanned = fr.w - fr.r
		if scanned > limit+1 {
			// Even with a carriage return stripped this line cannot fit: skip it.
			return nil, 0, fr.discardLine()
		}
		if err := fr.fill(); err != nil {
			if err == io.EOF && fr.w > fr.r {
				start = fr.r
				line = trimCR(fr.buf[fr.r:fr.w])
				fr.r = fr.w
				if len(line) > limit {
					return nil, start, fr.tooLarge(slices.Clone(leadingID(line)))
				}
				return line, start, nil
			}
			return nil, 0, err
		}
	}
}

// discardLine skips input up to and including the next newline, holding at most one buffer
// of it, and reports the skipped line as too large.
func (fr *frameReader) discardLine() error {
	if !fr.discarding { // else a read error interrupted it: the line's start is gone
		fr.discarding = true
		fr.discardID = slices.Clone(leadingID(fr.buf[fr.r:fr.w])) // the line's start, before it goes
	}
	for {
		if i := bytes.IndexByte(fr.buf[fr.r:fr.w], '\n'); i >= 0 {
			fr.r += i + 1
			return fr.discarded()
		}
		fr.r = fr.w
		if err := fr.fill(); err != nil {
			if err == io.EOF {
				return fr.discarded()
			}
			return err
		}
	}
}

// discarded ends discardLine: the line was too large.
func (fr *frameReader) discarded() error {
	id := fr.discardID
	fr.discarding, fr.discardID = false, nil
	return fr.tooLarge(id)
}

// tooLarge reports a request too large to read, answered with id (nil: null), which must not
// alias the buffer. A client that pipelines can then tell which of its calls it was.
func (fr *frameReader) tooLarge(id []byte) error {
	return &frameError{reply: errRequestTooLarge(fr.max), id: id}
}

// leadingID returns the raw id of the request object that begins data when the "id" member
// comes, whole, before any member that does not (as clients write it: before "params"), and
// is one the request would be answered with (rawRequest's rules: a string, a number or null,
// given once); else nil. data may be the start of a request cut off.
func leadingID(data []byte) []byte {
	req, _ := scanMembers(data)
	return answerID(req)
}

// refusalID tells how to answer a whole frame without serving it: with id (nil: null), or not
// at all (answer false) when the frame is blank or a notification, an object whose members
// are all whole and none of them "id".
func refusalID(frame []byte) (id []byte, answer bool) {
	if frame == nil || isBlank(frame) {
		return nil, false
	}
	req, whole := scanMembers(frame)
	if whole && req.seen&memberID == 0 {
		return nil, false
	}
	return answerID(req), true
}

// answerID is the id of req that a reply carries: the one given, once, when it is valid; else
// nil (null).
func answerID(req rawRequest) []byte {
	if req.seen&memberID == 0 || req.dup&memberID != 0 || !validID(req.id) {
		return nil
	}
	return req.id
}

// scanMembers reads the members of the request object that begins data, up to the first that
// is not whole, and reports whether it read them all (whole: data begins with an object).
func scanMembers(data []byte) (req rawRequest, whole bool) {
	s := scanner{data: data}
	s.skipSpace()
	if s.peek() != '{' {
		return req, false
	}
	s.pos++
	for {
		s.skipSpace()
		keyStart := s.pos
		if !s.str() {
			break
		}
		key := data[keyStart:s.pos]
		s.skipSpace()
		if s.peek() != ':' {
			break
		}
		s.pos++
		s.skipSpace()
		valueStart := s.pos
		if !s.value() {
			break // cut off, or not JSON
		}
		value := data[valueStart:s.pos]
		s.skipSpace()
		next := s.peek() // ',' or '}' once the value is whole (a number may be cut off)
		if next != ',' && next != '}' {
			break
		}
		req.member(key, value)
		if next == '}' {
			return req, true
		}
		s.pos++
	}
	return req, false
}

func trimCR(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		return line[:n-1]
	}
	return line
}

// nextContentLength reads one header block and its body. A malformed header line is
// answered and skipped; if the line holds a "Content-Length:" header after some garbage (a
// body that was longer than announced, say), reading resumes at that header.
func (fr *frameReader) nextContentLength() ([]byte, error) {
	if fr.skipBody > 0 {
		if err := fr.skip(); err != nil {
			return nil, err
		}
		return nil, fr.tooLarge(nil)
	}
	if fr.discarding {
		if err := fr.discardLine(); err != nil {
			var fe *frameError
			if errors.As(err, &fe) {
				fr.inHeaders = false // as readHeaders: the next header block is a new message
				return nil, badHeader("header line too long")
			}
			return nil, err
		}
	}
	if !fr.inHeaders { // else a read error interrupted this message: resume it
		fr.length, fr.inBody = -1, false
	}
	if !fr.inBody {
		if err := fr.readHeaders(); err != nil {
			return nil, err
		}
		if fr.length > int64(fr.max) {
			fr.skipBody = fr.length
			if err := fr.skip(); err != nil {
				return nil, err
			}
			return nil, fr.tooLarge(nil)
		}
		fr.inHeaders, fr.inBody = true, true // a started body is a partial frame
	}
	n := int(fr.length)
	for fr.w-fr.r < n {
		if err := fr.fill(); err != nil {
			if err == io.EOF {
				fr.inHeaders, fr.inBody = false, false
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	fr.inHeaders, fr.inBody = false, false
	body := fr.buf[fr.r : fr.r+n]
	fr.r += n
	return body, nil
}

// readHeaders reads a message's header block up to the blank line after it, into fr.length.
func (fr *frameReader) readHeaders() error {
	for {
		line, start, err := fr.readLine(maxHeaderLine)
		if err != nil {
			var fe *frameError
			if errors.As(err, &fe) {
				fr.inHeaders = false
				return badHeader("header line too long")
			}
			if err == io.EOF && fr.inHeaders {
				fr.inHeaders = false
				return io.ErrUnexpectedEOF
			}
			return err
		}
		if len(line) == 0 {
			if !fr.inHeaders {
				continue // blank lines between messages are harmless
			}
			break
		}
		fr.inHeaders = true
		name, value, ok := splitHeader(line)
		if !ok {
			fr.inHeaders = false
			if i := indexContentLength(line); i > 0 {
				fr.r = start + i
			}
			return badHeader("malformed header line")
		}
		if !asciiEqualFold(name, "Content-Length") {
			continue
		}
		n, ok := parseContentLength(value)
		if !ok || fr.length >= 0 {
			fr.inHeaders = false
			return badHeader("bad Content-Length")
		}
		fr.length = n
	}
	fr.inHeaders = false
	if fr.length < 0 {
		return badHeader("missing Content-Length")
	}
	return nil
}

// skip discards fr.skipBody bytes of an over-long body.
func (fr *frameReader) skip() error {
	for fr.skipBody > 0 {
		if fr.r == fr.w {
			if err := fr.fill(); err != nil {
				if err == io.EOF {
					fr.skipBody = 0
					return io.ErrUnexpectedEOF
				}
				return err
			}
		}
		n := int64(fr.w - fr.r)
		if n > fr.skipBody {
			n = fr.skipBody
		}
		fr.r += int(n)
		fr.skipBody -= n
	}
	return nil
}

func badHeader(why string) error {
	return &frameError{reply: newError(jsonrpc2.CodeParseError, msgParseError,
		fmt.Sprintf(`{"reason":"badHeader","detail":%q}`, why))}
}

// splitHeader splits "Name: value" into a token name and a trimmed value.
func splitHeader(line []byte) (name, value []byte, ok bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, nil, false
	}
	name = line[:colon]
	for _, c := range name {
		if !isTokenChar(c) {
			return nil, nil, false
		}
	}
	return name, bytes.Trim(line[colon+1:], " \t"), true
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}

// parseContentLength accepts a decimal length of at most 18 digits.
func parseContentLength(value []byte) (int64, bool) {
	if len(value) == 0 || len(value) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range value {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// indexContentLength finds a "Content-Length:" header name inside line, ignoring case.
func indexContentLength(line []byte) int {
	const header = "content-length:"
	for i := 0; i+len(header) <= len(line); i++ {
		if asciiEqualFold(line[i:i+len(header)], header) {
			return i
		}
	}
	return -1
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// appendFrameHeader appends what goes before a reply of length n under framing f.
func appendFrameHeader(dst []byte, f Framing, n int) []byte {
	if f == FramingContentLength {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(n), 10)
		dst = append(dst, "\r\n\r\n"...)
	}
	return dst
}

// frameTrailer is what goes after a reply under framing f.
func frameTrailer(f Framing) string {
	if f == FramingContentLength {
		return ""
	}
	return "\n"
}
