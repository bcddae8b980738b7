package main

import "errors"

// idleHelper says whether the helper can run with the SCHED_IDLE policy: only on Linux.
const idleHelper = false

// lowerThread cannot lower a priority through the syscall package on Windows: the helper
// runs at normal priority there.
func lowerThread(bool) error {
	return errors.New("no nice value on Windows")
}
