//go:build !linux

package main

import "errors"

// pinProcess cannot pin threads off Linux.
func pinProcess([]int) (before, now []int, err error) {
	return nil, nil, errors.New("pinning to CPUs is supported on Linux only")
}

// pinThread is never asked for off Linux, where no server is pinned.
func pinThread(string) error { return nil }
