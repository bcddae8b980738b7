package rpc

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// unsentBytes returns how many bytes written to nc the peer has not acknowledged yet (sent or
// not), or -1 when that cannot be known.
func unsentBytes(nc net.Conn) int {
	n := -1
	withFD(nc, func(fd int) {
		if v, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ); err == nil {
			n = v
		}
	})
	return n
}

// sendRoom returns about how many more bytes a write to nc can queue without waiting for
// the peer: half the send buffer (the kernel counts its bookkeeping in the other half) less
// what is queued, or -1 when that cannot be known.
func sendRoom(nc net.Conn) int {
	room := -1
	withFD(nc, func(fd int) {
		queued, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
		if err != nil {
			return
		}
		if size, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF); err == nil {
			room = max(size/2-queued, 0)
		}
	})
	return room
}

// withFD runs f with nc's descriptor, if nc has one.
func withFD(nc net.Conn, f func(fd int)) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	if raw, err := sc.SyscallConn(); err == nil {
		_ = raw.Control(func(fd uintptr) { f(int(fd)) })
	}
}
