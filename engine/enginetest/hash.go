package enginetest

import "github.com/sessiond/sessiond/engine"

// CheapHash is a cheap argon2id configuration for tests, so a login does not spend ~20 ms hashing.
var CheapHash = engine.HashParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1}
