//go:build !linux

package badgerstore

import "os"

// writeOutCurrentLog is false: elsewhere (Windows) pages written through a mapping are
// flushed through the mapping, so the current memtable's log is left to Badger's Sync.
const writeOutCurrentLog = false

// datasync writes out f's data; see datasync_linux.go.
func datasync(f *os.File) error { return f.Sync() }
