//go:build !unix

package badgerstore

import "time"

// cpuTime is not measured on this platform.
func cpuTime() time.Duration { return 0 }
