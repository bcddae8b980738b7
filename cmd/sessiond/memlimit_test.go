package main

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

// TestParseSize checks the sizes --memory-limit accepts and refuses.
func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1048576", 1 << 20, true},
		{"400MiB", 400 << 20, true},
		{"2GiB", 2 << 30, true},
		{"512 MiB", 512 << 20, true},
		{"500MB", 500e6, true},
		{"64KiB", 64 << 10, true},
		{"10B", 10, true},
		{"", 0, false},
		{"-1MiB", 0, false},
		{"1.5GiB", 0, false},
		{"400mb", 0, false},
		{"lots", 0, false},
		{"9999999TiB", 0, false},
	} {
		got, err := parseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestApplyMemoryLimit checks that --memory-limit sets, keeps and removes the runtime's limit.
func TestApplyMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })

	t.Setenv("GOMEMLIMIT", "")
	if got, err := applyMemoryLimit("400MiB"); err != nil || got != 400<<20 || debug.SetMemoryLimit(-1) != 400<<20 {
		t.Fatalf("400MiB: got %d, %v; runtime limit %d", got, err, debug.SetMemoryLimit(-1))
	}
	if got, err := applyMemoryLimit(""); err != nil || got != 0 {
		t.Fatalf("default without GOMEMLIMIT: got %d, %v", got, err)
	}
	t.Setenv("GOMEMLIMIT", "400MiB") // the runtime read it at start; the limit set above stands for it
	if got, err := applyMemoryLimit(""); err != nil || got != 400<<20 {
		t.Fatalf("default with GOMEMLIMIT: got %d, %v", got, err)
	}
	if got, err := applyMemoryLimit("off"); err != nil || got != 0 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Fatalf("off: got %d, %v; runtime limit %d", got, err, debug.SetMemoryLimit(-1))
	}
	for _, bad := range []string{"10MiB", "many", "-5"} {
		if _, err := applyMemoryLimit(bad); err == nil || !strings.Contains(err.Error(), "--memory-limit") {
			t.Errorf("%q: want a --memory-limit error, got %v", bad, err)
		}
	}
}
