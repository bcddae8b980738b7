// Package fuzzseeds keeps the two forms of a fuzz target's seed corpus in step for tests: the
// readable seeds in testdata/fuzz/<Target> at the repository root, which people edit, and their
// Go-format twins in the fuzzing package's testdata/fuzz/<Target>, which go test runs and
// go test -fuzz starts from.
//
// Only tests import it; the server never does (TestOnlyTestsImportHelpers in engine/enginetest
// checks).
package fuzzseeds
