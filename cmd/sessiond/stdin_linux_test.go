package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestPollableInput checks that an inherited blocking pipe is read through a descriptor that
// takes read deadlines, with what was written before, and that a pipe it cannot reopen, a
// socket and a file pass unchanged, with the reason.
func TestPollableInput(t *testing.T) {
	pipe := func(t *testing.T) (r, w *os.File) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Fd() // blocking mode, as a process's inherited stdin
		return r, w
	}
	t.Run("pipe", func(t *testing.T) {
		r, w := pipe(t)
		defer r.Close()
		defer w.Close()
		if _, err := w.Write([]byte("before\n")); err != nil {
			t.Fatal(err)
		}
		in, release, err := pollableInput(r)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		d, ok := in.(interface{ SetReadDeadline(time.Time) error })
		if !ok || in == io.Reader(r) {
			t.Fatalf("pollableInput gave %T, want a new input that takes a read deadline", in)
		}
		if err := d.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(in)
		if string(got) != "before\n" || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read %q, %v; want the bytes written before, then the deadline", got, err)
		}
	})
	t.Run("pipe not reopened", func(t *testing.T) { // no /proc, or a pipe of another user
		r, w := pipe(t)
		defer r.Close()
		defer w.Close()
		defer func(dir string) { procFD = dir }(procFD)
		procFD = filepath.Join(t.TempDir(), "missing") + "/"
		if in, release, err := pollableInput(r); in != io.Reader(r) || err == nil {
			t.Errorf("got %v (%v), want the pipe as it is and why", in, err)
		} else {
			release()
		}
	})
	socket := func() (r, w *os.File) {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return os.NewFile(uintptr(fds[0]), "stdin"), os.NewFile(uintptr(fds[1]), "parent")
	}
	sr, sw := socket()
	defer sr.Close()
	defer sw.Close()
	file, err := os.CreateTemp(t.TempDir(), "input")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for name, f := range map[string]*os.File{"a socket": sr, "a regular file": file} {
		if in, release, err := pollableInput(f); in != io.Reader(f) || err == nil {
			t.Errorf("%s became %v (%v), want it as it is and why", name, in, err)
		} else {
			release()
		}
	}
}
