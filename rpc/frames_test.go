package rpc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// readAllFrames reads frames until the stream ends, rendering frame errors as "!reason".
func readAllFrames(t *testing.T, fr *frameReader) ([]string, error) {
	t.Helper()
	var frames []string
	for range 1000 {
		frame, err := fr.next()
		var fe *frameError
		switch {
		case errors.As(err, &fe):
			data := string(*fe.reply.Data)
			reason := data[strings.Index(data, `"reason":"`)+10:]
			frames = append(frames, "!"+reason[:strings.IndexByte(reason, '"')])
		case err != nil:
			return frames, err
		default:
			frames = append(frames, string(frame))
		}
	}
	t.Fatal("reader does not end")
	return nil, nil
}

// TestNewlineFrames checks line splitting, blank lines, CRLF, a last line without newline and over-long lines, whole and byte by byte.
func TestNewlineFrames(t *testing.T) {
	tests := []struct {
		name  string
		input string
		max   int
		want  []string
	}{
		{"one line", "{}\n", 16, []string{"{}"}},
		{"crlf", "{}\r\n[]\r\n", 16, []string{"{}", "[]"}},
		{"blank lines kept for the caller", "\n\n{}\n", 16, []string{"", "", "{}"}},
		{"no final newline", "{}\n[1]", 16, []string{"{}", "[1]"}},
		{"exactly the limit", "0123456789\n", 10, []string{"0123456789"}},
		{"exactly the limit with crlf", "0123456789\r\n", 10, []string{"0123456789"}},
		{"one over the limit", "0123456789a\nok\n", 10, []string{"!requestTooLarge", "ok"}},
		{"far over the limit", strings.Repeat("x", 100000) + "\nok\n", 10, []string{"!requestTooLarge", "ok"}},
		{"over the limit at EOF", strings.Repeat("x", 100), 10, []string{"!requestTooLarge"}},
		{"two long lines in a row", strings.Repeat("x", 50) + "\n" + strings.Repeat("y", 50) + "\nok\n", 10,
			[]string{"!requestTooLarge", "!requestTooLarge", "ok"}},
	}
	for _, tc := range tests {
		for _, oneByte := range []bool{false, true} {
			var src io.Reader = strings.NewReader(tc.input)
			if oneByte {
				src = iotest.OneByteReader(src)
			}
			got, err := readAllFrames(t, newFrameReader(src, FramingNewline, tc.max))
			if err != io.EOF {
				t.Errorf("%s (one byte %v): err %v, want EOF", tc.name, oneByte, err)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("%s (one byte %v): got %q, want %q", tc.name, oneByte, got, tc.want)
			}
		}
	}
}

// TestNewlineLongLineNotBuffered checks that a 16 MiB line over a 1 KiB limit is skipped with the buffer staying small.
func TestNewlineLongLineNotBuffered(t *testing.T) {
	src := io.MultiReader(
		io.LimitReader(repeatReader('x'), 16<<20),
		strings.NewReader("\n{}\n"),
	)
	fr := newFrameReader(src, FramingNewline, 1024)
	got, err := readAllFrames(t, fr)
	if err != io.EOF || strings.Join(got, "|") != "!requestTooLarge|{}" {
		t.Fatalf("got %q, %v", got, err)
	}
	if len(fr.buf) > 4096 {
		t.Errorf("buffer grew to %d bytes for a 1 KiB limit", len(fr.buf))
	}
}

// TestReadBufferShrinks checks that a buffer grown for one big frame is given back.
func TestReadBufferShrinks(t *testing.T) {
	big := strings.Repeat("x", 512<<10)
	fr := newFrameReader(strings.NewReader(big+"\n{}\n"), FramingNewline, 1<<20)
	if frame, err := fr.next(); err != nil || len(frame) != len(big) {
		t.Fatalf("big frame: %d bytes, %v", len(frame), err)
	}
	if frame, err := fr.next(); err != nil || string(frame) != "{}" {
		t.Fatalf("next frame: %q, %v", frame, err)
	}
	if len(fr.buf) > initialReadBuffer {
		t.Errorf("buffer still %d bytes", len(fr.buf))
	}
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// TestContentLengthFrames checks LSP framing: bodies, other headers, malformed headers, bad bodies and over-long bodies, with resync after each.
func TestContentLengthFrames(t *testing.T) {
	msg := func(body string) string {
		return "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	tests := []struct {
		name    string
		input   string
		max     int
		want    []string
		wantErr error
	}{
		{"one message", msg(`{"a":1}`), 100, []string{`{"a":1}`}, io.EOF},
		{"two messages", msg(`{}`) + msg(`[]`), 100, []string{`{}`, `[]`}, io.EOF},
		{"other headers and lower case", "content-type: application/vscode-jsonrpc; charset=utf-8\r\ncontent-length: 2\r\n\r\n{}", 100, []string{`{}`}, io.EOF},
		{"bare newlines", "Content-Length: 2\n\n{}", 100, []string{`{}`}, io.EOF},
		{"blank lines between messages", "\r\n" + msg(`{}`) + "\r\n\r\n" + msg(`[]`), 100, []string{`{}`, `[]`}, io.EOF},
		{"bad body is still a frame", msg(`{"a":`) + msg(`{}`), 100, []string{`{"a":`, `{}`}, io.EOF},
		{"empty body", msg(``) + msg(`{}`), 100, []string{``, `{}`}, io.EOF},
		{"malformed header line", "this is no header\r\n" + msg(`{}`), 100, []string{"!badHeader", `{}`}, io.EOF},
		{"bad length", "Content-Length: two\r\n\r\n" + msg(`{}`), 100, []string{"!badHeader", `{}`}, io.EOF},
		{"duplicate length", "Content-Length: 2\r\nContent-Length: 2\r\n\r\n" + msg(`{}`), 100, []string{"!badHeader", `{}`}, io.EOF},
		{"missing length", "Content-Type: x\r\n\r\n" + msg(`{}`), 100, []string{"!badHeader", `{}`}, io.EOF},
		{"body longer than announced", "Content-Length: 2\r\n\r\n{}}}" + msg(`[]`), 100, []string{`{}`, "!badHeader", `[]`}, io.EOF},
		{"body shorter than announced", "Content-Length: 9\r\n\r\n{}" + msg(`[]`), 100, []string{"{}Content", "!badHeader", "!badHeader"}, io.EOF},
		{"over-long body skipped", msg(strings.Repeat("x", 500)) + msg(`{}`), 100, []string{"!requestTooLarge", `{}`}, io.EOF},
		{"body at the limit", msg(strings.Repeat("x", 100)), 100, []string{strings.Repeat("x", 100)}, io.EOF},
		{"over-long header line", strings.Repeat("h", 10000) + "\r\n" + msg(`{}`), 100, []string{"!badHeader", `{}`}, io.EOF},
		{"EOF in headers", "Content-Length: 2\r\n", 100, nil, io.ErrUnexpectedEOF},
		{"EOF in body", "Content-Length: 20\r\n\r\n{}", 100, nil, io.ErrUnexpectedEOF},
		{"huge length", "Content-Length: 999999999999999999999\r\n\r\n" + msg(`{}`), 100, []string{"!badHeader", `{}`}, io.EOF},
	}
	for _, tc := range tests {
		for _, oneByte := range []bool{false, true} {
			var src io.Reader = strings.NewReader(tc.input)
			if oneByte {
				src = iotest.OneByteReader(src)
			}
			got, err := readAllFrames(t, newFrameReader(src, FramingContentLength, tc.max))
			if err != tc.wantErr {
				t.Errorf("%s (one byte %v): err %v, want %v", tc.name, oneByte, err, tc.wantErr)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("%s (one byte %v): got %q, want %q", tc.name, oneByte, got, tc.want)
			}
		}
	}
}

// TestReadResumesAfterTimeout checks that a read error other than EOF loses no buffered bytes, so reading can resume after a deadline is extended.
func TestReadResumesAfterTimeout(t *testing.T) {
	errTimeout := errors.New("timeout")
	src := &scriptedReader{chunks: []any{`{"a"`, errTimeout, `:1}` + "\n"}}
	fr := newFrameReader(src, FramingNewline, 100)
	if _, err := fr.next(); err != errTimeout {
		t.Fatalf("first read: %v, want the timeout", err)
	}
	if !fr.partial() {
		t.Error("reader does not report the half-read frame")
	}
	if frame, err := fr.next(); err != nil || string(frame) != `{"a":1}` {
		t.Fatalf("after the timeout: %q, %v", frame, err)
	}
}

// TestFramesResumeAfterTimeout checks that a read error at any byte of the input (a
// deadline, say) changes nothing but that one error: the frames, and the frame errors with
// the ids they answer, that follow are those of an uninterrupted read, in both framings,
// whether it falls in a header, a body, a line or header line too long, a body too large or
// a malformed header.
func TestFramesResumeAfterTimeout(t *testing.T) {
	errTimeout := errors.New("timeout")
	const next = "Content-Length: 2\r\n\r\n[]"
	long := strings.Repeat("z", 150)
	inputs := []struct {
		name    string
		framing Framing
		input   string
	}{
		{"two messages", FramingContentLength, "X-Other: 1\r\nContent-Length: 7\r\n\r\n{\"a\":1}" + next},
		{"long header line", FramingContentLength, "Content-Length: 7\r\nX-Long: " + strings.Repeat("x", 5000) + "\r\n\r\n{\"a\":1}" + next},
		{"body too large", FramingContentLength, "Content-Length: 150\r\n\r\n" + long + next},
		{"malformed header", FramingContentLength, "Bogus\r\n\r\n" + next},
		{"lines", FramingNewline, "{\"a\":1}\n[]"},
		{"line too long", FramingNewline, `{"jsonrpc":"2.0","id":7,"params":"` + long + "\"}\n[]"},
	}
	read := func(src io.Reader, framing Framing) (frames string, timeouts int) {
		fr := newFrameReader(src, framing, 100)
		var got []string
		for range 20 {
			frame, err := fr.next()
			var fe *frameError
			switch {
			case err == errTimeout:
				timeouts++
			case err == io.EOF:
				return strings.Join(got, "|"), timeouts
			case errors.As(err, &fe):
				got = append(got, fmt.Sprintf("error %v, id %s", err, fe.id))
			case err != nil:
				got = append(got, "error "+err.Error())
			default:
				got = append(got, string(frame))
			}
		}
		return strings.Join(got, "|"), timeouts
	}
	for _, in := range inputs {
		want, _ := read(strings.NewReader(in.input), in.framing)
		if !strings.HasSuffix(want, "|[]") {
			t.Fatalf("%s: uninterrupted %q, want it to end with the last message", in.name, want)
		}
		for cut := 1; cut < len(in.input); cut++ {
			got, timeouts := read(&scriptedReader{chunks: []any{in.input[:cut], errTimeout, in.input[cut:]}}, in.framing)
			if got != want || timeouts != 1 {
				t.Errorf("%s, timeout after byte %d: %q after %d timeouts, want %q after 1", in.name, cut, got, timeouts, want)
				break
			}
		}
	}
}

// scriptedReader returns its chunks in order: strings as data (over as many reads as they
// take), errors as errors.
type scriptedReader struct{ chunks []any }

func (r *scriptedReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	chunk := r.chunks[0]
	r.chunks = r.chunks[1:]
	if err, ok := chunk.(error); ok {
		return 0, err
	}
	n := copy(p, chunk.(string))
	if rest := chunk.(string)[n:]; rest != "" {
		r.chunks = append([]any{rest}, r.chunks...)
	}
	return n, nil
}

// TestFrameHeader checks the reply framing for both framings.
func TestFrameHeader(t *testing.T) {
	var b bytes.Buffer
	for _, f := range []Framing{FramingNewline, FramingContentLength} {
		b.Write(appendFrameHeader(nil, f, 2))
		b.WriteString("{}")
		b.WriteString(frameTrailer(f))
	}
	if got := b.String(); got != "{}\nContent-Length: 2\r\n\r\n{}" {
		t.Errorf("got %q", got)
	}
	if FramingNewline.String() != "newline" || FramingContentLength.String() != "content-length" {
		t.Error("Framing.String")
	}
}
