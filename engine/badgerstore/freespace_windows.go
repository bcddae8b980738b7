package badgerstore

import "golang.org/x/sys/windows"

// freeSpace returns the bytes the process may still write on the volume holding dir.
func freeSpace(dir string) (free uint64, known bool, err error) {
	path, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return 0, false, err
	}
	if err := windows.GetDiskFreeSpaceEx(path, &free, nil, nil); err != nil {
		return 0, false, err
	}
	return free, true, nil
}
