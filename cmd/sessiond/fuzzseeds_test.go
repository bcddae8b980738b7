package main

// TestFuzzSeedTwins checks that the Go-format seed corpus of FuzzParseConfig
// (cmd/sessiond/testdata/fuzz/FuzzParseConfig, which go test runs and go test -fuzz starts
// from) holds exactly the readable seeds in testdata/fuzz/FuzzParseConfig at the repository root.

import (
	"testing"

	"github.com/sessiond/sessiond/internal/fuzzseeds"
)

func TestFuzzSeedTwins(t *testing.T) {
	fuzzseeds.CheckTwins(t, "FuzzParseConfig", "[]byte")
}
