package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sourcegraph/jsonrpc2"
)

// scannerCases are JSON texts on which the scanner must agree with encoding/json.
var scannerCases = []string{
	``, ` `, `{}`, `[]`, `[ ]`, `{ }`, `null`, `true`, `false`, `nul`, `truex`, `0`, `-0`, `-`, `01`, `1.`,
	`.5`, `1.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.5e-10`, `12345678901234567890123`,
	`""`, `"a"`, `"\u00e9"`, `"\u00g9"`, `"\ud800"`, `"\"`, `"\\"`, `"\/"`, `"\x"`, `"a` + "\t" + `"`,
	`"é"`, `"😀"`, `[1,2,3]`, `[1,2,]`, `[,1]`, `[1 2]`, `{"a":1}`, `{"a":1,}`, `{"a"}`, `{"a":}`,
	`{1:2}`, `{"a":1 "b":2}`, `{"a":[{"b":{"c":[]}}]}`, `[[[[[]]]]]`, `[[[[[]]]]`, `[]]`, `{}}`,
	" \t\r\n{\"a\" : [ 1 , 2 ] }\n ", `{"a":1}{}`, `[1]x`, `"a"  `, `[true,false,null]`, `[tru]`,
	`{"a":"b","a":"c"}`, `[-]`, `[-a]`, `[1.e3]`, `[0.0e0]`, `[0x10]`, `[Infinity]`, `[NaN]`,
	`['a']`, `{"a":1]`, `[1}`,
}

// TestScannerAgreesWithEncodingJSON checks the scanner's verdict against json.Valid on a table of valid and invalid texts.
func TestScannerAgreesWithEncodingJSON(t *testing.T) {
	var sc scanner
	for _, text := range scannerCases {
		if got, want := sc.valid([]byte(text)), json.Valid([]byte(text)); got != want {
			t.Errorf("%q: scanner says %v, encoding/json %v", text, got, want)
		}
	}
}

// TestScannerRejectsInvalidUTF8 checks that invalid UTF-8 in a string fails and is reported as such.
func TestScannerRejectsInvalidUTF8(t *testing.T) {
	var sc scanner
	for _, text := range []string{"\"\xff\"", "\"\xc3\"", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"", "\"a\xe2\x82\""} {
		if sc.valid([]byte(text)) || !sc.badUTF8 {
			t.Errorf("%q: valid=%v badUTF8=%v", text, !sc.badUTF8, sc.badUTF8)
		}
	}
}

// FuzzScanner checks that the scanner agrees with encoding/json on any valid UTF-8 input and never panics.
func FuzzScanner(f *testing.F) {
	for _, text := range scannerCases {
		f.Add(text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		var sc scanner
		got := sc.valid([]byte(text))
		if utf8.ValidString(text) && got != json.Valid([]byte(text)) {
			t.Fatalf("%q: scanner says %v", text, got)
		}
	})
}

// FuzzServeFrame checks that any frame gets a reply that is one line of valid JSON, never -32603 (the fake dispatcher fails only on purpose).
func FuzzServeFrame(f *testing.F) {
	for _, line := range strings.Split(specExamples+idFidelity, "\n") {
		if after, ok := strings.CutPrefix(line, "--> "); ok {
			f.Add(after)
		}
	}
	for _, tc := range malformedCases {
		f.Add(tc.frame)
	}
	fake := newFakeDispatcher()
	safe := DispatcherFunc(func(ctx context.Context, call *Call) (any, error) {
		if call.Method == "block" || call.Method == "big" {
			return nil, nil // neither waits nor allocates what the input asks
		}
		return fake.Dispatch(ctx, call)
	})
	srv := NewServer(safe, Options{MaxBatch: 5, Logger: slog.New(slog.DiscardHandler)})
	f.Fuzz(func(t *testing.T, frame string) {
		out := getOut()
		defer putOut(out)
		if !srv.serveFrame(context.Background(), []byte(frame), ClientInfo{}, "", out) {
			return
		}
		if !json.Valid(out.b) || strings.ContainsAny(string(out.b), "\r\n") {
			t.Fatalf("reply %q is not one line of JSON", out.b)
		}
	})
}

// TestParseFrame checks how frames split into requests: kinds, reasons, notifications and kept ids.
func TestParseFrame(t *testing.T) {
	type req struct {
		invalid string
		id      string // "-" when no id is echoed
		notif   bool
	}
	tests := []struct {
		frame  string
		kind   frameKind
		reason string
		reqs   []req
	}{
		{`{"jsonrpc":"2.0","method":"m","id":1}`, kindSingle, "", []req{{"", "1", false}}},
		{`{"jsonrpc":"2.0","method":"m"}`, kindSingle, "", []req{{"", "-", true}}},
		{`{"jsonrpc":"2.0","method":"m","id":null}`, kindSingle, "", []req{{"", "null", false}}},
		{`{"jsonrpc":"2.0","method":"m","params":{},"id":"x"}`, kindSingle, "", []req{{"", `"x"`, false}}},
		{`{"jsonrpc":"2.0","method":"m","params":[],"extra":{"deep":[1]},"id":2}`, kindSingle, "", []req{{"", "2", false}}},
		{`{"jsonrpc" : "2.0" , "method" : "m" , "id" : 3 }`, kindSingle, "", []req{{"", "3", false}}},
		{`{"\u006asonrpc":"2\u002e0","m\u0065thod":"m","id":4}`, kindSingle, "", []req{{"", "4", false}}},
		{`{}`, kindSingle, "", []req{{reasonBadVersion, "-", true}}},
		{`{"jsonrpc":2.0,"method":"m","id":1}`, kindSingle, "", []req{{reasonBadVersion, "1", false}}},
		{`{"jsonrpc":"2.0","method":null,"id":1}`, kindSingle, "", []req{{reasonBadMethod, "1", false}}},
		{`{"jsonrpc":"2.0","method":"m","params":1,"id":1}`, kindSingle, "", []req{{reasonBadParams, "1", false}}},
		{`{"jsonrpc":"2.0","method":"m","params":null,"id":1}`, kindSingle, "", []req{{"", "1", false}}},
		{`{"jsonrpc":"2.0","method":"m","params":"s"}`, kindSingle, "", []req{{reasonBadParams, "-", true}}},
		{`{"jsonrpc":"2.0","method":"m","id":false}`, kindSingle, "", []req{{reasonBadID, "-", false}}},
		{`{"jsonrpc":"2.0","jsonrpc":"2.0","method":"m","id":1}`, kindSingle, "", []req{{reasonDuplicateMember, "1", false}}},
		{`{"jsonrpc":"2.0","method":"m","id":1,"id":1}`, kindSingle, "", []req{{reasonDuplicateMember, "-", false}}},
		{`42`, kindSingle, "", []req{{reasonNotAnObject, "-", true}}},
		{`[]`, kindBatch, "", nil},
		{` [ {"jsonrpc":"2.0","method":"m","id":1} , 5 ] `, kindBatch, "", []req{{"", "1", false}, {reasonNotAnObject, "-", true}}},
		{`[{"jsonrpc":"2.0","method":"m"},{"jsonrpc":"2.0","method":"m"}]`, kindBatch, "", []req{{"", "-", true}, {"", "-", true}}},
		{`[{"jsonrpc":"2.0","method":"m"},]`, kindParseError, reasonInvalidJSON, nil},
		{`{"jsonrpc":"2.0","method":"m"`, kindParseError, reasonInvalidJSON, nil},
		{"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\"}", kindParseError, reasonInvalidUTF8, nil},
		{``, kindParseError, reasonInvalidJSON, nil},
	}
	p := getParser()
	defer putParser(p)
	for _, tc := range tests {
		kind, reason := p.parse([]byte(tc.frame), 100)
		if kind != tc.kind || reason != tc.reason {
			t.Errorf("%s: kind %d %q, want %d %q", tc.frame, kind, reason, tc.kind, tc.reason)
			continue
		}
		if kind == kindParseError {
			continue
		}
		if len(p.reqs) != len(tc.reqs) {
			t.Errorf("%s: %d requests, want %d", tc.frame, len(p.reqs), len(tc.reqs))
			continue
		}
		for i, want := range tc.reqs {
			r := &p.reqs[i]
			id := "-"
			if r.id != nil {
				id = string(r.id)
			}
			got := req{r.invalid, id, r.isNotification()}
			if got != want {
				t.Errorf("%s: request %d is %+v, want %+v", tc.frame, i, got, want)
			}
		}
	}
}

// TestBatchLimit checks that a batch over MaxBatch is refused whole, and one at the limit is served.
func TestBatchLimit(t *testing.T) {
	ts := newTestServer(t, Options{MaxBatch: 3})
	one := `{"jsonrpc":"2.0","method":"get_data","id":1}`
	tests := []struct {
		frame string
		want  string
	}{
		{"[" + strings.Repeat(one+",", 3) + one + "]",
			`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"reason":"batchTooLarge","limit":3}},"id":null}`},
		{"[" + strings.Repeat(one+",", 2) + one + "]",
			"[" + strings.Repeat(`{"jsonrpc":"2.0","result":["hello",5],"id":1},`, 2) + `{"jsonrpc":"2.0","result":["hello",5],"id":1}]`},
		{"[" + strings.Repeat(one+",", 200) + one + ",]",
			`{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":{"reason":"invalidJson"}},"id":null}`},
	}
	for _, tc := range tests {
		out := getOut()
		ts.serveFrame(context.Background(), []byte(tc.frame), ClientInfo{}, "", out)
		if string(out.b) != tc.want {
			t.Errorf("%.40s…: got %s\nwant %s", tc.frame, out.b, tc.want)
		}
		putOut(out)
	}
	if n := ts.fake.calls.Load(); n != 3 {
		t.Errorf("dispatcher ran %d calls, want 3 (none from the refused batch)", n)
	}
}

// TestAppendString checks string escaping against encoding/json, invalid UTF-8 included.
func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "ctl\x00\x01\x1f\n\r\t", "é😀", "bad\xffutf8\xc3", "/"} {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}

// TestHelpers checks the exported error constructors.
func TestHelpers(t *testing.T) {
	out := getOut()
	defer putOut(out)
	out.appendError([]byte("1"), MethodNotFound("a\"b"))
	out.b = append(out.b, '\n')
	out.appendError(nil, InvalidParams("username", "must be 1 to 64 bytes"))
	out.b = append(out.b, '\n')
	out.appendError(nil, InvalidParams("", "want an object"))
	want := `{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found","data":{"method":"a\"b"}},"id":1}
{"jsonrpc":"2.0","error":{"code":-32602,"message":"Invalid params","data":{"field":"username","reason":"must be 1 to 64 bytes"}},"id":null}
{"jsonrpc":"2.0","error":{"code":-32602,"message":"Invalid params","data":{"reason":"want an object"}},"id":null}`
	if string(out.b) != want {
		t.Errorf("got\n%s\nwant\n%s", out.b, want)
	}
	var e *jsonrpc2.Error = MethodNotFound("x")
	if e.Code != jsonrpc2.CodeMethodNotFound {
		t.Error("MethodNotFound code")
	}
}

// BenchmarkServeFrame measures parse + dispatch + encode of one request, without a transport.
func BenchmarkServeFrame(b *testing.B) {
	for _, bc := range []struct{ name, frame string }{
		{"positional", `{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}`},
		{"echo-raw", `{"jsonrpc":"2.0","method":"echo","params":{"authToken":"t-0123456789abcdef0123456789abcdef0123456789ab","label":"TickleTime"},"id":"abc"}`},
		{"batch10", "[" + strings.Repeat(`{"jsonrpc":"2.0","method":"get_data","id":1},`, 9) + `{"jsonrpc":"2.0","method":"get_data","id":1}]`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := NewServer(newFakeDispatcher(), Options{})
			frame := []byte(bc.frame)
			client := ClientInfo{Addr: "127.0.0.1", Transport: TransportTCP}
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				out := getOut()
				srv.serveFrame(ctx, frame, client, "", out)
				putOut(out)
			}
		})
	}
}

// BenchmarkParse measures the envelope scan of one request alone.
func BenchmarkParse(b *testing.B) {
	frame := []byte(`{"jsonrpc":"2.0","method":"createSession","params":{"username":"admin","password":"correct horse battery staple","description":"a session"},"id":12345}`)
	p := getParser()
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		p.parse(frame, 100)
	}
}

// TestSkipPlain checks that skipPlain stops at the first byte strStop marks, for every byte
// value at every position within and across eight-byte words, from every start.
func TestSkipPlain(t *testing.T) {
	const n = 27
	for c := range 256 {
		for pos := range n {
			data := bytes.Repeat([]byte{'a'}, n)
			data[pos] = byte(c)
			for start := 0; start <= pos; start++ {
				want := n
				if strStop[c] {
					want = pos
				}
				if got := skipPlain(data, start); got != want {
					t.Fatalf("byte %#02x at %d, from %d: skipPlain = %d, want %d", c, pos, start, got, want)
				}
			}
		}
	}
}
