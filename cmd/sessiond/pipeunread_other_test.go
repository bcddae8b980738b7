//go:build !linux

package main

import (
	"errors"
	"os"
)

// pipeUnread returns how many bytes written to the pipe w its reader has not read yet; only
// Linux tells, and only Linux has the /proc/PID/cmdline it is waited on for.
func pipeUnread(*os.File) (int, error) {
	return 0, errors.ErrUnsupported
}
