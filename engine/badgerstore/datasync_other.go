//go:build !linux

package badgerstore

import "os"

// datasync writes out f's data; see datasync_linux.go.
func datasync(f *os.File) error { return f.Sync() }
