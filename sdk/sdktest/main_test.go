package sdktest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// sdkTimeout bounds one SDK's test run.
const sdkTimeout = 2 * time.Minute

// scenarioEnv is the environment of an SDK's scenario: the server's addresses, the admin
// password, the file where the SDK records its calls, and the sessiond command and test
// configuration, with which the SDK starts servers of its own over stdio.
func scenarioEnv(server *Server, records string) []string {
	return append(os.Environ(),
		"SESSIOND_TCP_ADDR="+server.TCPAddr,
		"SESSIOND_HTTP_URL="+server.HTTPURL,
		"SESSIOND_ADMIN_PASSWORD="+AdminPassword,
		"SESSIOND_RECORD_FILE="+records,
		"SESSIOND_BINARY="+Binary(),
		"SESSIOND_CONFIG="+ConfigPath(),
	)
}

// run runs a command in dir and fails the test, showing its output, if it fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), sdkTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env, cmd.WaitDelay = dir, env, 5*time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// record is one call an SDK made in its scenario, as it recorded it.
type record struct {
	SDK    string          `json:"sdk"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Bearer string          `json:"bearer"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code int `json:"code"`
	} `json:"error"`
}

// checkRecords checks every call an SDK recorded against the schemas, and that the scenario
// called every method it should and saw the errors it should.
func checkRecords(t *testing.T, file, sdk string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the %s scenario recorded no calls: %v", sdk, err)
	}
	methods := map[string]bool{}
	codes := map[int]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	n := 0
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("record %q: %v", sc.Bytes(), err)
		}
		n++
		if r.SDK != sdk {
			t.Errorf("a call of %s was recorded by %q, not %q", r.Method, r.SDK, sdk)
		}
		methods[r.Method] = true
		if r.Error != nil {
			codes[r.Error.Code] = true
		} else if err := CheckResult(r.Method, r.Result); err != nil {
			t.Errorf("%s: result of %s %s does not match its schema: %v", sdk, r.Method, r.Result, err)
		}
		if r.Error == nil || r.Error.Code != -32602 {
			if err := CheckParams(r.Method, r.Params, r.Bearer); err != nil {
				t.Errorf("%s sent params of %s that do not match their schema: %s: %v", sdk, r.Method, r.Params, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, m := range ScenarioMethods {
		if !methods[m] {
			t.Errorf("the %s scenario never called %s", sdk, m)
		}
	}
	for _, code := range ScenarioErrors {
		if !codes[code] {
			t.Errorf("the %s scenario never saw error %d", sdk, code)
		}
	}
	t.Logf("%d calls of the %s scenario match the schemas; methods: %v", n, sdk, slices.Sorted(maps.Keys(methods)))
}
