package main

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// idleHelper says whether the helper can run with the SCHED_IDLE policy.
const idleHelper = true

// lowerThread lowers the calling thread's priority: the SCHED_IDLE policy if idle is set and
// the system allows it (a sandbox may not), else nice hashWorkerNice.
func lowerThread(idle bool) error {
	if idle && unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}, 0) == nil {
		return nil
	}
	// PRIO_PROCESS with who 0 is the calling thread on Linux.
	return syscall.Setpriority(syscall.PRIO_PROCESS, 0, hashWorkerNice)
}
