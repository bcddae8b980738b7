package rpc_test

// TestFuzzSeedTwins checks that the Go-format seed corpora of FuzzServeFrame and FuzzScanner
// (rpc/testdata/fuzz/<Target>, which go test runs and go test -fuzz starts from) hold exactly
// the readable seeds in testdata/fuzz/<Target> at the repository root.

import (
	"testing"

	"github.com/sessiond/sessiond/internal/fuzzseeds"
)

func TestFuzzSeedTwins(t *testing.T) {
	fuzzseeds.CheckTwins(t, "FuzzServeFrame", "string")
	fuzzseeds.CheckTwins(t, "FuzzScanner", "string")
}
