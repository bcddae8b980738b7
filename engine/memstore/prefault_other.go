//go:build !linux

package memstore

// prefault does nothing here: pages fault in as they are first written.
func prefault[T any](s []T) {}
