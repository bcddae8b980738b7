//go:build !unix

package main

import "testing"

// refusingAddr returns a loopback address where nothing listens (see the Unix version,
// which also keeps the port from being given to a listener meanwhile).
func refusingAddr(t *testing.T) string { return unusedAddr(t) }
