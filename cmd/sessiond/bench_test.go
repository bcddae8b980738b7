package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/badgerstore"
	"github.com/sessiond/sessiond/engine/enginetest"
	"github.com/sessiond/sessiond/engine/memstore"
	"github.com/sessiond/sessiond/rpc"
)

const benchTestPassword = "bench-admin-password"

// benchServer runs sessiond in this process on store (a fresh memstore when nil), with cheap
// hashing, over TCP and HTTP, and returns their addresses.
func benchServer(t *testing.T, store engine.Store) (tcpAddr, httpURL string) {
	t.Helper()
	if store == nil {
		store = memstore.New(memstore.Options{})
	}
	cfg := DefaultConfig().Engine
	cfg.Hash = enginetest.CheapHash
	cfg.HousekeepingInterval = -1
	eng, err := engine.New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	if _, err := eng.Bootstrap(context.Background(), "admin", benchTestPassword); err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer(rpc.NewService(eng, []byte(`{}`), nil), rpc.Options{Logger: slog.New(slog.DiscardHandler)})
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	web, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTCP(tcp)
	go srv.ServeHTTPListener(web)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return tcp.Addr().String(), "http://" + web.Addr().String() + "/"
}

// runBenchForTest runs `sessiond bench` with args and decodes its --json report.
func runBenchForTest(t *testing.T, args ...string) (benchReport, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"bench", "--json"}, args...), nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("bench %v: exit %d\nstderr:\n%s", args, code, stderr.String())
	}
	var report benchReport
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&report); err != nil {
		t.Fatalf("bench %v: the output is not a report: %v\n%s", args, err, stdout.String())
	}
	return report, stderr.String()
}

// checkRun checks the shape and the sanity of one run of a report.
func checkRun(t *testing.T, run benchRun, target, transport, method string, connections int) {
	t.Helper()
	if run.Target != target || run.Transport != transport || run.Method != method || run.Connections != connections {
		t.Errorf("run %+v: want target %s, transport %s, method %s, %d connections", run, target, transport, method, connections)
	}
	if run.Requests <= 0 || run.Errors != 0 || run.Seconds <= 0 || run.Throughput <= 0 {
		t.Errorf("%s %s: %d requests, %d errors in %gs, %g/s", target, method, run.Requests, run.Errors, run.Seconds, run.Throughput)
	}
	if want := float64(run.Requests) / run.Seconds; math.Abs(run.Throughput-want) > want/100+1 {
		t.Errorf("%s %s: throughput %g, but %d requests in %gs", target, method, run.Throughput, run.Requests, run.Seconds)
	}
	l := run.Latency
	if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max && l.Mean > 0 && l.Mean <= l.Max) {
		t.Errorf("%s %s: latencies out of order: %+v", target, method, l)
	}
}

// TestBenchJSON runs bench briefly against an in-process server and its floor, and checks
// the JSON report: the machine, one run per target, figures that add up.
func TestBenchJSON(t *testing.T) {
	addr, _ := benchServer(t, nil)
	report, stderr := runBenchForTest(t, "--addr", addr, "--password", benchTestPassword, "--floor",
		"-c", "4", "-d", "1100ms", "--warmup", "100ms")
	m := report.Machine
	if m.CPUs < 1 || m.GOMAXPROCS < 1 || m.GoVersion == "" || m.OS == "" || m.Arch == "" || m.Sessiond == "" {
		t.Errorf("machine: %+v", m)
	}
	if len(report.Runs) != 2 {
		t.Fatalf("want a sessiond and a floor run, got %+v", report.Runs)
	}
	checkRun(t, report.Runs[0], "sessiond", "tcp", "pingSession", 4)
	checkRun(t, report.Runs[1], "floor", "tcp", "fixed reply", 4)
	if report.Runs[0].Sessions != 4 || report.Runs[0].Address != addr {
		t.Errorf("sessiond run: %d sessions at %s, want 4 at %s", report.Runs[0].Sessions, report.Runs[0].Address, addr)
	}
	// The server in this process is not measured (its CPU would include the client's); the
	// floor, a process of its own, is on Linux.
	if r := report.Runs[0]; r.ServerPID != 0 || r.ServerCPU != 0 {
		t.Errorf("in-process sessiond measured as a server: %+v", r)
	}
	if r := report.Runs[1]; runtime.GOOS == "linux" && (r.ServerPID <= 0 || r.ServerPID == os.Getpid() || r.ServerCPU <= 0 || r.ServerCalls < 1) {
		t.Errorf("floor run without its server's use: %+v", r)
	}
	// bench's own CPU is read for every target over the network (on Linux).
	for _, r := range report.Runs {
		if runtime.GOOS == "linux" && r.ClientCPU <= 0 {
			t.Errorf("%s run without the client's use: %+v", r.Target, r)
		}
	}
	// The floor is bench's child, so it shares bench's scheduling group (both are "" where
	// /proc names none).
	if r := report.Runs[1]; runtime.GOOS == "linux" && r.ServerGroup != m.SchedGroup {
		t.Errorf("floor in scheduling group %q, bench in %q: want the same", r.ServerGroup, m.SchedGroup)
	}
	if !strings.Contains(stderr, "sessiond tcp pingSession:") || !strings.Contains(stderr, "req/s") {
		t.Errorf("no progress line on stderr:\n%s", stderr)
	}
	// The text report carries the same runs and the comparison.
	var stdout, errs bytes.Buffer
	if code := run([]string{"bench", "--addr", addr, "--password", benchTestPassword, "--floor", "-q", "-c", "2", "-n", "200"}, nil, &stdout, &errs); code != 0 {
		t.Fatalf("text report: exit %d: %s", code, errs.String())
	}
	for _, want := range []string{"machine: ", "sessiond  tcp", "floor     tcp", "sessiond / floor: "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestServeFloor checks the floor process: it answers every line with the fixed reply, and
// stops, closing its connections, when its stdin ends.
func TestServeFloor(t *testing.T) {
	cmd := exec.Command(binPath, "bench", "--serve-floor", "127.0.0.1:0")
	stdinW, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdoutR, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	done := make(chan error, 1)
	line, err := bufio.NewReader(stdoutR).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	conn, err := net.DialTimeout("tcp", strings.TrimSpace(line), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	rd := bufio.NewReader(conn)
	for range 3 {
		if _, err := io.WriteString(conn, `{"jsonrpc":"2.0","method":"pingSession","id":1}`+"\n"); err != nil {
			t.Fatal(err)
		}
		if reply, err := rd.ReadString('\n'); err != nil || reply != floorReply {
			t.Fatalf("reply %q, %v; want %q", reply, err, floorReply)
		}
	}
	stdinW.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the floor did not exit after its stdin ended")
	}
	if _, err := rd.ReadString('\n'); err != io.EOF {
		t.Errorf("read after the floor stopped: %v, want EOF (the connection closed)", err)
	}
}

// TestBenchMethods runs every method once briefly, over TCP and HTTP, with a request count,
// and checks that bench cleans up after itself (its account is gone).
func TestBenchMethods(t *testing.T) {
	addr, httpURL := benchServer(t, nil)
	for _, method := range []string{"pingSession", "tickle", "describeSessions", "createSession", "authenticate"} {
		report, _ := runBenchForTest(t, "--addr", addr, "--password", benchTestPassword, "--method", method, "-c", "3", "-n", "60", "-q")
		want := method
		if method == "tickle" {
			want = "setUserPreference"
		}
		checkRun(t, report.Runs[0], "sessiond", "tcp", want, 3)
		if report.Runs[0].Requests != 60 {
			t.Errorf("%s: %d requests measured, want 60", method, report.Runs[0].Requests)
		}
	}
	report, _ := runBenchForTest(t, "--http", httpURL, "--password", benchTestPassword, "-c", "3", "-d", "300ms", "--warmup", "0s", "-q")
	checkRun(t, report.Runs[0], "sessiond", "http", "pingSession", 3)

	// Every run dropped the account it made.
	setup := &setupClient{addr: addr, timeout: 5 * time.Second}
	defer setup.close()
	if left := benchAccountsLeft(t, setup); len(left) > 0 {
		t.Errorf("bench accounts left behind: %v", left)
	}
}

// benchAccountsLeft lists the accounts named like bench's own.
func benchAccountsLeft(t *testing.T, setup *setupClient) []string {
	t.Helper()
	token, err := adminLogin(setup, "admin", benchTestPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = setup.call("deleteSession", map[string]string{"authToken": token}) }()
	result, err := setup.call("listAccounts", map[string]any{"authToken": token, "partialNames": []string{benchAccount}})
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Accounts []struct {
			Username string `json:"username"`
		} `json:"accounts"`
	}
	if err := json.Unmarshal(result, &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range list.Accounts {
		names = append(names, a.Username)
	}
	return names
}

// TestBenchRunsSideBySide runs two benches against one server at once, as a login flood
// beside token checks does: each has its own account, and neither disturbs the other.
func TestBenchRunsSideBySide(t *testing.T) {
	addr, _ := benchServer(t, memstore.New(memstore.Options{}))
	methods := []string{"pingSession", "createSession"}
	stdouts, stderrs := make([]bytes.Buffer, 2), make([]bytes.Buffer, 2)
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i, method := range methods {
		wg.Go(func() {
			codes[i] = run([]string{"bench", "--json", "--addr", addr, "--password", benchTestPassword, "--method", method,
				"-c", "3", "-d", "1s", "--warmup", "0s", "-q"}, nil, &stdouts[i], &stderrs[i])
		})
	}
	wg.Wait()
	for i, method := range methods {
		var report benchReport
		if codes[i] != 0 {
			t.Errorf("%s: exit %d: %s", method, codes[i], stderrs[i].String())
		} else if err := json.Unmarshal(stdouts[i].Bytes(), &report); err != nil {
			t.Errorf("%s: %v", method, err)
		} else if r := report.Runs; len(r) != 1 || r[0].Errors != 0 || r[0].Requests == 0 {
			t.Errorf("%s beside another bench: %+v", method, r)
		}
	}
	setup := &setupClient{addr: addr, timeout: 5 * time.Second}
	defer setup.close()
	if left := benchAccountsLeft(t, setup); len(left) > 0 {
		t.Errorf("bench accounts left behind: %v", left)
	}
}

// TestBenchRedis drives a real redis-server next to sessiond, when one is installed.
func TestBenchRedis(t *testing.T) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	redis := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := redis.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = redis.Process.Kill(); _ = redis.Wait() })
	redisAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err := net.Dial("tcp", redisAddr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	addr, _ := benchServer(t, nil)
	report, _ := runBenchForTest(t, "--addr", addr, "--password", benchTestPassword, "--redis", redisAddr,
		"-c", "4", "-d", "300ms", "--warmup", "50ms", "-q")
	if len(report.Runs) != 2 {
		t.Fatalf("runs: %+v", report.Runs)
	}
	checkRun(t, report.Runs[1], "redis", "resp", "GET", 4)
	if report.Runs[1].Sessions != report.Runs[0].Sessions {
		t.Errorf("redis used %d keys, sessiond %d tokens", report.Runs[1].Sessions, report.Runs[0].Sessions)
	}
	// Pipelined, Redis's client as sessiond's.
	report, _ = runBenchForTest(t, "--addr", addr, "--password", benchTestPassword, "--redis", redisAddr,
		"-c", "4", "-n", "800", "--pipeline", "8", "-q")
	checkPipelined(t, report, 800, 8)
}

// TestBenchPipeline checks --pipeline against sessiond and the floor: every request of every
// batch is answered and counted, and -n is met within one batch.
func TestBenchPipeline(t *testing.T) {
	addr, _ := benchServer(t, nil)
	report, _ := runBenchForTest(t, "--addr", addr, "--password", benchTestPassword, "--floor",
		"-c", "4", "-n", "800", "--pipeline", "8", "-q")
	checkPipelined(t, report, 800, 8)
	report, _ = runBenchForTest(t, "--addr", addr, "--password", benchTestPassword, "--method", "describeSessions",
		"-c", "2", "-n", "100", "--pipeline", "5", "-q")
	checkPipelined(t, report, 100, 5)
}

// checkPipelined checks that each run of report answered n to n+depth-1 requests, without
// errors, sent depth at a time.
func checkPipelined(t *testing.T, report benchReport, n, depth int64) {
	t.Helper()
	for _, r := range report.Runs {
		if r.Requests < n || r.Requests >= n+depth || r.Errors != 0 || r.Pipeline != int(depth) {
			t.Errorf("%s: %d requests, %d errors, pipeline %d; want %d to %d, none, %d", r.Target, r.Requests, r.Errors, r.Pipeline, n, n+depth-1, depth)
		}
	}
}

// TestBenchPopulate writes sessions into a stopped store, serves it, and measures them with
// --tokens-file, which needs no password.
func TestBenchPopulate(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.txt")
	// A file already there, readable by all: the tokens written into it are for the owner only.
	if err := os.WriteFile(tokens, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	t.Setenv("SESSIOND_ADMIN_PASSWORD", benchTestPassword)
	if code := run([]string{"bench", "--populate", "300", "--data", filepath.Join(dir, "data"), "--tokens-file", tokens}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("populate: exit %d: %s", code, stderr.String())
	}
	if info, err := os.Stat(tokens); err != nil || runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
		t.Fatalf("tokens file: %v, %v", info, err)
	}
	list, err := readTokens(tokens)
	if err != nil || len(list) != 300 {
		t.Fatalf("%d tokens, %v", len(list), err)
	}
	store, err := badgerstore.Open(badgerstore.Options{Dir: filepath.Join(dir, "data"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	for _, tok := range list[:5] {
		parsed, err := engine.ParseToken(tok)
		if err != nil {
			t.Fatal(err)
		}
		s, err := store.SessionByTokenHash(context.Background(), parsed.Hash, time.Now())
		if err != nil || s.Username != populateAccount {
			t.Fatalf("populated session: %+v, %v", s, err)
		}
	}
	// The admin account was bootstrapped, as serve would have done, with the production
	// hash: populating weakens no password hashing.
	admin, err := store.GetAccount(context.Background(), "admin")
	if err != nil {
		t.Fatalf("admin account: %v", err)
	}
	p := engine.DefaultHashParams
	if want := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$", p.MemoryKiB, p.Iterations, p.Parallelism); !strings.HasPrefix(admin.PasswordHash, want) {
		t.Errorf("admin's hash %.40q…, want the production parameters %s", admin.PasswordHash, want)
	}
	// The populated sessions' account has no password anything can match.
	if acct, err := store.GetAccount(context.Background(), populateAccount); err != nil || acct.PasswordHash != "" {
		t.Errorf("%s: %+v, %v; want an account with no password hash", populateAccount, acct, err)
	}
	addr, _ := benchServer(t, store)
	setup := &setupClient{addr: addr, timeout: 5 * time.Second}
	defer setup.close()
	for _, password := range []string{"", "x"} {
		if _, err := setup.call("createSession", map[string]string{"username": populateAccount, "password": password}); err == nil || !strings.Contains(err.Error(), "450") && !strings.Contains(err.Error(), "credentials") {
			t.Errorf("login as %s with %q: %v, want refused", populateAccount, password, err)
		}
	}
	t.Setenv("SESSIOND_ADMIN_PASSWORD", "")
	report, _ := runBenchForTest(t, "--addr", addr, "--tokens-file", tokens, "-c", "3", "-n", "300", "-q")
	checkRun(t, report.Runs[0], "sessiond", "tcp", "pingSession", 3)
	if report.Runs[0].Sessions != 300 {
		t.Errorf("used %d tokens, want 300", report.Runs[0].Sessions)
	}
}

// TestBenchUsage checks --help and the refusal of bad flags.
func TestBenchUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"bench", "--help"}, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "--populate") {
		t.Errorf("--help: exit %d\n%s", code, stdout.String())
	}
	for _, args := range [][]string{
		{"--method", "nope"}, {"-c", "0"}, {"--addr", "a:1", "--http", "b:2"}, {"--populate", "10"}, {"--populate", "0", "--data", "d"},
		{"--rounds", "0"}, {"-n", "0"}, {"extra"}, {"--pipeline", "0"}, {"--pipeline", "2", "--http", "http://127.0.0.1:1/"},
		{"--pipeline", "2", "--method", "createSession"}, {"--bogus"},
	} {
		stdout.Reset()
		stderr.Reset()
		if code := run(append([]string{"bench"}, args...), nil, &stdout, &stderr); code != 2 || stderr.Len() == 0 {
			t.Errorf("bench %v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
	// --populate-idle is 1 s to the longest timeout a session takes.
	for _, idle := range []string{"999ms", "-5s", "1000000h"} {
		stderr.Reset()
		args := []string{"bench", "--populate", "10", "--data", t.TempDir(), "--populate-idle", idle}
		if code := run(args, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--populate-idle must be 1s to") {
			t.Errorf("--populate-idle %s: exit %d, stderr %q", idle, code, stderr.String())
		}
	}
	// No password and no tokens: a clear error, before any load.
	t.Setenv("SESSIOND_ADMIN_PASSWORD", "")
	addr, _ := benchServer(t, nil)
	stderr.Reset()
	if code := run([]string{"bench", "--addr", addr, "-n", "10", "-q"}, nil, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "SESSIOND_ADMIN_PASSWORD") {
		t.Errorf("no password: exit %d, %s", code, stderr.String())
	}
}

// TestHistogram checks the buckets' bounds and the quantiles against exact ones.
func TestHistogram(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 1000, 123456789, 1 << 40, math.MaxInt64} {
		i := histIndex(v)
		if i < 0 || i >= histBuckets || histUpper(i) < v || (i > 0 && histUpper(i-1) >= v) {
			t.Errorf("value %d: bucket %d, bounds (%d, %d]", v, i, histUpper(i-1), histUpper(i))
		}
		if v >= histLinear && float64(histUpper(i)-v) > float64(v)/64 {
			t.Errorf("value %d: bucket bound %d is more than 1/64 off", v, histUpper(i))
		}
	}
	var h histogram
	for v := 1; v <= 10000; v++ {
		h.record(time.Duration(v) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		exact := q * 10000 * 1000
		got := float64(h.quantile(q))
		if got < exact || got > exact*(1+1.0/64) {
			t.Errorf("quantile %g: %g, exact %g", q, got, exact)
		}
	}
	if l := h.latency(); l.Max != 10000 || math.Abs(l.Mean-5000.5) > 0.1 {
		t.Errorf("latency: %+v", l)
	}
	// A batch of n (recordN) is n values recorded one by one.
	var batch, single histogram
	for v := 1; v <= 100; v++ {
		d := time.Duration(v*v) * time.Microsecond
		batch.recordN(d, uint64(v))
		for range v {
			single.record(d)
		}
	}
	if batch != single {
		t.Errorf("recordN: n %d, sum %d, max %d; one by one: n %d, sum %d, max %d", batch.n, batch.sum, batch.max, single.n, single.sum, single.max)
	}
}

// TestBenchMeasuresSessiond checks which flags make bench drive sessiond beside the other targets.
func TestBenchMeasuresSessiond(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, true},
		{[]string{"--floor"}, false},
		{[]string{"--redis", "127.0.0.1:6379", "--floor"}, false},
		{[]string{"--argon2"}, false},
		{[]string{"--floor", "--addr", "127.0.0.1:7400"}, true},
		{[]string{"--redis", "127.0.0.1:6379", "--tokens-file", "t.txt"}, true},
		{[]string{"--argon2", "--method", "createSession"}, true},
		{[]string{"--floor", "--http", "http://127.0.0.1:7401"}, true},
		{[]string{"--floor", "--sessions", "8"}, true},
		{[]string{"--floor", "-c", "8", "-d", "2s"}, false},
	} {
		fs, o := benchFlags(io.Discard)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if got := measuresSessiond(fs, o); got != tc.want {
			t.Errorf("bench %v: drives sessiond %v, want %v", tc.args, got, tc.want)
		}
	}
}

// TestBenchReportsServerCalls checks what the report says of a server's read(2) and write(2)
// calls: a count, none counted (sessiond's recvfrom and sendto), or unknown (/proc/PID/io
// unreadable).
func TestBenchReportsServerCalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  benchRun
		want string
	}{
		{"counted", benchRun{ServerCalls: 2, callsRead: true}, "2.00 read(2) and write(2) calls"},
		{"none counted", benchRun{callsRead: true}, "no read(2) or write(2) calls counted"},
		{"unknown", benchRun{}, "read(2) and write(2) calls unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.run.Target, tc.run.ServerPID, tc.run.ServerCPU = "redis", 42, 5.5
			var out bytes.Buffer
			printBenchReport(&out, benchReport{Runs: []benchRun{tc.run}})
			if !strings.Contains(out.String(), "pid 42        5.50µs of CPU, "+tc.want) {
				t.Errorf("report:\n%s\nwant %q", out.String(), tc.want)
			}
		})
	}
}

// TestBenchReportsClientCPU checks the client's use in the report: a line per target that
// has it, and the ratio side by side; none for a run without it.
func TestBenchReportsClientCPU(t *testing.T) {
	var out bytes.Buffer
	printBenchReport(&out, benchReport{Runs: []benchRun{
		{Target: "sessiond", Throughput: 100, Latency: benchLatency{P99: 10}, ClientCPU: 7.14},
		{Target: "redis", Throughput: 100, Latency: benchLatency{P99: 10}, ClientCPU: 7},
	}})
	for _, want := range []string{"client's own use a request", "sessiond    7.14µs of CPU", "redis       7.00µs of CPU", "1.02× the client CPU a request"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report:\n%s\nwant %q", out.String(), want)
		}
	}
	// The argon2 target runs in bench's process: its CPU is the hash, not a client's.
	report, _ := runBenchForTest(t, "--argon2", "-n", "2", "--warmup", "0s", "-q")
	if len(report.Runs) != 1 || report.Runs[0].Requests != 2 || report.Runs[0].ClientCPU != 0 {
		t.Errorf("argon2 runs: %+v, want one of 2 hashes without a client CPU", report.Runs)
	}
	out.Reset()
	printBenchReport(&out, benchReport{Runs: []benchRun{{Target: "argon2", Throughput: 100}}})
	if strings.Contains(out.String(), "client's own use") || strings.Contains(out.String(), "client CPU") {
		t.Errorf("report of a run without the client's use:\n%s", out.String())
	}
}

// TestBenchReportSaysWhereTheClientRan checks the machine line: the same CPUs as the servers,
// or the ones --cpus pinned the client to.
func TestBenchReportSaysWhereTheClientRan(t *testing.T) {
	for _, tc := range []struct{ cpus, want string }{
		{"", "the client runs on the same CPUs"},
		{"0", "the client runs on CPUs 0 only (--cpus)"},
	} {
		var out bytes.Buffer
		printBenchReport(&out, benchReport{Machine: benchMachine{CPUs: 2, ClientCPUs: tc.cpus}})
		if first, _, _ := strings.Cut(out.String(), "\n"); !strings.HasSuffix(first, tc.want) {
			t.Errorf("--cpus %q: %q, want it to end %q", tc.cpus, first, tc.want)
		}
	}
}
