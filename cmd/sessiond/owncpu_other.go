//go:build !unix

package main

import "time"

// ownCPU reports that this system has no getrusage(2): bench leaves its own CPU out.
func ownCPU() (time.Duration, bool) { return 0, false }
