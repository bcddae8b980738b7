package engine_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestEngineHasNoTransportDependencies checks that the engine and its stores never import rpc,
// a JSON-RPC library or (in the engine itself) HTTP: the engine knows nothing of the wire.
func TestEngineHasNoTransportDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	list := func(pattern string) []string {
		out, err := exec.Command("go", "list", "-deps", pattern).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pattern, err)
		}
		return strings.Fields(string(out))
	}
	forbidden := []string{"github.com/sessiond/sessiond/rpc", "github.com/sourcegraph/jsonrpc2", "github.com/creachadair/jrpc2"}
	for _, dep := range list("./...") {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("engine/... depends on %s", dep)
			}
		}
	}
	// Badger pulls in net/http through expvar for its metrics; the engine package itself
	// must not.
	for _, dep := range list(".") {
		if dep == "net/http" || strings.HasPrefix(dep, "net/rpc") {
			t.Errorf("package engine depends on %s", dep)
		}
	}
}
