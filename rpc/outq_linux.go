package rpc

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// unsentBytes returns how many bytes written to nc the peer has not acknowledged yet (sent or
// not), or -1 when that cannot be known.
func unsentBytes(nc net.Conn) int {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	n := -1
	if raw.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ); err == nil {
			n = v
		}
	}) != nil {
		return -1
	}
	return n
}

// sendRoom returns about how many more bytes a write to nc can queue without waiting for
// the peer: half the send buffer (the kernel counts its bookkeeping in the other half) less
// what is queued, or -1 when that cannot be known.
func sendRoom(nc net.Conn) int {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	room := -1
	if raw.Control(func(fd uintptr) {
		queued, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
		if err != nil {
			return
		}
		if size, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF); err == nil {
			room = max(size/2-queued, 0)
		}
	}) != nil {
		return -1
	}
	return room
}
