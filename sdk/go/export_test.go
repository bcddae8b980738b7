package sessiond

import (
	"bytes"
	"io"
)

// ConnectionStopped returns the channel closed when the current connection of a client made
// by Dial stops.
func ConnectionStopped(c *Client) <-chan struct{} {
	t := c.transport.(*tcpTransport)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur.stopped
}

// RequestsWritten returns a channel closed once the transport of c, made by StartStdio, has
// written n requests to the server. Call it before the calls.
func RequestsWritten(c *Client, n int) <-chan struct{} {
	t := c.transport.(*StdioTransport)
	w := &countingWriter{WriteCloser: t.w.(io.WriteCloser), left: n, done: make(chan struct{})}
	t.w = w
	return w.done
}

// countingWriter closes done once left newlines have been written through it.
type countingWriter struct {
	io.WriteCloser
	left int // only the writer goroutine touches it
	done chan struct{}
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.WriteCloser.Write(p)
	if w.left > 0 {
		w.left -= bytes.Count(p[:n], []byte{'\n'})
		if w.left <= 0 {
			close(w.done)
		}
	}
	return n, err
}
