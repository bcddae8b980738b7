package rpc_test

// FuzzDispatchParams checks that no params bytes, for any method, make rpc.Service panic,
// answer -32603, answer an application error its method does not document, return a result
// its schema rejects, or miss (or invent) a duplicate member; FuzzStdioFrames checks the frame
// reader behind every stream transport.

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/schemas"
)

// seedCorpus returns the files of the seed corpus testdata/fuzz/<target> at the repository
// root, by file name.
func seedCorpus(f *testing.F, target string) map[string][]byte {
	f.Helper()
	dir := filepath.Join("..", "testdata", "fuzz", target)
	entries, err := os.ReadDir(dir)
	if err != nil {
		f.Fatalf("seed corpus: %v", err)
	}
	seeds := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		seeds[e.Name()] = data
	}
	if len(seeds) == 0 {
		f.Fatalf("seed corpus %s is empty", dir)
	}
	return seeds
}

// dispatchFixture is a fresh service per input, so that any failure reproduces from the input
// alone. Params may name its tokens: $ADMIN, $USER (alice), $OTHER (bob), $EXPIRED (alice's,
// expired), $USERID (the sessionId of $USER) and $ADMINPW.
func dispatchFixture(t *testing.T) (*svc, *strings.Replacer) {
	// The cheapest argon2id there is: the fixture hashes eight times per input.
	s := newSvc(t, func(c *engine.Config) { c.Hash = engine.HashParams{MemoryKiB: 8, Iterations: 1, Parallelism: 1} })
	admin := s.login("admin", adminPassword, nil)
	for _, user := range []string{"alice", "bob"} {
		s.must("createAccount", map[string]any{"authToken": admin.AuthToken, "username": user, "password": user + "-password"}, nil)
	}
	alice := s.login("alice", "alice-password", nil)
	bob := s.login("bob", "bob-password", nil)
	expired := s.login("alice", "alice-password", map[string]any{"idleConnectionTimeoutSeconds": 1})
	s.clock.Advance(time.Minute)
	return s, strings.NewReplacer("$ADMINPW", adminPassword, "$ADMIN", admin.AuthToken, "$USERID", alice.SessionID,
		"$USER", alice.AuthToken, "$OTHER", bob.AuthToken, "$EXPIRED", expired.AuthToken)
}

func FuzzDispatchParams(f *testing.F) {
	for name, data := range seedCorpus(f, "FuzzDispatchParams") {
		method, _, _ := strings.Cut(name, "__")
		f.Add(method, data)
	}
	byName := map[string]rpc.Method{}
	for _, m := range rpc.Methods {
		byName[m.Name] = m
	}
	f.Fuzz(func(t *testing.T, method string, params []byte) {
		m, ok := byName[method]
		if !ok {
			// Mutated names still exercise some method.
			m = rpc.Methods[len(method)%len(rpc.Methods)]
		}
		s, tokens := dispatchFixture(t)
		params = []byte(tokens.Replace(string(params)))
		r := s.rawCall(m.Name, params, "", loopback)
		if r.err == nil {
			if err := schemas.ValidateResult(m.Name, r.result); err != nil {
				t.Fatalf("%s %q: result %s does not match its schema: %v", m.Name, params, r.result, err)
			}
			return
		}
		code := r.err.Code
		switch {
		case code == jsonrpc2.CodeInternalError || code == 0:
			t.Fatalf("%s %q: %v", m.Name, params, r)
		case code == jsonrpc2.CodeInvalidParams:
			if r.err.Message != "Invalid params" || r.data()["reason"] == nil {
				t.Fatalf("%s %q: -32602 without data.reason: %v", m.Name, params, r)
			}
		case code < 0:
			t.Fatalf("%s %q: protocol error %v from the dispatcher", m.Name, params, r)
		case !slices.Contains(m.Errors, int(code)):
			t.Fatalf("%s %q: error %v is not among the method's documented errors %v", m.Name, params, r, m.Errors)
		}
		trimmed := bytes.TrimSpace(params)
		wellFormed := len(trimmed) == 0 || json.Valid(trimmed) && (trimmed[0] == '{' || trimmed[0] == '[' || string(trimmed) == "null")
		if !wellFormed && code != jsonrpc2.CodeInvalidParams {
			t.Fatalf("%s %q: malformed params answered %v, want -32602", m.Name, params, r)
		}
		// Duplicate members, checked against a plain decoder: an object with one is always
		// refused naming it, and nothing else is refused as one.
		name, dup := referenceDuplicate(trimmed)
		refusedAsDup := code == jsonrpc2.CodeInvalidParams && r.data()["reason"] == "duplicate member"
		field, _ := r.data()["field"].(string) // left out when it is ""
		if len(trimmed) > 0 && trimmed[0] == '[' && strings.HasSuffix(field, "."+name) {
			field = name // the reference does not know the positional params' names
		}
		if refusedAsDup && (!dup || field != name) {
			t.Fatalf("%s %q: %v, but the first duplicate member is %q (%v)", m.Name, params, r, name, dup)
		}
		// Invalid UTF-8 never reaches a method (the protocol layer answers -32700), and names
		// that differ only in invalid bytes decode alike: the reference would see a duplicate.
		if dup && wellFormed && trimmed[0] == '{' && utf8.Valid(trimmed) && !refusedAsDup {
			t.Fatalf("%s %q: %v, want the duplicate member %q refused", m.Name, params, r, name)
		}
	})
}

// referenceDuplicate finds the first member given twice in one object, with encoding/json's
// tokenizer: the slow, obviously right version of what rpc.Service checks.
func referenceDuplicate(raw []byte) (string, bool) {
	type container struct {
		names     map[string]bool // nil for an array
		expectKey bool
		key       string // the member the container is the value of, or in (an array's)
		last      string // an object's latest member name
	}
	var stack []container
	open := func(names map[string]bool) {
		c := container{names: names, expectKey: names != nil}
		if n := len(stack); n > 0 {
			if c.key = stack[n-1].key; stack[n-1].names != nil {
				c.key = stack[n-1].last
			}
		}
		stack = append(stack, c)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		if n := len(stack); n > 0 && stack[n-1].names != nil && stack[n-1].expectKey {
			if name, ok := tok.(string); ok {
				if stack[n-1].names[name] {
					var path []string
					for _, c := range stack {
						if c.names != nil && c.key != "" {
							path = append(path, c.key)
						}
					}
					return strings.Join(append(path, name), "."), true
				}
				stack[n-1].names[name] = true
				stack[n-1].expectKey = false
				stack[n-1].last = name
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			open(map[string]bool{})
			continue
		case json.Delim('['):
			open(nil)
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if n := len(stack); n > 0 && stack[n-1].names != nil {
			stack[n-1].expectKey = true
		}
	}
}

// FuzzStdioFrames feeds any byte stream to ServeStdio, in both framings: it must end at EOF,
// and every reply must be a whole frame holding a JSON-RPC response (or a batch of them), never
// -32603.
func FuzzStdioFrames(f *testing.F) {
	for name, data := range seedCorpus(f, "FuzzStdioFrames") {
		f.Add(strings.HasPrefix(name, "contentlength__"), data)
	}
	echo := rpc.DispatcherFunc(func(_ context.Context, call *rpc.Call) (any, error) {
		switch call.Method {
		case "fail":
			return nil, rpc.InvalidParams("x", "failing on purpose")
		case "null":
			return nil, nil
		}
		return call.Params, nil
	})
	f.Fuzz(func(t *testing.T, contentLength bool, input []byte) {
		framing := rpc.FramingNewline
		if contentLength {
			framing = rpc.FramingContentLength
		}
		srv := rpc.NewServer(echo, rpc.Options{MaxRequestBytes: 256, MaxBatch: 4, Logger: slog.New(slog.DiscardHandler)})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var out bytes.Buffer
		// Any input ends with nil, a stream cut inside a Content-Length message too; an error
		// (a timeout above all) is a failure.
		if err := srv.ServeStdio(ctx, bytes.NewReader(input), &out, framing); err != nil {
			t.Fatalf("ServeStdio: %v (input %q)", err, input)
		}
		for _, reply := range splitReplies(t, out.Bytes(), contentLength) {
			checkResponse(t, reply, input)
		}
	})
}

// splitReplies splits what the server wrote into frames, failing on a truncated one.
func splitReplies(t *testing.T, out []byte, contentLength bool) [][]byte {
	t.Helper()
	var frames [][]byte
	for len(out) > 0 {
		if !contentLength {
			line, rest, ok := bytes.Cut(out, []byte("\n"))
			if !ok {
				t.Fatalf("a reply without its newline: %q", out)
			}
			frames, out = append(frames, line), rest
			continue
		}
		header, rest, ok := bytes.Cut(out, []byte("\r\n\r\n"))
		if !ok {
			t.Fatalf("a reply without its header: %q", out)
		}
		value, found := bytes.CutPrefix(header, []byte("Content-Length: "))
		n, err := strconv.Atoi(string(value))
		if !found || err != nil || n > len(rest) {
			t.Fatalf("bad reply header %q", header)
		}
		frames, out = append(frames, rest[:n]), rest[n:]
	}
	return frames
}

func checkResponse(t *testing.T, reply, input []byte) {
	t.Helper()
	var responses []map[string]json.RawMessage
	if len(reply) > 0 && reply[0] == '[' {
		if err := json.Unmarshal(reply, &responses); err != nil || len(responses) == 0 {
			t.Fatalf("reply %q is not a batch of responses (input %q)", reply, input)
		}
	} else {
		var one map[string]json.RawMessage
		if err := json.Unmarshal(reply, &one); err != nil {
			t.Fatalf("reply %q is not JSON: %v (input %q)", reply, err, input)
		}
		responses = append(responses, one)
	}
	for _, r := range responses {
		_, hasResult := r["result"]
		_, hasError := r["error"]
		if string(r["jsonrpc"]) != `"2.0"` || hasResult == hasError || r["id"] == nil {
			t.Fatalf("not a JSON-RPC 2.0 response: %q (input %q)", reply, input)
		}
		if hasError {
			var e jsonrpc2.Error
			if err := json.Unmarshal(r["error"], &e); err != nil || e.Code == 0 || e.Code == jsonrpc2.CodeInternalError {
				t.Fatalf("error %s (input %q)", r["error"], input)
			}
		}
	}
}

// TestDispatchSeedsReachTheMethods checks the seed corpus of FuzzDispatchParams: every method
// has seeds, and every method has one that succeeds, so fuzzing starts past the params checks.
func TestDispatchSeedsReachTheMethods(t *testing.T) {
	dir := filepath.Join("..", "testdata", "fuzz", "FuzzDispatchParams")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	succeeded := map[string]bool{}
	for _, e := range entries {
		method, _, ok := strings.Cut(e.Name(), "__")
		if !ok {
			t.Errorf("seed %s is not named METHOD__LABEL", e.Name())
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		s, tokens := dispatchFixture(t)
		if r := s.rawCall(method, []byte(tokens.Replace(string(data))), "", loopback); r.err == nil {
			succeeded[method] = true
		}
	}
	for _, m := range rpc.Methods {
		if !succeeded[m.Name] {
			t.Errorf("no seed of %s succeeds", m.Name)
		}
	}
}
