package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// pipeUnread returns how many bytes written to the pipe w its reader has not read yet.
func pipeUnread(w *os.File) (int, error) {
	return unix.IoctlGetInt(int(w.Fd()), unix.TIOCINQ) // FIONREAD, which Linux also takes on the writing end
}
