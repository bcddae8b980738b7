package main

// knownBug is how a test reports a bug it found in code owned by another part of the project
// (described in the report): the test is skipped with the evidence, so the suite stays
// usable, unless SESSIOND_KNOWN_BUGS=fail, which fails it. Once the bug is fixed the test
// passes and knownBug is never called.

import (
	"os"
	"testing"
)

func knownBug(t *testing.T, bug, evidence string) {
	t.Helper()
	if os.Getenv("SESSIOND_KNOWN_BUGS") == "fail" {
		t.Errorf("KNOWN BUG: %s\n%s", bug, evidence)
		return
	}
	t.Skipf("KNOWN BUG (SESSIOND_KNOWN_BUGS=fail to fail instead): %s\n%s", bug, evidence)
}
