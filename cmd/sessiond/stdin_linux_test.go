package main

import (
	"errors"
	"io"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestPollableInput checks that an inherited blocking pipe or socket is read through
// something that takes read deadlines, with what was written before, and that other inputs
// pass unchanged.
func TestPollableInput(t *testing.T) {
	pipe := func(t *testing.T) (r, w *os.File) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Fd() // blocking mode, as a process's inherited stdin
		return r, w
	}
	socket := func(t *testing.T) (r, w *os.File) {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return os.NewFile(uintptr(fds[0]), "stdin"), os.NewFile(uintptr(fds[1]), "parent")
	}
	for name, open := range map[string]func(*testing.T) (r, w *os.File){"pipe": pipe, "socket": socket} {
		t.Run(name, func(t *testing.T) {
			r, w := open(t)
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
	}

	file, err := os.CreateTemp(t.TempDir(), "input")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if in, release, err := pollableInput(file); in != io.Reader(file) || err == nil {
		t.Errorf("a regular file became %v (%v)", in, err)
	} else {
		release()
	}
}
