//go:build !linux

package main

import "io"

// pollableInput returns r: only Linux can open an inherited pipe anew (stdin_linux.go), so
// elsewhere the stdio server reads its input no further, after a signal, than the read it
// may be waiting in.
func pollableInput(r io.Reader) (_ io.Reader, release func()) { return r, func() {} }
