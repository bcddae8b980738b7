package sdktest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestTypeScriptSDK compiles the TypeScript SDK with its tests (tsc, strict), runs them with
// node --test against a live sessiond, and checks every call the scenario made against the
// schemas.
func TestTypeScriptSDK(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("skipping the TypeScript SDK: node is not installed (Node.js 18 or later runs it)")
	}
	dir := filepath.Join(Root(), "sdk", "typescript")
	tsc := filepath.Join(dir, "node_modules", "typescript", "bin", "tsc")
	if _, err := os.Stat(tsc); err != nil {
		t.Skip("skipping the TypeScript SDK: sdk/typescript/node_modules is missing; run `npm ci --prefix sdk/typescript`")
	}
	server := Start(t)
	out := t.TempDir()
	run(t, dir, nil, node, tsc, "-p", ".", "--outDir", out)
	records := filepath.Join(t.TempDir(), "calls.jsonl")
	report := run(t, dir, scenarioEnv(server, records), node, "--test", filepath.Join(out, "test"))
	if m := regexp.MustCompile(`(?m)^# (pass|skipped) (\d+)$`).FindAllStringSubmatch(report, -1); len(m) != 2 || m[0][2] == "0" || m[1][2] != "0" {
		t.Errorf("node --test passed nothing or skipped something:\n%s", report)
	}
	checkRecords(t, records, "typescript")
}
