package badgerstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// writeOutCurrentLog: a write through a shared mapping dirties the file's own pages, and
// msync(MS_SYNC) is an fsync of the mapped range, so a descriptor of our own writes out the
// logs Badger writes to as Badger's Sync would, one of them at a time (groupSync).
const writeOutCurrentLog = true

// datasync writes out f's data, as msync and Badger's own sync do, without the inode's times
// that writes through a mapping change (a full fsync commits the file system's journal for
// them, several milliseconds on each call).
func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}
