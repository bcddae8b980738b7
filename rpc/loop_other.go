//go:build !linux

package rpc

// Without raw system calls (rawio_other.go) there is no event loop: every connection is
// served by its reader goroutine.

type (
	eventLoop struct{}
	loopConn  struct{}
)

func (*eventLoop) close()               {}
func (*conn) handOver()                 {}
func (*conn) armLoop(bool)              {}
func (*conn) readsWait()                {}
func (*conn) forgetLoop()               {}
func (*Server) useLoop(*conn, any, any) {}
