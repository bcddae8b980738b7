//go:build !race

package rpc

import (
	"syscall"
	"unsafe"
)

// rawCall reads (trap SYS_READ) or writes (SYS_WRITE) p on fd, a socket, in one system
// call, again when interrupted. It makes them as recvfrom(2) and sendto(2), which do for a
// socket what read(2) and write(2) do without the file layer around them (vfs_read and
// vfs_write, fdget_pos, the permission hook, the socket's read and write iterators): on
// loopback, 80-100 ns less a call (cmd/sessiond/PERFORMANCE.md). MSG_NOSIGNAL makes a write to a
// connection the peer has reset fail with EPIPE without a SIGPIPE, which Go ignores on a
// socket anyway.
func rawCall(trap, fd uintptr, p []byte) (int, syscall.Errno) {
	call, flags := uintptr(syscall.SYS_RECVFROM), uintptr(0)
	if trap == syscall.SYS_WRITE {
		call, flags = syscall.SYS_SENDTO, syscall.MSG_NOSIGNAL
	}
	for {
		n, _, errno := syscall.RawSyscall6(call, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), flags, 0, 0)
		if errno != syscall.EINTR {
			return int(n), errno
		}
	}
}
