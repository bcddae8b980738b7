package main

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// TestPollableInput checks that an inherited blocking pipe is read through a descriptor that
// takes read deadlines, with what was written before, and that other inputs pass unchanged.
func TestPollableInput(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	r.Fd() // blocking mode, as a process's inherited stdin
	if _, err := w.Write([]byte("before\n")); err != nil {
		t.Fatal(err)
	}
	in, release := pollableInput(r)
	defer release()
	f, ok := in.(*os.File)
	if !ok || f == r {
		t.Fatalf("pollableInput gave %T %v, want a new *os.File", in, in)
	}
	if err := f.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	if string(got) != "before\n" || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read %q, %v; want the bytes written before, then the deadline", got, err)
	}

	file, err := os.CreateTemp(t.TempDir(), "input")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if in, release := pollableInput(file); in != io.Reader(file) {
		t.Errorf("a regular file became %v", in)
	} else {
		release()
	}
}
