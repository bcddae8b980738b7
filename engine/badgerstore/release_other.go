//go:build !linux

package badgerstore

// releaseTables does nothing outside Linux; see release_linux.go.
func releaseTables(string) {}
