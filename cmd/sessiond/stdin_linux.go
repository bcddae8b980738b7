package main

import (
	"errors"
	"io"
	"os"
	"strconv"
	"syscall"
)

// pollableInput returns an input that the stdio server can stop reading: one that takes read
// deadlines, where the blocking stdin a process inherits takes none, so that after a signal
// the server reads for the short grace in which it refuses what comes, and then stops. A
// pipe is opened anew through /proc/self/fd in non-blocking mode: another open file
// description of the same pipe, so the mode is not shared with the parent or any other
// process reading the pipe. Anything else (a terminal, a file, a socket, whose mode could
// only be changed for every process holding it, even after the server exits), or a failure
// (/proc missing, a pipe of another user), returns r as it is, with the reason in err.
// release closes what pollableInput opened.
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
	if info.Mode()&os.ModeNamedPipe == 0 {
		return unchanged(errors.New("not a pipe"))
	}
	raw, err := f.SyscallConn() // not Fd, which would put f in blocking mode
	if err != nil {
		return unchanged(err)
	}
	var reopened *os.File
	var openErr error
	if err := raw.Control(func(fd uintptr) {
		reopened, openErr = os.OpenFile(procFD+strconv.FormatUint(uint64(fd), 10), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	}); err != nil {
		return unchanged(err)
	}
	if openErr != nil {
		return unchanged(openErr)
	}
	return reopened, func() { _ = reopened.Close() }, nil
}

// procFD is where Linux lists a process's descriptors; a test points it elsewhere.
var procFD = "/proc/self/fd/"
