package sessiond

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// stdioExitTimeout is how long Close waits for the server to exit after its standard input
// closes before killing it.
const stdioExitTimeout = 10 * time.Second

// stderrTailBytes bounds the end of the server's standard error that StartStdio keeps when
// cmd.Stderr is nil, to tell why the server exited.
const stderrTailBytes = 4 << 10

// stdioExitWait bounds how long a call that found the server's output closed waits for the
// server to exit, to report its exit status and last words.
const stdioExitWait = time.Second

// stdioOutputAfterExit is the cmd.WaitDelay that StartStdio sets when it is 0: how long, once
// the server has exited, the transport waits for the end of its standard output and error,
// which a process it started may hold open.
const stdioOutputAfterExit = time.Second

// StartStdio starts cmd, a sessiond server serving its standard input and output, and returns
// a client speaking to it there:
//
//	cmd := exec.Command("sessiond", "serve", "--stdio", "--in-memory")
//	cmd.Env = append(os.Environ(), "SESSIOND_ADMIN_PASSWORD="+password)
//	client, err := sessiond.StartStdio(cmd)
//
// cmd.Stdin and cmd.Stdout must be nil: they become the transport. cmd.Stderr receives the
// server's logs; when it is nil, StartStdio keeps their last 4 KiB. A server that exits before
// it is told to (a data directory locked by another process, a bad config) fails the calls
// with its exit status and, from those kept logs, the lines it wrote last; Close returns them
// too. See [StdioTransport.Close] for how the server stops.
//
// A process that the server (or cmd: a shell, say) started may hold the server's standard
// output and error open after the server has exited: the transport reads them for
// cmd.WaitDelay more, which StartStdio sets to 1 second when it is 0, then takes them as
// ended, and the calls still waiting fail.
func StartStdio(cmd *exec.Cmd) (*Client, error) {
	t, err := StartStdioTransport(cmd)
	if err != nil {
		return nil, err
	}
	return NewClient(t), nil
}

// StdioTransport is a [StreamTransport] on the standard input and output of a sessiond
// process that it started.
type StdioTransport struct {
	*StreamTransport
	cmd    *exec.Cmd
	stderr *tailBuffer // the end of the server's standard error; nil when the caller took it

	exited  chan struct{} // closed when the server has exited and exitErr is set
	exitErr error         // cmd.Wait's, nil for an exit with status 0
}

// StartStdioTransport starts cmd as StartStdio does and returns the transport, for NewClient;
// use it to wrap the transport in one of your own.
func StartStdioTransport(cmd *exec.Cmd) (*StdioTransport, error) {
	if cmd.Stdin != nil || cmd.Stdout != nil {
		return nil, errors.New("sessiond: StartStdio needs cmd.Stdin and cmd.Stdout unset")
	}
	var stderr *tailBuffer
	if cmd.Stderr == nil {
		stderr = &tailBuffer{max: stderrTailBytes}
		cmd.Stderr = stderr
	}
	if cmd.WaitDelay == 0 {
		// A process the server started may hold its output open after it exits: do not let
		// Wait, and the reader, wait for that process too.
		cmd.WaitDelay = stdioOutputAfterExit
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	// Not cmd.StdoutPipe: Wait closes it at the exit, losing the replies not read yet, so Wait
	// had to wait for the end of the output, which a process the server started may hold off
	// for ever. cmd copies the output to the reader instead, and Wait returns once the copy has
	// ended, at most cmd.WaitDelay after the exit.
	stdout, copied := io.Pipe()
	cmd.Stdout = copied
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sessiond: starting %s: %w", cmd.Path, err)
	}
	// Only the writer is the stream's to close: the reader ends when Wait has returned.
	t := &StdioTransport{StreamTransport: NewStreamTransport(readerOnly{stdout}, stdin), cmd: cmd, stderr: stderr,
		exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		if errors.Is(err, exec.ErrWaitDelay) {
			err = nil // the server exited with status 0; a process it started holds its output
		}
		t.exitErr = err
		close(t.exited)
		copied.Close() // the reader hands out the replies copied and ends
	}()
	return t, nil
}

// readerOnly hides the Close method of a reader from NewStreamTransport.
type readerOnly struct{ io.Reader }

// RoundTrip sends a call as StreamTransport.RoundTrip does. When the server has closed its
// output, it waits a moment for the server to exit and adds to the error its exit status and
// the last lines of its standard error.
func (t *StdioTransport) RoundTrip(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	result, err := t.StreamTransport.RoundTrip(ctx, method, params)
	if err == nil || ctx.Err() != nil || !t.lost() {
		return result, err
	}
	if _, ok := errors.AsType[*Error](err); ok {
		return result, err
	}
	select {
	case <-t.exited:
		return nil, t.withExit(err, t.exitErr)
	case <-ctx.Done():
	case <-time.After(stdioExitWait):
	}
	return nil, t.withExit(err, nil)
}

// withExit adds to err how the server exited (exitErr, nil when it has not, or exited 0) and
// the end of its standard error, when StartStdio kept it.
func (t *StdioTransport) withExit(err, exitErr error) error {
	var tail string
	if t.stderr != nil {
		tail = t.stderr.lastLines()
	}
	switch {
	case exitErr != nil && tail != "":
		return fmt.Errorf("%w (the server exited: %v; its standard error ends:\n%s)", err, exitErr, tail)
	case exitErr != nil:
		return fmt.Errorf("%w (the server exited: %v)", err, exitErr)
	case tail != "":
		return fmt.Errorf("%w (the server's standard error ends:\n%s)", err, tail)
	}
	return err
}

// Close closes the server's standard input, on which sessiond answers the calls in flight and
// exits. Those calls get their replies; a call the server exits without answering fails with
// ErrClosed, as do calls made once Close has begun, which are not sent. Close waits for the
// exit, killing the server if it takes more than 10 seconds, and for the end of the server's
// output, at most cmd.WaitDelay (1 second by default) after the exit: a process the server
// started may hold it open. It returns the server's exit error, if any, with the last lines of
// its standard error when StartStdio kept it.
func (t *StdioTransport) Close() error {
	// Killing the server also ends a write of the last requests that it does not read.
	kill := time.AfterFunc(stdioExitTimeout, func() { _ = t.cmd.Process.Kill() })
	defer kill.Stop()
	closeErr := t.closeWrite()
	if errors.Is(closeErr, os.ErrClosed) {
		closeErr = nil // Wait closed the server's input already: the server had exited
	}
	<-t.exited
	<-t.readerDone // the last replies handed out
	var exitErr error
	if t.exitErr != nil {
		exitErr = t.withExit(fmt.Errorf("sessiond: %w", t.exitErr), nil)
	}
	return errors.Join(exitErr, closeErr)
}

// tailBuffer keeps the last max bytes written to it. It is safe for concurrent use.
type tailBuffer struct {
	max int

	mu        sync.Mutex
	buf       []byte
	truncated bool // bytes before buf were dropped
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		b.truncated = true
		return n, nil
	}
	if over := len(b.buf) + len(p) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
		b.truncated = true
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

// lastLines returns the whole lines kept (a line cut by the bound is left out), without the
// blank ones at the end.
func (b *tailBuffer) lastLines() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	text := b.buf
	if b.truncated {
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			text = text[i+1:]
		}
	}
	return string(bytes.TrimRight(text, " \t\r\n"))
}
