package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinProcess restricts every thread of this process to cpus and returns the CPUs it was
// allowed before and those it is allowed now (the kernel leaves out CPUs that are offline or
// outside the process's cpuset). A thread takes the CPUs of the thread that makes it, so once
// every thread is pinned, so are those the Go runtime starts later; a thread started while
// the threads are being listed is caught by listing them again, until a pass finds no new one.
// A thread whose creation began before its parent was pinned but shows in /proc only after
// the last pass would keep the old CPUs; at start, with a handful of threads, no stress run
// caught one.
func pinProcess(cpus []int) (before, now []int, err error) {
	var was unix.CPUSet
	if err := unix.SchedGetaffinity(0, &was); err != nil {
		return nil, nil, fmt.Errorf("reading this process's CPUs: %v", err)
	}
	set := cpuSet(cpus)
	pinned := map[int]bool{}
	for pass := 0; ; pass++ {
		entries, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return nil, nil, fmt.Errorf("listing this process's threads: %v", err)
		}
		fresh := 0
		for _, e := range entries {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || pinned[tid] {
				continue
			}
			switch err := unix.SchedSetaffinity(tid, &set); err {
			case nil, unix.ESRCH: // ESRCH: the thread has exited since the listing
			case unix.EINVAL:
				return nil, nil, fmt.Errorf("none of CPUs %s is one this process may use (online and in its cpuset)",
					formatCPUList(cpus))
			default:
				return nil, nil, fmt.Errorf("pinning thread %d: %v", tid, err)
			}
			pinned[tid] = true
			fresh++
		}
		if fresh == 0 {
			break
		}
		if pass == 10 {
			return nil, nil, fmt.Errorf("threads kept appearing while they were pinned")
		}
	}
	var is unix.CPUSet
	if err := unix.SchedGetaffinity(0, &is); err != nil {
		return nil, nil, fmt.Errorf("reading this process's CPUs: %v", err)
	}
	return cpusOf(&was), cpusOf(&is), nil
}

// pinThread restricts the calling thread to the CPUs of list (parseCPUList's form).
func pinThread(list string) error {
	cpus, err := parseCPUList(list)
	if err != nil {
		return err
	}
	set := cpuSet(cpus)
	return unix.SchedSetaffinity(0, &set)
}

// cpuSet is the kernel's CPU set of cpus.
func cpuSet(cpus []int) unix.CPUSet {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return set
}

// cpusOf lists the CPUs of set, in order.
func cpusOf(set *unix.CPUSet) []int {
	var cpus []int
	for c, n := 0, set.Count(); c <= maxCPU && len(cpus) < n; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return slices.Clip(cpus)
}
