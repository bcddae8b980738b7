package sessiond

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"
)

// stdioExitTimeout is how long Close waits for the server to exit after its standard input
// closes before killing it.
const stdioExitTimeout = 10 * time.Second

// StartStdio starts cmd, a sessiond server serving its standard input and output, and returns
// a client speaking to it there:
//
//	cmd := exec.Command("sessiond", "serve", "--stdio", "--in-memory")
//	cmd.Env = append(os.Environ(), "SESSIOND_ADMIN_PASSWORD="+password)
//	client, err := sessiond.StartStdio(cmd)
//
// cmd.Stdin and cmd.Stdout must be nil: they become the transport. cmd.Stderr receives the
// server's logs (nil discards them). See [StdioTransport.Close] for how the server stops.
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
	cmd *exec.Cmd
}

// StartStdioTransport starts cmd as StartStdio does and returns the transport, for NewClient;
// use it to wrap the transport in one of your own.
func StartStdioTransport(cmd *exec.Cmd) (*StdioTransport, error) {
	if cmd.Stdin != nil || cmd.Stdout != nil {
		return nil, errors.New("sessiond: StartStdio needs cmd.Stdin and cmd.Stdout unset")
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		stdin.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sessiond: starting %s: %w", cmd.Path, err)
	}
	// Only the writer is the stream's to close: the server closes its output when it exits.
	return &StdioTransport{StreamTransport: NewStreamTransport(readerOnly{stdout}, stdin), cmd: cmd}, nil
}

// readerOnly hides the Close method of a reader from NewStreamTransport.
type readerOnly struct{ io.Reader }

// Close closes the server's standard input, on which sessiond finishes the calls in flight and
// exits. It waits for the exit, killing the server if it takes more than 10 seconds, and
// returns the server's exit error, if any.
func (t *StdioTransport) Close() error {
	closeErr := t.StreamTransport.Close()
	select {
	case <-t.readerDone:
	case <-time.After(stdioExitTimeout):
		_ = t.cmd.Process.Kill()
		<-t.readerDone
	}
	return errors.Join(t.cmd.Wait(), closeErr)
}
