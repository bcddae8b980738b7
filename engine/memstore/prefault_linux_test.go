//go:build linux

package memstore

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestPrefault checks that prefault leaves a fresh allocation's whole pages resident and
// its contents as they were, and that it takes small and empty slices.
func TestPrefault(t *testing.T) {
	page := uintptr(os.Getpagesize())
	s := make([]uint64, 8<<20) // 64 MB: fresh pages, not yet written
	s[1], s[len(s)-1] = 7, 9
	if err := prefaultPages(s); err != nil {
		t.Skipf("MADV_POPULATE_WRITE refused (a kernel before 5.14?): %v", err)
	}
	if s[0] != 0 || s[1] != 7 || s[len(s)-1] != 9 {
		t.Fatal("prefault changed the contents")
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	start := (base + page - 1) &^ (page - 1)
	n := (base+uintptr(len(s))*8)&^(page-1) - start
	vec := make([]byte, n/page)
	addr := unsafe.Add(unsafe.Pointer(unsafe.SliceData(s)), start-base)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(addr), n, uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Skipf("mincore: %v", errno)
	}
	resident := 0
	for _, v := range vec {
		resident += int(v & 1)
	}
	if resident != len(vec) {
		t.Errorf("%d of %d pages resident after prefault", resident, len(vec))
	}
	prefault([]byte(nil))
	prefault(make([]byte, 10))
	prefault(make([]byte, 100<<10)[1:5]) // the capacity counts
}
