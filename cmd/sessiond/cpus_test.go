package main

import (
	"slices"
	"testing"
)

// TestParseCPUList checks CPU lists as taskset -c takes them: numbers and ranges, sorted and
// once each, and a clear error for anything else.
func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in   string
		want []int // nil: an error
	}{
		{"1", []int{1}},
		{"0-3,6", []int{0, 1, 2, 3, 6}},
		{" 2 , 0-1", []int{0, 1, 2}},
		{"3,1,3,1-1", []int{1, 3}},
		{"", nil},
		{"a", nil},
		{"-1", nil},
		{"1-", nil},
		{"3-1", nil},
		{"1,,2", nil},
		{"1024", nil},
	}
	for _, tc := range tests {
		got, err := parseCPUList(tc.in)
		switch {
		case tc.want == nil && err == nil:
			t.Errorf("parseCPUList(%q) = %v, want an error", tc.in, got)
		case tc.want != nil && (err != nil || !slices.Equal(got, tc.want)):
			t.Errorf("parseCPUList(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestFormatCPUList checks that CPUs are written back as the shortest list, ranges included.
func TestFormatCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{[]int{1}, "1"},
		{[]int{0, 1, 2, 5}, "0-2,5"},
		{[]int{0, 2, 4, 5}, "0,2,4-5"},
		{nil, ""},
	} {
		if got := formatCPUList(tc.in); got != tc.want {
			t.Errorf("formatCPUList(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
