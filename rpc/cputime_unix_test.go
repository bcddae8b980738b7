//go:build unix

package rpc

import (
	"syscall"
	"time"
)

// processCPU is the CPU time the process has used (user and system, every thread, the
// garbage collector included).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
