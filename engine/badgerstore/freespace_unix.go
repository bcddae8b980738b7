//go:build linux || darwin

package badgerstore

import "golang.org/x/sys/unix"

// freeSpace returns the bytes an unprivileged process may still write on the file system
// holding dir (statfs's available blocks: without the blocks ext4 keeps for root, so a
// server running as root is refused a little early rather than late).
func freeSpace(dir string) (free uint64, known bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true, nil
}
