package rpc

import (
	"net"

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

// sendRoom returns about how many more bytes a write to w, a socket or a pipe, can queue
// without waiting for the reader, or -1 when that cannot be known. For a socket that is half
// the send buffer (the kernel counts its bookkeeping in the other half) less what is queued;
// for a pipe, its capacity less what its reader has not read.
func sendRoom(w any) int {
	room := -1
	withFD(w, func(fd int) {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			return
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFSOCK:
			queued, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
			if err != nil {
				return
			}
			if size, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF); err == nil {
				room = max(size/2-queued, 0)
			}
		case unix.S_IFIFO:
			unread, err := unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD, which Linux takes on the writing end
			if err != nil {
				return
			}
			if size, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0); err == nil {
				room = max(size-unread, 0)
			}
		}
	})
	return room
}
