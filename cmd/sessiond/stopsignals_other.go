//go:build !windows

package main

import (
	"os"
	"os/signal"
	"syscall"
)

// ignoreStopSignals makes the password hash helper ignore SIGINT and SIGTERM. The helper
// executes itself again (lowerPriority), and the new program calls this again: Go's runtime
// keeps an inherited SIGINT ignored, but installs its own handler for SIGTERM at start, so
// until the call a SIGTERM would end the new helper (a few milliseconds after each start).
func ignoreStopSignals() {
	signal.Ignore(os.Interrupt, syscall.SIGTERM)
}
