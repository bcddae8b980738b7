//go:build linux

package memstore

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// prefaultMin is the smallest allocation worth a system call: below it the page faults it
// saves cost less than the call.
const prefaultMin = 64 << 10

// prefault maps in the whole pages under s's capacity with one system call
// (MADV_POPULATE_WRITE) instead of a page fault per page as they are first written. A load
// of a million sessions writes about 300 MB of fresh memory; on the 2-vCPU VM of the README
// its page faults were a tenth of the load's CPU time. It is for allocations that will be
// written all over (slab chunks, index tables): it only maps pages the allocation owns, and
// their contents do not change. An older kernel (before 5.14) refuses the advice, and the
// pages then fault in as they are written.
func prefault[T any](s []T) { _ = prefaultPages(s) }

// prefaultPages is prefault, returning what madvise said.
func prefaultPages[T any](s []T) error {
	page := uintptr(os.Getpagesize())
	n := uintptr(cap(s)) * unsafe.Sizeof(*new(T))
	if n < prefaultMin {
		return nil
	}
	base := unsafe.Pointer(unsafe.SliceData(s))
	p := uintptr(base)
	start, end := (p+page-1)&^(page-1), (p+n)&^(page-1)
	if end <= start {
		return nil
	}
	return unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(base, start-p)), end-start), unix.MADV_POPULATE_WRITE)
}
