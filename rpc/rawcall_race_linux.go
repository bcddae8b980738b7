//go:build race

package rpc

import "syscall"

// rawCall reads (trap SYS_READ) or writes (SYS_WRITE) p on fd, a socket, in one system call,
// again when interrupted. In race builds it goes through syscall.Read and Write, which tell the race detector what the
// kernel wrote into p and order the call after the process's earlier writes to any
// descriptor (data a goroutine wrote to a socket may come back through another): made raw,
// the calls would hide races, or report false ones against a client in the same process.
func rawCall(trap, fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		var n int
		var err error
		if trap == syscall.SYS_READ {
			n, err = syscall.Read(int(fd), p)
		} else {
			n, err = syscall.Write(int(fd), p)
		}
		if err == nil {
			return n, 0
		}
		errno, ok := err.(syscall.Errno)
		if !ok {
			errno = syscall.EIO
		}
		if errno != syscall.EINTR {
			return 0, errno
		}
	}
}
