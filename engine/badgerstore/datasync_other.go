//go:build !linux

package badgerstore

import "os"

// writeOutCurrentLog is false off Linux: whether an fsync of a descriptor of our own covers
// pages written through a mapping is not checked there (on Windows it does not: those are
// flushed through the mapping), so the logs Badger writes to are left to Badger's Sync.
const writeOutCurrentLog = false

// datasync writes out f's data; see datasync_linux.go.
func datasync(f *os.File) error { return f.Sync() }
