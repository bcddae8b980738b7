package main

import (
	"io"
	"os"
	"strconv"
	"syscall"
)

// pollableInput returns an input that the stdio server can stop reading: a pipe it reads
// through a descriptor of its own in non-blocking mode, which takes read deadlines, instead
// of the blocking one it inherited, which takes none (so that after a signal the server can
// read for the short grace in which it refuses what comes, and then stop). Linux opens a pipe
// anew through /proc/self/fd, as another open file description of the same pipe, so the
// non-blocking mode is not shared with the parent or any other process reading the pipe.
// Anything but a pipe (a terminal, a file, a socket), or a failure, returns r as it is.
// release closes what pollableInput opened.
func pollableInput(r io.Reader) (_ io.Reader, release func()) {
	f, ok := r.(*os.File)
	if !ok {
		return r, func() {}
	}
	info, err := f.Stat()
	if err != nil || info.Mode()&os.ModeNamedPipe == 0 {
		return r, func() {}
	}
	// Fd puts f in blocking mode; f is not read any more, so that costs nothing.
	reopened, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return r, func() {}
	}
	return reopened, func() { _ = reopened.Close() }
}
