//go:build unix

package rpc

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// withFD runs f with the descriptor of x (a net.Conn, an *os.File), if it has one.
func withFD(x any, f func(fd int)) {
	sc, ok := x.(syscall.Conn)
	if !ok {
		return
	}
	if raw, err := sc.SyscallConn(); err == nil {
		_ = raw.Control(func(fd uintptr) { f(int(fd)) })
	}
}

// nonBlocking reports whether x's descriptor, if it has one, is in non-blocking mode, as Go's
// deadlines need: an *os.File whose Fd method was called is in blocking mode, and takes a
// deadline but ignores it.
func nonBlocking(x any) bool {
	nonBlock := true
	withFD(x, func(fd int) {
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil {
			nonBlock = flags&unix.O_NONBLOCK != 0
		}
	})
	return nonBlock
}
