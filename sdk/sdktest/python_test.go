package sdktest

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestPythonSDK runs the Python SDK's unittest suite against a live sessiond and checks every
// call the scenario made against the schemas.
func TestPythonSDK(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("skipping the Python SDK: python3 is not installed")
	}
	if exec.Command(python, "-c", "import sys; sys.exit(sys.version_info < (3, 10))").Run() != nil {
		t.Skip("skipping the Python SDK: it needs Python 3.10 or later")
	}
	server := Start(t)
	records := filepath.Join(t.TempDir(), "calls.jsonl")
	env := append(scenarioEnv(server, records), "PYTHONDONTWRITEBYTECODE=1")
	report := run(t, filepath.Join(Root(), "sdk", "python"), env, python, "-m", "unittest", "discover", "-s", "tests", "-t", ".", "-v")
	if regexp.MustCompile(`(?m)skipped|^OK \(`).MatchString(report) {
		t.Errorf("unittest skipped something:\n%s", report)
	}
	checkRecords(t, records, "python")
}
