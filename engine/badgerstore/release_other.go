//go:build !linux

package badgerstore

// tableReleaser returns a function that does nothing outside Linux; see release_linux.go.
func tableReleaser(string) func() { return func() {} }
