//go:build !race

package rpc

import (
	"syscall"
	"unsafe"
)

// rawCall makes a read or write system call (trap) on fd with p, again when interrupted.
func rawCall(trap, fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, errno := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if errno != syscall.EINTR {
			return int(n), errno
		}
	}
}
