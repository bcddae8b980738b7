//go:build !linux && !darwin && !windows

package badgerstore

// freeSpace does not know the free space here: the guard never refuses a write (see
// spaceGuard).
func freeSpace(string) (free uint64, known bool, err error) { return 0, false, nil }
