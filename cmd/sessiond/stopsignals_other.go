//go:build !windows

package main

import (
	"os"
	"os/signal"
	"syscall"
)

// ignoreStopSignals makes the password hash helper ignore SIGINT and SIGTERM. Ignored, not
// caught: the helper executes itself again (lowerPriority), and an ignored signal stays
// ignored across exec, where a caught one would kill it before the new program catches it.
func ignoreStopSignals() {
	signal.Ignore(os.Interrupt, syscall.SIGTERM)
}
