package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/schemas"
)

// A transcript is a readable wire conversation (go-ethereum style) in testdata/rpc/*.txt:
//
//	// a comment
//	--> {"jsonrpc":"2.0","method":"createSession","params":{...},"id":1}
//	<-- {"jsonrpc":"2.0","id":1,"result":{"authToken":"${admin}", ...}}
//
// Every "-->" line is sent as one frame; the "<--" line after it is the one reply expected
// (none when the next line is another "-->", e.g. for notifications). In replies, "$ANY"
// matches any value, "$TIMESTAMP" any RFC 3339 time, "$STRING" any string and "${name}"
// captures the value on first sight and must equal it afterwards. In requests, "${name}" is
// replaced by the captured value. "$ADMIN_PASSWORD" in requests is the admin's password.
type transcriptStep struct {
	line    int
	request string
	reply   string // "" when no reply is expected
}

func readTranscript(t *testing.T, path string) []transcriptStep {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var steps []transcriptStep
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "//"):
		case strings.HasPrefix(line, "--> "):
			steps = append(steps, transcriptStep{line: i + 1, request: strings.TrimPrefix(line, "--> ")})
		case strings.HasPrefix(line, "<-- "):
			if len(steps) == 0 || steps[len(steps)-1].reply != "" {
				t.Fatalf("%s:%d: a reply without its request", path, i+1)
			}
			steps[len(steps)-1].reply = strings.TrimPrefix(line, "<-- ")
		default:
			t.Fatalf("%s:%d: a line must start with -->, <-- or //", path, i+1)
		}
	}
	return steps
}

// transport sends one frame and returns the reply frame, or "" when none is expected.
type transport interface {
	roundTrip(request string, expectReply bool) (string, error)
}

// lineTransport is newline-delimited JSON over TCP or stdio.
type lineTransport struct {
	w io.Writer
	r *bufio.Reader
}

func (lt *lineTransport) roundTrip(request string, expectReply bool) (string, error) {
	if _, err := io.WriteString(lt.w, request+"\n"); err != nil {
		return "", err
	}
	if !expectReply {
		return "", nil
	}
	line, err := lt.r.ReadString('\n')
	return strings.TrimSpace(line), err
}

// httpTransport POSTs each frame.
type httpTransport struct{ url string }

func (ht *httpTransport) roundTrip(request string, expectReply bool) (string, error) {
	resp, err := http.Post(ht.url, "application/json", strings.NewReader(request))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode == http.StatusNoContent {
		if expectReply {
			return "", fmt.Errorf("204 No Content where a reply was expected")
		}
		return "", nil
	}
	if !expectReply {
		return "", fmt.Errorf("HTTP %d with body %s where no reply was expected", resp.StatusCode, body)
	}
	return strings.TrimSpace(string(body)), nil
}

// TestTranscripts replays every wire transcript over TCP, HTTP and stdio against the real
// binary, and over TCP again with the server on one processor, where on Linux an event loop
// answers the requests that never wait and hands the others back (rpc/loop_linux.go).
func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("../../testdata/rpc/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts found: %v", err)
	}
	tcp := func(t *testing.T, p *proc) transport {
		conn, err := net.Dial("tcp", p.tcpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(60 * time.Second))
		return &lineTransport{w: conn, r: bufio.NewReaderSize(conn, 1<<20)}
	}
	transports := map[string]func(t *testing.T) transport{
		"tcp": func(t *testing.T) transport {
			return tcp(t, startServer(t, "--in-memory", "--tcp", "127.0.0.1:0", "--http", "off"))
		},
		"tcp-one-processor": func(t *testing.T) transport {
			return tcp(t, startServerWith(t, func(cmd *exec.Cmd) { cmd.Env = append(cmd.Env, "GOMAXPROCS=1") },
				"--in-memory", "--tcp", "127.0.0.1:0", "--http", "off"))
		},
		"http": func(t *testing.T) transport {
			p := startServer(t, "--in-memory", "--tcp", "off", "--http", "127.0.0.1:0")
			return &httpTransport{url: "http://" + p.httpAddr + "/"}
		},
		"stdio": func(t *testing.T) transport {
			p := startServer(t, "--in-memory", "--stdio")
			return &lineTransport{w: p.stdin, r: bufio.NewReaderSize(p.stdout, 1<<20)}
		},
	}
	for _, file := range files {
		steps := readTranscript(t, file)
		for _, name := range []string{"tcp", "tcp-one-processor", "http", "stdio"} {
			t.Run(strings.TrimSuffix(filepath.Base(file), ".txt")+"/"+name, func(t *testing.T) {
				t.Parallel()
				replay(t, file, steps, transports[name](t))
			})
		}
	}
}

func replay(t *testing.T, file string, steps []transcriptStep, tr transport) {
	vars := map[string]any{}
	for _, st := range steps {
		req := substitute(st.request, vars)
		got, err := tr.roundTrip(req, st.reply != "")
		if err != nil {
			t.Fatalf("%s:%d: %v", file, st.line, err)
		}
		if st.reply == "" {
			continue
		}
		if err := matchJSON(st.reply, got, vars); err != nil {
			t.Fatalf("%s:%d: %v\nrequest: %s\nwant:    %s\ngot:     %s", file, st.line, err, req, st.reply, got)
		}
		if err := validateReplies(req, got); err != nil {
			t.Fatalf("%s:%d: reply does not match the method's result schema: %v\ngot: %s", file, st.line, err, got)
		}
	}
}

// validateReplies checks every successful result in a reply frame against the result schema
// of the method its request called, so behaviour and schemas cannot drift apart.
func validateReplies(request, reply string) error {
	type message struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Result json.RawMessage `json:"result"`
	}
	var reqs, reps []message
	if json.Unmarshal([]byte(request), &reqs) != nil {
		var one message
		if json.Unmarshal([]byte(request), &one) != nil {
			return nil // not a valid request: no result to check
		}
		reqs = []message{one}
	}
	if json.Unmarshal([]byte(reply), &reps) != nil {
		var one message
		if err := json.Unmarshal([]byte(reply), &one); err != nil {
			return err
		}
		reps = []message{one}
	}
	methods := map[string]string{}
	for _, r := range reqs {
		methods[string(r.ID)] = r.Method
	}
	for _, r := range reps {
		if r.Result == nil {
			continue
		}
		method, ok := methods[string(r.ID)]
		if !ok {
			return fmt.Errorf("a result for id %s that no request had", r.ID)
		}
		if err := schemas.ValidateResult(method, r.Result); err != nil {
			return err
		}
	}
	return nil
}

var varRef = regexp.MustCompile(`"\$\{([A-Za-z0-9_.]+)\}"`)

func substitute(s string, vars map[string]any) string {
	s = strings.ReplaceAll(s, "$ADMIN_PASSWORD", testAdminPassword)
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		name := varRef.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok {
			return m
		}
		b, _ := json.Marshal(v)
		return string(b)
	})
}

func decodeJSON(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	return v, nil
}

// matchJSON compares a reply with its expected pattern, binding ${name} captures.
func matchJSON(want, got string, vars map[string]any) error {
	w, err := decodeJSON(want)
	if err != nil {
		return fmt.Errorf("bad expected JSON: %v", err)
	}
	g, err := decodeJSON(got)
	if err != nil {
		return fmt.Errorf("reply is not JSON: %v", err)
	}
	return match("$", w, g, vars)
}

func match(path string, want, got any, vars map[string]any) error {
	if s, ok := want.(string); ok {
		switch {
		case s == "$ANY":
			return nil
		case s == "$STRING":
			if _, ok := got.(string); !ok {
				return fmt.Errorf("%s: want a string, got %v", path, got)
			}
			return nil
		case s == "$TIMESTAMP":
			gs, ok := got.(string)
			if _, err := time.Parse(time.RFC3339, gs); !ok || err != nil || !strings.HasSuffix(gs, "Z") {
				return fmt.Errorf("%s: want an RFC 3339 UTC timestamp, got %v", path, got)
			}
			return nil
		case strings.HasPrefix(s, "${") && strings.HasSuffix(s, "}"):
			name := s[2 : len(s)-1]
			if bound, ok := vars[name]; ok {
				return match(path, bound, got, nil)
			}
			vars[name] = got
			return nil
		}
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, got %v", path, got)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				return fmt.Errorf("%s: unexpected member %q", path, k)
			}
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				return fmt.Errorf("%s: missing member %q", path, k)
			}
			if err := match(path+"."+k, wv, gv, vars); err != nil {
				return err
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%s: want an array of %d, got %v", path, len(w), got)
		}
		for i := range w {
			if err := match(fmt.Sprintf("%s[%d]", path, i), w[i], g[i], vars); err != nil {
				return err
			}
		}
		return nil
	default:
		wb, _ := json.Marshal(want)
		gb, _ := json.Marshal(got)
		if !bytes.Equal(wb, gb) {
			return fmt.Errorf("%s: want %s, got %s", path, wb, gb)
		}
		return nil
	}
}
