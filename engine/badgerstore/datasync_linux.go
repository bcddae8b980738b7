package badgerstore

import (
	"os"

	"golang.org/x/sys/unix"
)

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
