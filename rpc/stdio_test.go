package rpc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/sourcegraph/jsonrpc2"
)

// TestStdioEOFFinishesInFlight checks that EOF on input lets calls in flight finish and their replies be flushed before ServeStdio returns nil.
func TestStdioEOFFinishesInFlight(t *testing.T) {
	for _, framing := range []Framing{FramingNewline, FramingContentLength} {
		t.Run(framing.String(), func(t *testing.T) {
			ts := newTestServer(t, Options{})
			client := startStdio(t, ts.Server, framing)
			_ = client.Send([]byte(`{"jsonrpc":"2.0","method":"block","id":1}`))
			_ = client.Send([]byte(subtractFrame))
			ts.fake.waitEntered(t, 1)
			if got, _ := client.Recv(); string(got) != subtractReply {
				t.Fatalf("got %q", got)
			}
			_ = client.CloseSend()
			select {
			case err := <-client.done:
				t.Fatalf("ServeStdio returned %v with a call in flight", err)
			default:
			}
			ts.fake.releaseOne(t)
			if got, _ := client.Recv(); string(got) != `{"jsonrpc":"2.0","result":"released","id":1}` {
				t.Fatalf("got %q", got)
			}
			if err := client.wait(t); err != nil {
				t.Fatalf("ServeStdio: %v", err)
			}
			if got, err := client.Recv(); err != io.EOF {
				t.Fatalf("after return: %q, %v", got, err)
			}
		})
	}
}

// TestStdioEOFInsideMessage checks that input ending inside a message is an end of input like
// any other in both framings: the whole messages are answered, the cut one gets a parse error
// (id null), and ServeStdio returns nil; Content-Length framing also logs the cut as a warning.
func TestStdioEOFInsideMessage(t *testing.T) {
	const cutReply = `{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":{"reason":"badHeader","detail":"input ended inside a message"}},"id":null}`
	withHeader := func(body string) string { return fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body) }
	for _, tc := range []struct {
		name    string
		framing Framing
		input   string
		cut     string // the reply to the cut message
	}{
		{"newline", FramingNewline, subtractFrame + "\n" + `{"jsonrpc":"2.0","met`,
			`{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":{"reason":"invalidJson"}},"id":null}`},
		{"content-length body", FramingContentLength, withHeader(subtractFrame) + "Content-Length: 40\r\n\r\n{\"jsonrpc\":", cutReply},
		{"content-length headers", FramingContentLength, withHeader(subtractFrame) + "Content-Length: 40\r\n", cutReply},
		{"content-length over-long body", FramingContentLength, withHeader(subtractFrame) + "Content-Length: 900000000\r\n\r\n{", cutReply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, Options{})
			var out bytes.Buffer
			if err := ts.ServeStdio(context.Background(), strings.NewReader(tc.input), &out, tc.framing); err != nil {
				t.Fatalf("ServeStdio: %v, want nil", err)
			}
			client := &stdioClient{framing: tc.framing, out: bufio.NewReader(&out)}
			want := map[string]bool{subtractReply: true, tc.cut: true} // in any order
			for range len(want) {
				got, err := client.Recv()
				if !want[string(got)] {
					t.Fatalf("unexpected reply %q, %v; logs:\n%s", got, err, ts.logs.String())
				}
				delete(want, string(got))
			}
			if got, err := client.Recv(); err != io.EOF {
				t.Fatalf("after the replies: %q, %v", got, err)
			}
			warned := strings.Contains(ts.logs.String(), `level=WARN msg="rpc: input ended inside a message`)
			if warned != (tc.framing == FramingContentLength) {
				t.Errorf("warning logged: %v; logs:\n%s", warned, ts.logs.String())
			}
		})
	}
}

// TestStdioContextCancel checks that cancelling ServeStdio's context cancels the calls, flushes and returns the context's error.
func TestStdioContextCancel(t *testing.T) {
	ts := newTestServer(t, Options{})
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	defer inW.Close()
	defer outR.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.ServeStdio(ctx, inR, outW, FramingNewline) }()
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	_, _ = inW.Write([]byte(`{"jsonrpc":"2.0","method":"block","id":1}` + "\n"))
	ts.fake.waitEntered(t, 1)
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("ServeStdio: %v, want context.Canceled", err)
	}
}

// TestStdioWriteFailure checks that ServeStdio returns the write error when nobody reads its output.
func TestStdioWriteFailure(t *testing.T) {
	ts := newTestServer(t, Options{})
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	defer inW.Close()
	outR.Close()
	done := make(chan error, 1)
	go func() { done <- ts.ServeStdio(context.Background(), inR, outW, FramingNewline) }()
	_, _ = inW.Write([]byte(subtractFrame + "\n"))
	if err := <-done; !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("ServeStdio: %v, want io.ErrClosedPipe", err)
	}
}

// TestStdioContentLengthResync checks that Content-Length framing answers a bad header and a bad body, then serves the next message.
func TestStdioContentLengthResync(t *testing.T) {
	ts := newTestServer(t, Options{})
	client := startStdio(t, ts.Server, FramingContentLength)
	_, _ = client.in.Write([]byte("Content-Lenght: 5\r\n\r\n"))
	_ = client.Send([]byte(`{"jsonrpc":`))
	_ = client.Send([]byte(subtractFrame))
	want := map[string]bool{ // replies come in any order
		`{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":{"reason":"badHeader","detail":"missing Content-Length"}},"id":null}`: true,
		`{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":{"reason":"invalidJson"}},"id":null}`:                                 true,
		subtractReply: true,
	}
	for range len(want) {
		got, err := client.Recv()
		if !want[string(got)] {
			t.Fatalf("unexpected reply %s, %v", got, err)
		}
		delete(want, string(got))
	}
}

// TestStdioSourcegraphClient checks interoperability with github.com/sourcegraph/jsonrpc2's Conn using its VS Code (Content-Length) codec.
func TestStdioSourcegraphClient(t *testing.T) {
	ts := newTestServer(t, Options{})
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	go func() { _ = ts.ServeStdio(context.Background(), inR, outW, FramingContentLength) }()
	ctx := context.Background()
	stream := jsonrpc2.NewBufferedStream(pipeConn{outR, inW}, jsonrpc2.VSCodeObjectCodec{})
	client := jsonrpc2.NewConn(ctx, stream, nil)
	defer client.Close()

	var result int
	if err := client.Call(ctx, "sum", []int{1, 2, 4}, &result); err != nil || result != 7 {
		t.Fatalf("sum: %d, %v", result, err)
	}
	var rpcErr *jsonrpc2.Error
	if err := client.Call(ctx, "foobar", nil, &result); !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc2.CodeMethodNotFound {
		t.Fatalf("foobar: %v", err)
	}
}

// pipeConn joins the two pipe ends a client uses into one connection.
type pipeConn struct {
	*io.PipeReader
	*io.PipeWriter
}

func (p pipeConn) Close() error {
	p.PipeReader.Close()
	return p.PipeWriter.Close()
}
