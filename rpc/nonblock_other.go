//go:build !unix

package rpc

// nonBlocking has no blocking mode to tell apart on Windows, whose pipes take no deadline.
func nonBlocking(any) bool { return true }
