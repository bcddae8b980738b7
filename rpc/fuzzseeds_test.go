package rpc_test

// TestFuzzSeedTwins checks that the Go-format seed corpora of FuzzServeFrame and FuzzScanner
// (rpc/testdata/fuzz/<Target>, which go test runs and go test -fuzz starts from) hold exactly
// the readable seeds in testdata/fuzz/<Target> at the repository root.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFuzzSeedTwins(t *testing.T) {
	checkSeedTwins(t, "FuzzServeFrame", "string")
	checkSeedTwins(t, "FuzzScanner", "string")
}

// twinPrefix starts the names of the Go-format twins; other files there are fuzzing finds.
const twinPrefix = "seed-"

// checkSeedTwins compares the readable seeds of a fuzz target at the repository root with
// their Go-format twins in this package's testdata, and rewrites the twins when
// SESSIOND_UPDATE_FUZZ_SEEDS=1.
func checkSeedTwins(t *testing.T, target, goType string) {
	t.Helper()
	root := filepath.Join("..", "testdata", "fuzz", target)
	local := filepath.Join("testdata", "fuzz", target)
	update := os.Getenv("SESSIOND_UPDATE_FUZZ_SEEDS") == "1"
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) == 0 {
		t.Fatalf("no readable seeds in %s: %v", root, err)
	}
	want := map[string]string{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(root, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		want[twinPrefix+e.Name()] = fmt.Sprintf("go test fuzz v1\n%s(%q)\n", goType, data)
	}
	if update {
		if err := os.MkdirAll(local, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	existing, _ := os.ReadDir(local)
	for _, e := range existing {
		if _, ok := want[e.Name()]; !ok && strings.HasPrefix(e.Name(), twinPrefix) {
			if update {
				os.Remove(filepath.Join(local, e.Name()))
				continue
			}
			t.Errorf("%s/%s has no readable seed at the root; run with SESSIOND_UPDATE_FUZZ_SEEDS=1", local, e.Name())
		}
	}
	for name, content := range want {
		path := filepath.Join(local, name)
		if update {
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != content {
			t.Errorf("%s is missing or stale; run the test with SESSIOND_UPDATE_FUZZ_SEEDS=1", path)
		}
	}
}
