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

// TestTypeScriptInstallFromPath checks that `npm install <path of the SDK>` into another
// project builds the SDK (its prepare script; dist/ is not in git) so that the project can
// import it. It installs a copy of the SDK, which borrows sdk/typescript/node_modules, so no
// registry is asked and the SDK's own directory is left as it was.
func TestTypeScriptInstallFromPath(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("skipping: node is not installed")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("skipping: npm is not installed")
	}
	dir := filepath.Join(Root(), "sdk", "typescript")
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "typescript", "bin", "tsc")); err != nil {
		t.Skip("skipping: sdk/typescript/node_modules is missing; run `npm ci --prefix sdk/typescript`")
	}
	sdk := filepath.Join(t.TempDir(), "typescript")
	if err := os.CopyFS(sdk, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	// What git holds: no build output, and the borrowed node_modules in place of a copy.
	for _, generated := range []string{"dist", "node_modules"} {
		if err := os.RemoveAll(filepath.Join(sdk, generated)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(modules, filepath.Join(sdk, "node_modules")); err != nil {
		t.Fatal(err)
	}
	project := filepath.Join(t.TempDir(), "project")
	if err := os.Mkdir(project, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(project, "package.json"), []byte(`{"name":"project","private":true,"type":"module"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, project, os.Environ(), npm, "install", "--offline", "--no-audit", "--no-fund", "--loglevel=error", sdk)
	out := run(t, project, os.Environ(), node, "--input-type=module", "-e",
		`import { SessiondClient, SessiondError, HttpTransport, TcpTransport, connect } from "@sessiond/client";
		console.log([SessiondClient, SessiondError, HttpTransport, TcpTransport, connect].map((x) => typeof x).join(" "), SessiondError.INVALID_AUTH_TOKEN);`)
	if want := "function function function function function 12031\n"; out != want {
		t.Errorf("importing the installed SDK printed %q, want %q", out, want)
	}
	if _, err := os.Stat(filepath.Join(sdk, "dist", "src", "index.d.ts")); err != nil {
		t.Errorf("the install built no type declarations: %v", err)
	}
}
