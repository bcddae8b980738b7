//go:build !linux && !windows

package main

import "syscall"

// idleHelper says whether the helper can run with the SCHED_IDLE policy: only on Linux.
const idleHelper = false

// lowerThread gives the calling process nice hashWorkerNice; idle is not available here.
func lowerThread(bool) error {
	return syscall.Setpriority(syscall.PRIO_PROCESS, 0, hashWorkerNice)
}
