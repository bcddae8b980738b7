package fuzzseeds

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// twinPrefix starts the names of the Go-format twins; other files beside them are fuzzing finds.
const twinPrefix = "seed-"

// UpdateEnv is the environment variable that makes CheckTwins rewrite the twins when set to 1.
const UpdateEnv = "SESSIOND_UPDATE_FUZZ_SEEDS"

// CheckTwins compares the readable seeds of target at the repository root with their
// Go-format twins in testdata/fuzz/<target> of the package under test (go test's working
// directory), failing t on a missing, stale or orphaned twin; with SESSIOND_UPDATE_FUZZ_SEEDS=1
// it rewrites the twins instead. goType is the type of the target's one fuzzed argument as a
// corpus file spells it: "string" or "[]byte".
func CheckTwins(t testing.TB, target, goType string) {
	t.Helper()
	root := filepath.Join(repoRoot(t), "testdata", "fuzz", target)
	local := filepath.Join("testdata", "fuzz", target)
	update := os.Getenv(UpdateEnv) == "1"
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
			t.Errorf("%s/%s has no readable seed at the root; run with %s=1", local, e.Name(), UpdateEnv)
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
			t.Errorf("%s is missing or stale; run the test with %s=1", path, UpdateEnv)
		}
	}
}

// repoRoot finds the repository root: the nearest directory above go test's working directory
// that holds go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("fuzzseeds: no go.mod above the working directory")
		}
		dir = parent
	}
}
