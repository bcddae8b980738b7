package main

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// sizeUnits are the suffixes parseSize accepts, longest first so "MiB" is not read as "B".
var sizeUnits = []struct {
	suffix string
	bytes  int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// parseSize reads a byte count: a whole number with an optional unit (B, KiB, MiB, GiB, TiB,
// KB, MB, GB, TB), as GOMEMLIMIT does.
func parseSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.bytes
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size such as 400MiB or 2GiB", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// applyMemoryLimit sets the Go runtime's soft memory limit from --memory-limit: "" keeps
// GOMEMLIMIT (or none), "off" or 0 removes any limit. It returns the limit in force, 0 for none.
func applyMemoryLimit(flag string) (int64, error) {
	var limit int64 // 0: none
	switch flag {
	case "":
		if os.Getenv("GOMEMLIMIT") == "" {
			return 0, nil
		}
		if current := debug.SetMemoryLimit(-1); current != math.MaxInt64 {
			return current, nil
		}
		return 0, nil
	case "off":
	default:
		var err error
		if limit, err = parseSize(flag); err != nil {
			return 0, fmt.Errorf("--memory-limit: %w", err)
		}
		if limit > 0 && limit < 64<<20 {
			return 0, fmt.Errorf("--memory-limit: %s is below 64MiB, too little to serve from", flag)
		}
	}
	if limit == 0 {
		debug.SetMemoryLimit(math.MaxInt64)
	} else {
		debug.SetMemoryLimit(limit)
	}
	return limit, nil
}
