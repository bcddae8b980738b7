package main

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
)

// pollableInput returns an input that the stdio server can stop reading: one that takes read
// deadlines, where the blocking stdin a process inherits takes none, so that after a signal
// the server reads for the short grace in which it refuses what comes, and then stops.
//   - A pipe is opened anew through /proc/self/fd, in non-blocking mode: another open file
//     description of the same pipe, so the mode is not shared with the parent or any other
//     process reading the pipe.
//   - A socket (Node's child processes get one) is read through net.FileConn, which puts it
//     in non-blocking mode: that mode belongs to the open file description, shared with any
//     other process holding this end (a parent normally closes its copy).
//
// Anything else (a terminal, a file), or a failure, returns r as it is, with the reason in
// err. release closes what pollableInput opened.
func pollableInput(r io.Reader) (in io.Reader, release func(), err error) {
	unchanged := func(err error) (io.Reader, func(), error) { return r, func() {}, err }
	f, ok := r.(*os.File)
	if !ok {
		return unchanged(errors.New("not a file"))
	}
	info, err := f.Stat()
	if err != nil {
		return unchanged(err)
	}
	switch mode := info.Mode(); {
	case mode&os.ModeSocket != 0:
		c, err := net.FileConn(f)
		if err != nil {
			return unchanged(err)
		}
		return c, func() { _ = c.Close() }, nil
	case mode&os.ModeNamedPipe != 0:
		raw, err := f.SyscallConn() // not Fd, which would put f in blocking mode
		if err != nil {
			return unchanged(err)
		}
		var reopened *os.File
		err = raw.Control(func(fd uintptr) {
			reopened, err = os.OpenFile("/proc/self/fd/"+strconv.FormatUint(uint64(fd), 10), os.O_RDONLY|syscall.O_NONBLOCK, 0)
		})
		if err != nil {
			return unchanged(err)
		}
		return reopened, func() { _ = reopened.Close() }, nil
	default:
		return unchanged(errors.New("neither a pipe nor a socket"))
	}
}
