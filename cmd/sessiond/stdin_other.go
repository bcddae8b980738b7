//go:build !linux

package main

import (
	"errors"
	"io"
)

// pollableInput returns r: only Linux can open an inherited pipe anew (stdin_linux.go), so
// elsewhere the stdio server reads its input no further, after a signal, than the read it
// may be waiting in.
func pollableInput(r io.Reader) (in io.Reader, release func(), err error) {
	return r, func() {}, errors.New("only on Linux")
}
