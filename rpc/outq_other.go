//go:build !linux

package rpc

import "net"

// unsentBytes cannot tell, off Linux, what the peer has acknowledged.
func unsentBytes(net.Conn) int { return -1 }

// sendRoom cannot tell, off Linux, how much a write can queue without waiting.
func sendRoom(any) int { return -1 }
