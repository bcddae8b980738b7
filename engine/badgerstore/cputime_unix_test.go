//go:build unix

package badgerstore

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time the process has used (user and system, all threads): a figure of
// work that, unlike wall time, does not grow when other processes compete for the cores.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
