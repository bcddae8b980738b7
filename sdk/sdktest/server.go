package sdktest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/syncbuf"
)

// AdminPassword is the password of the account admin on the servers this package starts.
const AdminPassword = "sdk-admin-password"

// configFile is the services.json of the test servers, relative to the repository root: cheap
// password hashing, permanent sessions on, generous per-address limits.
const configFile = "testdata/config/e2e.json"

// readyTimeout bounds how long Start waits for a server to be ready.
const readyTimeout = 30 * time.Second

var (
	root   string
	binary string
)

// Main builds the sessiond command, runs the tests and removes the binary. Call it from
// TestMain: os.Exit(sdktest.Main(m)).
func Main(m *testing.M) int {
	var err error
	if root, err = findRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "sdktest:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "sessiond-sdk")
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdktest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "sessiond")
	build := exec.Command("go", "build", "-o", binary, "./cmd/sessiond")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "sdktest: building sessiond: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// findRoot walks up from the current directory to the repository's go.mod.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(data, []byte("module github.com/sessiond/sessiond\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of module github.com/sessiond/sessiond above the current directory")
		}
		dir = parent
	}
}

// Root returns the repository root. Main must have run.
func Root() string { return root }

// Binary returns the path of the sessiond command that Main built.
func Binary() string { return binary }

// ConfigPath returns the absolute path of the test servers' services.json.
func ConfigPath() string { return filepath.Join(root, filepath.FromSlash(configFile)) }

// Config writes a services.json for a test server: the test servers' own with the members of
// overrides, a JSON object, put over it (objects merged member by member), and returns its
// path, for Options.Config.
func Config(t testing.TB, overrides string) string {
	t.Helper()
	base, err := os.ReadFile(ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	var config, changes map[string]any
	if err := json.Unmarshal(base, &config); err != nil {
		t.Fatalf("%s: %v", ConfigPath(), err)
	}
	if err := json.Unmarshal([]byte(overrides), &changes); err != nil {
		t.Fatalf("sdktest.Config: the overrides: %v", err)
	}
	merged, err := json.MarshalIndent(mergeJSON(config, changes), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "services.json")
	if err := os.WriteFile(path, merged, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mergeJSON puts the members of changes over those of base, merging objects member by member.
func mergeJSON(base, changes map[string]any) map[string]any {
	for name, value := range changes {
		inner, isObject := value.(map[string]any)
		under, wasObject := base[name].(map[string]any)
		if isObject && wasObject {
			value = mergeJSON(under, inner)
		}
		base[name] = value
	}
	return base
}

// Env returns the environment of a test server: the test's, with SESSIOND_ADMIN_PASSWORD.
func Env() []string { return append(os.Environ(), "SESSIOND_ADMIN_PASSWORD="+AdminPassword) }

// StdioCommand returns the command of an in-memory server on its standard input and output,
// for sessiond.StartStdio. Its logs go nowhere (StartStdio keeps their end for its errors).
func StdioCommand() *exec.Cmd {
	cmd := exec.Command(binary, "serve", "--stdio", "--in-memory", "--config", ConfigPath(), "--log-format", "json")
	cmd.Env = Env()
	return cmd
}

// Server is a running `sessiond serve` with TCP and HTTP listeners, in memory unless
// Options.DataDir says otherwise.
type Server struct {
	// TCPAddr is the address of the TCP listener, e.g. "127.0.0.1:40123".
	TCPAddr string
	// HTTPURL is the URL of the HTTP endpoint, e.g. "http://127.0.0.1:40124/".
	HTTPURL string

	cmd    *exec.Cmd
	logs   *syncbuf.Buffer
	exited chan struct{}
}

// Options change the server StartWith starts.
type Options struct {
	// Config is the services.json to read; "" means ConfigPath().
	Config string
	// DataDir keeps the store in this directory (Badger) instead of in memory.
	DataDir string
}

// Start starts a server on loopback ports it picks, waits until its log says it is ready, and
// kills it when the test ends, logging its output if the test failed.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith starts a server as Start does, changed by opts.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	if binary == "" {
		t.Fatal("sdktest: Main has not built sessiond; call it from TestMain")
	}
	config, store := opts.Config, []string{"--in-memory"}
	if config == "" {
		config = ConfigPath()
	}
	if opts.DataDir != "" {
		store = []string{"--data", opts.DataDir}
	}
	args := append([]string{"serve"}, store...)
	args = append(args, "--config", config, "--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--log-format", "json")
	cmd := exec.Command(binary, args...)
	cmd.Env = Env()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{cmd: cmd, logs: &syncbuf.Buffer{}, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan error, 1)
	go s.readLog(stderr, ready)
	go func() { _ = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.exited
		if t.Failed() {
			t.Logf("sessiond log:\n%s", s.logs.String())
		}
	})
	select {
	case err := <-ready:
		if err != nil {
			<-s.exited
			t.Fatalf("%v; log:\n%s", err, s.logs.String())
		}
	case <-time.After(readyTimeout):
		t.Fatalf("sessiond not ready after %v; log:\n%s", readyTimeout, s.logs.String())
	}
	return s
}

// readLog copies the server's JSON log lines and reports on ready when the listeners are up
// and the server has said "sessiond ready".
func (s *Server) readLog(stderr io.Reader, ready chan<- error) {
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var tcpAddr, httpAddr string
	signalled := false
	for sc.Scan() {
		line := sc.Text()
		_, _ = s.logs.Write([]byte(line + "\n"))
		var rec struct {
			Msg       string `json:"msg"`
			Transport string `json:"transport"`
			Addr      string `json:"addr"`
		}
		if signalled || json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		switch {
		case rec.Msg == "listening" && rec.Transport == "tcp":
			tcpAddr = rec.Addr
		case rec.Msg == "listening" && rec.Transport == "http":
			httpAddr = rec.Addr
		case rec.Msg == "sessiond ready":
			signalled = true
			if tcpAddr == "" || httpAddr == "" {
				ready <- errors.New("sessiond is ready without both a TCP and an HTTP listener in its log")
				continue
			}
			// Written before the send on ready, which orders them before Start reads them.
			s.TCPAddr, s.HTTPURL = tcpAddr, "http://"+httpAddr+"/"
			ready <- nil
		}
	}
	if !signalled {
		ready <- errors.New("sessiond exited before it was ready")
	}
}

// Logs returns what the server has logged so far.
func (s *Server) Logs() string { return s.logs.String() }
