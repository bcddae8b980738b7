package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/crypto/argon2"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/badgerstore"
)

const benchUsage = `Usage: sessiond bench [flags]
       sessiond bench --populate N --data DIR [--tokens-file FILE]

Measures a running sessiond with a closed-loop load: --connections clients, each with its own
connection, send one request, wait for its reply, and send the next (with --pipeline N, N
requests in one write, then their N replies: over TCP, for the token methods, against sessiond,
Redis and the floor alike; a request's latency is then its batch's). It prints a progress line
on stderr every second and, at the end, the throughput and the p50/p90/p99/max latency (--json
for machines). The first --warmup of each run is not counted. On Linux, for a server on this
machine (another process), it also reports the server's own CPU time and read(2) and write(2)
calls a request (sessiond's TCP connections make recvfrom(2) and sendto(2) calls instead, which
/proc does not count), from /proc of the process listening on the target's port: the client shares
the CPUs, so throughput also depends on its cost, and these figures are the server's alone
(its child processes, sessiond's password hash helpers, are counted apart),
and its scheduling group (CPU cgroup, autogroup): servers in different groups, such as a
daemonized redis-server and a sessiond started from this shell, share the CPUs with the client
differently, and the report says so. Start the servers alike to compare them. On Unix it
also reports its own CPU time a request driving each target over the network (getrusage):
where the client's CPU is as busy as the server's, it limits the throughput as much, and a
target whose protocol costs the client more (JSON-RPC's longer frames against RESP's) gets
less of it.

Targets (several may be given; they run one after another with the same settings, so their
figures come from one run and one client):
  --addr ADDR   sessiond over TCP (127.0.0.1:7400 by default); sessiond is driven unless only
                --redis, --floor or --argon2 are given and no --addr, --http, --tokens-file,
                --method or --sessions
  --http URL    sessiond over HTTP instead (POST URL)
  --redis ADDR  a redis-server: RESP "GET key" of keys it sets first, one per session the
                sessiond run uses (the same client loop, for a side-by-side figure)
  --floor       a trivial Go server, started in a process of its own, that answers every
                line with a fixed reply: the most a server on Go's net package can do on
                this machine with this client
  --argon2      the production password hash (argon2id, 19 MiB, t=2, p=1) alone, in this
                process, one per core: the ceiling of createSession/authenticate throughput

Methods (--method) against sessiond:
  pingSession       {"authToken": T}: the token check every request of an application makes
  tickle            setUserPreference [T, {"label": "TickleTime", …}]: a NetX keep-alive
  describeSessions  {"authToken": T, "authTokens": [T]}: "who am I"
  createSession     a login (one argon2id hash), then an untimed deleteSession (--logout)
  authenticate      a NetX login, then an untimed logout (--logout)

Setup: unless --tokens-file is given, bench logs in as --user (the admin; password from
--password or SESSIOND_ADMIN_PASSWORD), creates an account sessiond-bench-XXXXXXXX (a new
name each run, so runs side by side do not collide), logs it in --sessions times for the
token methods, and drops the account at the end. With --tokens-file it uses the tokens in
the file (one a line, as --populate writes them) and sets up nothing.
Logins count against the session caps (jsonActionApiDefaults): the defaults allow 50 sessions
per account and per address, enough for 49 connections doing logins.

Populate: sessiond bench --populate N --data DIR writes N live sessions of the account
sessiond-populate straight into the Badger store in DIR, while sessiond is NOT running (Badger
takes a directory lock; start the server afterwards), and their tokens to --tokens-file (mode
0600). No password is hashed per session and no RPC method can do this: only someone who can
write the data directory, who owns every session in it anyway, can. The account has no usable
password. Remove the sessions with dropAccounts ["sessiond-populate"]. Serving a million
sessions needs the session caps off (maxJsonApiSessions: 0).

Examples:
  SESSIOND_ADMIN_PASSWORD=pw sessiond bench --addr 127.0.0.1:7400 --redis 127.0.0.1:6379 --floor
  sessiond bench --method tickle -c 50 --duration 20s --json
  sessiond bench --populate 1000000 --data ./sessiond-data --tokens-file tokens.txt
  sessiond bench --tokens-file tokens.txt --redis 127.0.0.1:6379

Flags:
`

// benchAccount is the account bench creates, logs in and drops; populateAccount owns the
// sessions --populate writes. They differ so a bench run never drops populated sessions.
const (
	benchAccount    = "sessiond-bench"
	populateAccount = "sessiond-populate"
)

// benchOptions are the flags of `sessiond bench`.
type benchOptions struct {
	addr, httpURL, redisAddr string
	floor, argon2            bool
	connections              int
	method                   string
	duration, warmup         time.Duration
	timeout                  time.Duration
	requests                 int64
	sessions                 int
	tokensFile               string
	user, password           string
	jsonOut, quiet           bool
	rounds                   int
	logout                   bool
	pipeline                 int

	populate     int
	dataDir      string
	configPath   string
	populateIdle time.Duration

	serveFloor string // the floor process's listen address (hidden)
	cpus       string // the CPUs of the client (this process)
	floorCPUs  string // the CPUs of the floor process
}

func runBench(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs, o := benchFlags(stderr)
	fs.Usage = func() { fmt.Fprint(stdout, benchUsage, fs.FlagUsages()) }
	if err := fs.Parse(args); err != nil {
		return flagError(stderr, "bench", err)
	}
	return runBenchWith(fs, o, stdin, stdout, stderr)
}

// benchFlags declares bench's flags; stderr receives parse errors.
func benchFlags(stderr io.Writer) (*pflag.FlagSet, *benchOptions) {
	o := new(benchOptions)
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	fs.StringVar(&o.addr, "addr", DefaultTCPAddr, "sessiond TCP address")
	fs.StringVar(&o.httpURL, "http", "", "drive sessiond over HTTP at this URL instead of TCP, e.g. http://127.0.0.1:7401")
	fs.StringVar(&o.redisAddr, "redis", "", "also drive the redis-server at this address with GET")
	fs.BoolVar(&o.floor, "floor", false, "also drive a trivial line server (the floor), started in a process of its own")
	fs.BoolVar(&o.argon2, "argon2", false, "also measure the production password hash alone, one per core")
	fs.IntVarP(&o.connections, "connections", "c", 50, "concurrent connections (clients)")
	fs.StringVar(&o.method, "method", "pingSession", "pingSession, tickle, describeSessions, createSession or authenticate")
	fs.DurationVarP(&o.duration, "duration", "d", 10*time.Second, "how long each run is measured")
	fs.Int64VarP(&o.requests, "requests", "n", 0, "measure this many requests per run instead of a duration")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "load before measuring starts, not counted (0 by default with -n)")
	fs.IntVar(&o.rounds, "rounds", 1, "run the targets in turn this many times")
	fs.IntVar(&o.pipeline, "pipeline", 1, "requests each connection sends at a time, over TCP, before it reads their replies (as redis-benchmark -P)")
	fs.IntVar(&o.sessions, "sessions", 0, "sessions to log in for the token methods (default min(connections, 16))")
	fs.StringVar(&o.tokensFile, "tokens-file", "", "use the tokens in this file and set up nothing (with --populate: where to write them; default sessiond-bench-tokens.txt)")
	fs.BoolVar(&o.logout, "logout", true, "end each session a login method made, untimed (false: keep them; mind the session caps)")
	fs.StringVar(&o.user, "user", "admin", "admin account used for setup")
	fs.StringVar(&o.password, "password", "", "its password (default $SESSIOND_ADMIN_PASSWORD)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "give up on a request after this long")
	fs.BoolVar(&o.jsonOut, "json", false, "print the result as JSON")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress lines")
	fs.IntVar(&o.populate, "populate", 0, "write N live sessions into the store in --data (server stopped) and exit")
	fs.StringVar(&o.dataDir, "data", "", "with --populate: the server's data directory")
	fs.StringVar(&o.configPath, "config", "", "with --populate: the server's services.json (session defaults, encryption key)")
	fs.DurationVar(&o.populateIdle, "populate-idle", 24*time.Hour, "with --populate: idle timeout of the sessions written")
	fs.StringVar(&o.cpus, "cpus", "", "run the client on these CPUs only (Linux), e.g. 0, apart from the servers' (serve --cpus, taskset -c for redis-server)")
	fs.StringVar(&o.floorCPUs, "floor-cpus", "", "run the floor process on these CPUs only (Linux), e.g. the server's")
	fs.StringVar(&o.serveFloor, "serve-floor", "", "be the floor server for --floor, on this address, until stdin ends")
	_ = fs.MarkHidden("serve-floor")
	return fs, o
}

func runBenchWith(fs *pflag.FlagSet, opts *benchOptions, stdin io.Reader, stdout, stderr io.Writer) int {
	o := *opts
	usageErr := func(msg string) int { return usageError(stderr, "bench", msg) }
	if fs.NArg() > 0 {
		return usageErr(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	for _, pin := range []struct{ flag, list string }{{"--cpus", o.cpus}, {"--floor-cpus", o.floorCPUs}} {
		if pin.list == "" {
			continue
		}
		if _, err := parseCPUList(pin.list); err != nil {
			return usageErr(pin.flag + ": " + err.Error())
		}
	}
	if o.cpus != "" {
		// The client's threads are pinned from here on. The floor process, started later, pins
		// itself (--cpus): to --floor-cpus, or back to the CPUs bench started with rather than
		// the client's.
		before, _, err := pinTo(o.cpus)
		if err != nil {
			fmt.Fprintln(stderr, "sessiond bench: --cpus:", err)
			return 1
		}
		if os.Getenv("GOMAXPROCS") == "" {
			runtime.SetDefaultGOMAXPROCS() // as serve --cpus: one processor a CPU left
		}
		if o.floorCPUs == "" && o.serveFloor == "" {
			o.floorCPUs = formatCPUList(before)
		}
	}
	if o.serveFloor != "" {
		if err := serveFloor(o.serveFloor, stdin, stdout); err != nil {
			fmt.Fprintln(stderr, "sessiond bench: floor:", err)
			return 1
		}
		return 0
	}
	if fs.Changed("populate") {
		if o.populate < 1 {
			return usageErr("--populate must be positive")
		}
		if o.dataDir == "" {
			return usageErr("--populate needs --data, the data directory of the (stopped) server")
		}
		if o.populateIdle < time.Second || o.populateIdle > engine.MaxTimeoutSeconds*time.Second {
			return usageErr(fmt.Sprintf("--populate-idle must be 1s to %ds", engine.MaxTimeoutSeconds))
		}
		if o.tokensFile == "" {
			o.tokensFile = "sessiond-bench-tokens.txt"
		}
		if err := populateStore(o, stderr); err != nil {
			fmt.Fprintln(stderr, "sessiond bench:", err)
			return 1
		}
		return 0
	}
	if !fs.Changed("password") {
		o.password = os.Getenv("SESSIOND_ADMIN_PASSWORD")
	}
	if fs.Changed("requests") && !fs.Changed("warmup") {
		o.warmup = 0
	}
	switch {
	case o.connections < 1:
		return usageErr("--connections must be at least 1")
	case o.requests < 0, fs.Changed("requests") && o.requests == 0:
		return usageErr("--requests must be positive")
	case o.requests == 0 && o.duration <= 0:
		return usageErr("--duration must be positive")
	case o.warmup < 0 || o.timeout <= 0:
		return usageErr("--warmup must not be negative and --timeout must be positive")
	case o.rounds < 1:
		return usageErr("--rounds must be at least 1")
	case o.pipeline < 1 || o.pipeline > 1000:
		return usageErr("--pipeline must be 1 to 1000")
	case o.pipeline > 1 && o.httpURL != "":
		return usageErr("--pipeline works over TCP, not with --http")
	case fs.Changed("addr") && fs.Changed("http"):
		return usageErr("give --addr or --http, not both")
	case o.sessions < 0:
		return usageErr("--sessions must not be negative")
	}
	if m, ok := benchMethods[o.method]; !ok {
		return usageErr(fmt.Sprintf("unknown --method %q", o.method))
	} else if o.pipeline > 1 && !m.token {
		return usageErr("--pipeline works with the token methods (pingSession, tickle, describeSessions), not with logins")
	}
	if o.sessions == 0 {
		o.sessions = min(o.connections, 16)
	}
	if o.httpURL != "" {
		target, err := httpTarget(o.httpURL)
		if err != nil {
			return usageErr(err.Error())
		}
		o.httpURL = target
	}
	withSessiond := measuresSessiond(fs, &o)

	var targets []*benchTarget
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	keys := o.sessions
	if withSessiond {
		t, cleanup, err := sessiondTarget(o, stderr)
		if cleanup != nil {
			cleanups = append(cleanups, cleanup)
		}
		if err != nil {
			fmt.Fprintln(stderr, "sessiond bench:", err)
			return 1
		}
		targets = append(targets, t)
		keys = t.sessions
	}
	if o.redisAddr != "" {
		t, cleanup, err := redisTarget(o, keys)
		if cleanup != nil {
			cleanups = append(cleanups, cleanup)
		}
		if err != nil {
			fmt.Fprintln(stderr, "sessiond bench:", err)
			return 1
		}
		targets = append(targets, t)
	}
	if o.floor {
		t, cleanup, err := floorTarget(o)
		if err != nil {
			fmt.Fprintln(stderr, "sessiond bench:", err)
			return 1
		}
		cleanups = append(cleanups, cleanup)
		targets = append(targets, t)
	}
	if o.argon2 {
		targets = append(targets, argon2Target())
	}

	for _, t := range targets {
		if t.pid == 0 {
			t.pid = serverProcess(t)
		}
		if t.pid != 0 {
			t.group = schedGroup("/proc", "/sys/fs/cgroup", strconv.Itoa(t.pid))
		}
	}
	report := benchReport{Machine: thisMachine()}
	report.Machine.ClientCPUs = o.cpus
	for round := 0; round < o.rounds; round++ {
		for _, t := range targets {
			run, err := runLoad(t, o, stderr)
			if err != nil {
				fmt.Fprintf(stderr, "sessiond bench: %s: %v\n", t.name, err)
				return 1
			}
			report.Runs = append(report.Runs, run)
		}
	}
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			fmt.Fprintln(stderr, "sessiond bench:", err)
			return 1
		}
	} else {
		printBenchReport(stdout, report)
	}
	return 0
}

// ---------------------------------------------------------------------------------------
// Results.

// benchReport is the result of one bench invocation: the machine and every run.
type benchReport struct {
	Machine benchMachine `json:"machine"`
	Runs    []benchRun   `json:"runs"`
}

// benchMachine describes where the figures were measured. The client shares it.
type benchMachine struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpuModel"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	GoVersion  string `json:"goVersion"`
	Sessiond   string `json:"sessiondVersion"`
	// SchedGroup is the client's scheduling group (Linux): see ServerGroup.
	SchedGroup string `json:"schedGroup,omitempty"`
	// ClientCPUs are the CPUs the client was pinned to (--cpus); empty, it ran on all.
	ClientCPUs string `json:"clientCpus,omitempty"`
}

// benchRun is one measured run of one target.
type benchRun struct {
	Target      string `json:"target"`    // sessiond, redis, floor or argon2
	Transport   string `json:"transport"` // tcp, http, resp or in-process
	Address     string `json:"address,omitempty"`
	Method      string `json:"method"`
	Connections int    `json:"connections"`
	// Pipeline is how many requests each connection sent at a time (--pipeline), when more
	// than one; each request's latency is its batch's round trip.
	Pipeline int `json:"pipeline,omitempty"`
	// Sessions is how many distinct tokens (Redis: keys) the requests used.
	Sessions int `json:"sessions,omitempty"`
	// Requests were measured (warm-up excluded); Errors of them got an error reply.
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Seconds  float64 `json:"seconds"`
	// Throughput is measured requests per second.
	Throughput float64      `json:"throughput"`
	Latency    benchLatency `json:"latencyMicroseconds"`
	// ServerPID is the process found listening on Address (Linux, a server on this machine,
	// not bench itself); the two figures after it are its own use over the measured
	// window, from /proc, divided by the requests answered meanwhile. ServerCalls counts
	// read(2) and write(2) calls, the ones /proc/PID/io counts: sessiond's TCP connections
	// make recvfrom(2) and sendto(2) calls instead, which it does not. It is left out when
	// /proc/PID/io cannot be read, or counted none.
	ServerPID   int     `json:"serverPid,omitempty"`
	ServerCPU   float64 `json:"serverCpuMicrosecondsPerRequest,omitempty"`
	ServerCalls float64 `json:"serverReadWriteCallsPerRequest,omitempty"`
	callsRead   bool    // /proc/PID/io was read: a ServerCalls of 0 is none counted, not unknown
	// ServerChildrenCPU is the CPU of the server's child processes a request, over the same
	// window: sessiond's password hash helpers. Left out when it is 0.
	ServerChildrenCPU float64 `json:"serverChildrenCpuMicrosecondsPerRequest,omitempty"`
	// ServerGroup is the server's scheduling group: its CPU cgroup and, when the kernel
	// has autogroup on, its autogroup (schedGroup). Servers in different groups are not
	// driven the same way, and the report says so.
	ServerGroup string `json:"serverSchedGroup,omitempty"`
	// ClientCPU is bench's own CPU time (all its threads, not its child processes) over the
	// measured window, from getrusage(2), divided by the requests answered meanwhile: what
	// driving this target cost the client, which shares the CPUs with the server. Left out
	// for a target in bench's own process (argon2), and where getrusage is missing (Windows).
	ClientCPU float64 `json:"clientCpuMicrosecondsPerRequest,omitempty"`
}

// benchLatency is the latency distribution of a run in microseconds; percentiles are exact
// to within 1/64 (1.6 %), never below the true value.
type benchLatency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

func thisMachine() benchMachine {
	m := benchMachine{
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), OS: runtime.GOOS,
		Arch: runtime.GOARCH, GoVersion: runtime.Version(), Sessiond: versionString(),
		SchedGroup: schedGroup("/proc", "/sys/fs/cgroup", "self"),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if name, value, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				m.CPUModel = strings.TrimSpace(value)
				break
			}
		}
	}
	return m
}

func printBenchReport(w io.Writer, r benchReport) {
	m := r.Machine
	model := m.CPUModel
	if model == "" {
		model = "unknown CPU"
	}
	client := "the client runs on the same CPUs"
	if m.ClientCPUs != "" {
		client = "the client runs on CPUs " + m.ClientCPUs + " only (--cpus)"
	}
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s/%s, %s; %s\n\n", m.CPUs, model, m.OS, m.Arch, m.GoVersion, client)
	fmt.Fprintf(w, "%-9s %-10s %-17s %5s %8s %11s %7s %10s %9s %9s %9s %9s\n",
		"target", "transport", "method", "conns", "sessions", "requests", "errors", "req/s", "p50", "p90", "p99", "max")
	for _, run := range r.Runs {
		fmt.Fprintf(w, "%-9s %-10s %-17s %5d %8d %11s %7d %10s %9s %9s %9s %9s\n",
			run.Target, run.Transport, run.Method, run.Connections, run.Sessions,
			groupDigits(run.Requests), run.Errors, groupDigits(int64(math.Round(run.Throughput))),
			micros(run.Latency.P50), micros(run.Latency.P90), micros(run.Latency.P99), micros(run.Latency.Max))
	}
	for _, run := range r.Runs {
		if run.Pipeline > 1 {
			fmt.Fprintf(w, "(--pipeline %d: each connection sent %d requests at a time; a request's latency is its batch's)\n", run.Pipeline, run.Pipeline)
			break
		}
	}
	var usage []benchRun
	for _, run := range r.Runs {
		if run.ServerPID != 0 {
			usage = append(usage, run)
		}
	}
	if len(usage) > 0 {
		fmt.Fprintln(w, "\nserver's own use a request (from /proc, the process listening on the address):")
		for _, run := range usage {
			calls := "read(2) and write(2) calls unknown"
			if run.ServerCalls > 0 {
				calls = fmt.Sprintf("%.2f read(2) and write(2) calls", run.ServerCalls)
			} else if run.callsRead {
				calls = "no read(2) or write(2) calls counted"
			}
			children, group := "", ""
			if run.ServerChildrenCPU > 0 {
				children = fmt.Sprintf(" (and %.2fµs in its child processes)", run.ServerChildrenCPU)
			}
			if run.ServerGroup != "" {
				group = "; scheduling group " + run.ServerGroup
			}
			fmt.Fprintf(w, "%-9s pid %-7d %6.2fµs of CPU%s, %s%s\n", run.Target, run.ServerPID, run.ServerCPU, children, calls, group)
		}
		printGroupNote(w, m.SchedGroup, usage)
	}
	header := false
	for _, run := range r.Runs {
		if run.ClientCPU > 0 {
			if !header {
				fmt.Fprintln(w, "\nclient's own use a request (getrusage, this bench process, driving each target):")
				header = true
			}
			fmt.Fprintf(w, "%-9s %6.2fµs of CPU\n", run.Target, run.ClientCPU)
		}
	}
	// Side by side: sessiond against each other target, over all rounds.
	type sum struct{ throughput, p99, cpu, client mean }
	sums := map[string]*sum{}
	var order []string
	for _, run := range r.Runs {
		s := sums[run.Target]
		if s == nil {
			s = &sum{}
			sums[run.Target] = s
			order = append(order, run.Target)
		}
		s.throughput.add(run.Throughput)
		s.p99.add(run.Latency.P99)
		s.cpu.add(run.ServerCPU)
		s.client.add(run.ClientCPU)
	}
	if base := sums["sessiond"]; base != nil && len(order) > 1 {
		fmt.Fprintln(w)
		for _, name := range order {
			other := sums[name]
			throughput, ok1 := base.throughput.over(other.throughput)
			p99, ok2 := base.p99.over(other.p99)
			if name == "sessiond" || name == "argon2" || !ok1 || !ok2 {
				continue
			}
			fmt.Fprintf(w, "sessiond / %s: %.2f× the throughput, %.2f× the p99 latency", name, throughput, p99)
			if cpu, ok := base.cpu.over(other.cpu); ok {
				fmt.Fprintf(w, ", %.2f× the server CPU a request", cpu)
			}
			if client, ok := base.client.over(other.client); ok {
				fmt.Fprintf(w, ", %.2f× the client CPU a request", client)
			}
			fmt.Fprintln(w)
		}
	}
}

// mean is the mean of the positive figures added (a figure not measured is 0).
type mean struct {
	total float64
	n     int
}

func (m *mean) add(x float64) {
	if x > 0 {
		m.total += x
		m.n++
	}
}

// over is m's mean over o's, when both have one.
func (m mean) over(o mean) (float64, bool) {
	if m.n == 0 || o.n == 0 || o.total == 0 {
		return 0, false
	}
	return (m.total / float64(m.n)) / (o.total / float64(o.n)), true
}

// printGroupNote warns when the servers measured sit in different scheduling groups: the
// kernel then shares the CPUs between the groups first, and each server takes turns with
// the client differently. On the 2-CPU machine of the README, a redis-server started from
// the client's shell answered 47,850-60,065 GET/s where a daemonized one (its own session,
// so its own autogroup) answered 57,270-73,108 in the same minutes.
func printGroupNote(w io.Writer, client string, runs []benchRun) {
	var groups []string
	for _, run := range runs {
		if run.ServerGroup != "" && !slices.Contains(groups, run.ServerGroup) {
			groups = append(groups, run.ServerGroup)
		}
	}
	if len(groups) < 2 {
		return
	}
	fmt.Fprintln(w, "note: these servers are in different scheduling groups (the client is in "+cmp.Or(client, "an unknown one")+"),")
	fmt.Fprintln(w, "  so the kernel shares the CPUs between them and the client differently; compare servers")
	fmt.Fprintln(w, "  started the same way: all from one shell, or each in a session of its own (setsid)")
}

// micros formats a latency given in microseconds.
func micros(us float64) string {
	switch {
	case us >= 10_000:
		return fmt.Sprintf("%.0fms", us/1000)
	case us >= 1000:
		return fmt.Sprintf("%.2fms", us/1000)
	default:
		return fmt.Sprintf("%.0fµs", us)
	}
}

// groupDigits writes n with thousands separators: 1234567 → "1,234,567".
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// ---------------------------------------------------------------------------------------
// Latency histogram: log-linear buckets, HDR-style. Values below 128 ns have a bucket each;
// above, every power of two is cut into 64 buckets, so a bucket is at most 1/64 wide.

const (
	histSubBits = 6
	histLinear  = 2 << histSubBits // 128 values recorded exactly
	histBuckets = histLinear + (63-histSubBits-1)*(1<<histSubBits)
)

type histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	sum, max uint64
}

func histIndex(v uint64) int {
	if v < histLinear {
		return int(v)
	}
	shift := bits.Len64(v) - (histSubBits + 1)
	return histLinear + (shift-1)<<histSubBits + int(v>>shift) - 1<<histSubBits
}

// histUpper is the largest value of bucket i.
func histUpper(i int) uint64 {
	if i < histLinear {
		return uint64(i)
	}
	shift := (i-histLinear)>>histSubBits + 1
	m := uint64((i-histLinear)&(1<<histSubBits-1) + 1<<histSubBits)
	return (m+1)<<shift - 1
}

func (h *histogram) record(d time.Duration) { h.recordN(d, 1) }

// recordN records n values of d: the requests of one pipelined batch.
func (h *histogram) recordN(d time.Duration, n uint64) {
	v := uint64(max(d, 0))
	if v > math.MaxInt64 {
		v = math.MaxInt64
	}
	h.counts[histIndex(v)] += n
	h.n += n
	h.sum += v * n
	h.max = max(h.max, v)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the smallest bucket bound with at least q of the values at or below it.
func (h *histogram) quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(histUpper(i), h.max)
		}
	}
	return h.max
}

func (h *histogram) latency() benchLatency {
	us := func(ns uint64) float64 { return math.Round(float64(ns)/100) / 10 }
	l := benchLatency{P50: us(h.quantile(0.50)), P90: us(h.quantile(0.90)), P99: us(h.quantile(0.99)), Max: us(h.max)}
	if h.n > 0 {
		l.Mean = us(h.sum / h.n)
	}
	return l
}

// ---------------------------------------------------------------------------------------
// The closed loop.

// benchTarget is one thing to measure.
type benchTarget struct {
	name      string
	transport string
	address   string
	method    string
	sessions  int
	// workers overrides --connections (argon2: one per core).
	workers int
	// pid is the server's process, or 0 when it cannot be inspected; group is its
	// scheduling group (schedGroup).
	pid   int
	group string
	// open returns the client of worker i, connected.
	open func(i int) (benchClient, error)
}

// benchClient is one connection of the closed loop.
type benchClient interface {
	// call sends one request and reads its reply; ok is false for an error reply. An error
	// means the connection is unusable and ends the run.
	call() (ok bool, err error)
	// after runs after each call, untimed: the logout that follows a login.
	after() error
	close()
}

// pipeliner is a benchClient that can send n requests at once and then read their n
// replies (--pipeline): the line and Redis clients. failed counts error replies.
type pipeliner interface {
	callMany(n int) (failed int, err error)
}

// benchWorker is one client's tally. Progress fields are read by the progress printer.
type benchWorker struct {
	hist     histogram
	counted  int64
	errors   int64
	lastEnd  time.Time
	done     atomic.Int64 // replies, warm-up included
	doneErrs atomic.Int64
	_        [64]byte // keep workers' counters on their own cache lines
}

// runLoad runs one measured run of t.
func runLoad(t *benchTarget, o benchOptions, stderr io.Writer) (benchRun, error) {
	n := o.connections
	if t.workers > 0 {
		n = t.workers
	}
	clients := make([]benchClient, n)
	closeAll := sync.OnceFunc(func() {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
	})
	defer closeAll()
	for i := range clients {
		c, err := t.open(i)
		if err != nil {
			return benchRun{}, err
		}
		clients[i] = c
	}
	workers := make([]benchWorker, n)
	k := 1 // requests a call: --pipeline, for the clients that pipeline
	if _, ok := clients[0].(pipeliner); ok && o.pipeline > 1 {
		k = o.pipeline
	}
	var (
		stop     atomic.Bool
		issued   atomic.Int64
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		stop.Store(true)
		closeAll()
	}
	start := time.Now()
	t0 := start.Add(o.warmup)
	t1 := t0.Add(o.duration)
	countMode := o.requests > 0
	for i := range clients {
		wg.Add(1)
		go func(c benchClient, w *benchWorker) {
			defer wg.Done()
			p, _ := c.(pipeliner) // set when k > 1
			for !stop.Load() {
				begin := time.Now()
				measured := !begin.Before(t0)
				if !countMode && !begin.Before(t1) {
					return
				}
				if countMode && measured && issued.Add(int64(k))-int64(k) >= o.requests {
					return
				}
				var failed int
				var err error
				if k > 1 {
					failed, err = p.callMany(k)
				} else {
					var ok bool
					if ok, err = c.call(); !ok {
						failed = 1
					}
				}
				end := time.Now()
				if err != nil {
					if !stop.Load() {
						fail(err)
					}
					return
				}
				w.done.Add(int64(k))
				w.doneErrs.Add(int64(failed))
				if measured && (countMode || !end.After(t1)) {
					// Each request of a batch took the batch's round trip.
					w.hist.recordN(end.Sub(begin), uint64(k))
					w.counted += int64(k)
					w.errors += int64(failed)
					w.lastEnd = end
				}
				if err := c.after(); err != nil {
					if !stop.Load() {
						fail(err)
					}
					return
				}
			}
		}(clients[i], &workers[i])
	}
	// The server's usage and bench's own are sampled when measuring starts and once the
	// clients stop.
	var (
		before, after             serverUsage
		clientBefore, clientAfter time.Duration
		clientOK                  bool
		doneBefore, answered      int64
		sampled                   = make(chan struct{})
	)
	go func() {
		time.Sleep(time.Until(t0))
		if t.pid != 0 {
			before = readServerUsage("/proc", t.pid)
		}
		clientBefore, clientOK = ownCPU()
		doneBefore = doneCount(workers)
		close(sampled)
	}()
	finished := make(chan struct{})
	var progress sync.WaitGroup
	if !o.quiet {
		progress.Go(func() { printProgress(stderr, t, workers, start, t0, finished) })
	}
	wg.Wait()
	if firstErr == nil { // the clients stopped after t0 (measured), so the first sample is taken
		<-sampled
		var ok bool
		clientAfter, ok = ownCPU()
		clientOK = clientOK && ok
		answered = doneCount(workers) - doneBefore
		if t.pid != 0 {
			after = readServerUsage("/proc", t.pid)
		}
	}
	close(finished)
	progress.Wait()
	if firstErr != nil {
		return benchRun{}, firstErr
	}

	var total histogram
	run := benchRun{Target: t.name, Transport: t.transport, Address: t.address, Method: t.method,
		Connections: n, Sessions: t.sessions}
	if k > 1 {
		run.Pipeline = k
	}
	last := t0
	for i := range workers {
		w := &workers[i]
		total.merge(&w.hist)
		run.Requests += w.counted
		run.Errors += w.errors
		if w.lastEnd.After(last) {
			last = w.lastEnd
		}
	}
	window := o.duration
	if countMode {
		window = last.Sub(t0)
	}
	run.Seconds = math.Round(window.Seconds()*1e6) / 1e6
	if window > 0 {
		run.Throughput = math.Round(float64(run.Requests)/window.Seconds()*10) / 10
	}
	run.Latency = total.latency()
	if clientOK && answered > 0 && t.transport != "in-process" {
		run.ClientCPU = microsEach(clientAfter-clientBefore, answered)
	}
	if t.pid != 0 && before.sample && after.sample && answered > 0 {
		run.ServerPID = t.pid
		run.ServerCPU = microsEach(after.cpu-before.cpu, answered)
		if before.calls >= 0 && after.calls >= 0 {
			run.ServerCalls = hundredths(float64(after.calls-before.calls) / float64(answered))
			run.callsRead = true
		}
		run.ServerGroup = t.group
		run.ServerChildrenCPU = microsEach(after.children-before.children, answered)
	}
	if run.Errors > 0 {
		fmt.Fprintf(stderr, "sessiond bench: %s: %d of %d replies were errors\n", t.name, run.Errors, run.Requests)
	}
	return run, nil
}

// microsEach is d shared among n requests, in microseconds rounded to hundredths.
func microsEach(d time.Duration, n int64) float64 {
	return hundredths(float64(d.Nanoseconds()) / 1e3 / float64(n))
}

// hundredths rounds x to two decimals, as the report's per-request figures are.
func hundredths(x float64) float64 { return math.Round(x*100) / 100 }

// doneCount is how many requests the workers have had answered so far.
func doneCount(workers []benchWorker) int64 {
	var done int64
	for i := range workers {
		done += workers[i].done.Load()
	}
	return done
}

// serverProcess returns the process serving t, if bench can inspect it: a listener on this
// machine, and not bench itself (an in-process server's CPU would include the client's).
func serverProcess(t *benchTarget) int {
	addr := t.address // host:port, or the URL of an HTTP target
	if u, err := url.Parse(addr); err == nil && u.Scheme != "" && u.Host != "" {
		addr = u.Host
	}
	if pid := listeningProcess("/proc", addr); pid != os.Getpid() {
		return pid
	}
	return 0
}

// printProgress prints one line a second until finished is closed.
func printProgress(w io.Writer, t *benchTarget, workers []benchWorker, start, t0 time.Time, finished chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastDone int64
	lastAt := start
	for {
		select {
		case <-finished:
			return
		case now := <-tick.C:
			var errs int64
			for i := range workers {
				errs += workers[i].doneErrs.Load()
			}
			done := doneCount(workers)
			phase := "measuring"
			if now.Before(t0) {
				phase = "warm-up"
			}
			rate := float64(done-lastDone) / now.Sub(lastAt).Seconds()
			fmt.Fprintf(w, "%s %s %s: %3.0fs %s, %s req/s, %s replies, %d errors\n",
				t.name, t.transport, t.method, now.Sub(start).Seconds(), phase,
				groupDigits(int64(rate)), groupDigits(done), errs)
			lastDone, lastAt = done, now
		}
	}
}

// ---------------------------------------------------------------------------------------
// sessiond: requests, setup and clients.

// benchMethod is how one --method is sent and checked.
type benchMethod struct {
	// name is the JSON-RPC method, for reports.
	name string
	// token says the method needs a session token; otherwise it logs in.
	token bool
	// request appends one request (without the line ending).
	request func(dst []byte, id int64, token, user, password string) []byte
	// okMark is in every successful reply and in no error reply.
	okMark string
	// logout, for a login method, appends the request that ends the session it made.
	logout func(dst []byte, id int64, token string) []byte
	// tokenAfter marks the token in a successful reply of a login method.
	tokenAfter string
}

func appendRequestHead(dst []byte, id int64, method string) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = strconv.AppendInt(dst, id, 10)
	dst = append(dst, `,"method":"`...)
	dst = append(dst, method...)
	return append(dst, `","params":`...)
}

// appendJSONString appends s quoted; bench's tokens, names and passwords need no escapes,
// but a password given with --password might.
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s)
	return append(dst, b...)
}

var benchMethods = map[string]benchMethod{
	"pingSession": {
		name: "pingSession", token: true, okMark: `"result":{}`,
		request: func(dst []byte, id int64, token, _, _ string) []byte {
			dst = appendRequestHead(dst, id, "pingSession")
			dst = append(dst, `{"authToken":"`...)
			dst = append(dst, token...)
			return append(dst, `"}}`...)
		},
	},
	"tickle": {
		name: "setUserPreference", token: true, okMark: `"result":true`,
		request: func(dst []byte, id int64, token, _, _ string) []byte {
			dst = appendRequestHead(dst, id, "setUserPreference")
			dst = append(dst, `["`...)
			dst = append(dst, token...)
			return append(dst, `",{"label":"TickleTime","value":"sessiond bench"}]}`...)
		},
	},
	"describeSessions": {
		name: "describeSessions", token: true, okMark: `"result":{"sessions":[{`,
		request: func(dst []byte, id int64, token, _, _ string) []byte {
			dst = appendRequestHead(dst, id, "describeSessions")
			dst = append(dst, `{"authToken":"`...)
			dst = append(dst, token...)
			dst = append(dst, `","authTokens":["`...)
			dst = append(dst, token...)
			return append(dst, `"]}}`...)
		},
	},
	"createSession": {
		name: "createSession", okMark: `"authToken":"`, tokenAfter: `"authToken":"`,
		request: func(dst []byte, id int64, _, user, password string) []byte {
			dst = appendRequestHead(dst, id, "createSession")
			dst = append(dst, `{"username":`...)
			dst = appendJSONString(dst, user)
			dst = append(dst, `,"password":`...)
			dst = appendJSONString(dst, password)
			return append(dst, `}}`...)
		},
		logout: func(dst []byte, id int64, token string) []byte {
			dst = appendRequestHead(dst, id, "deleteSession")
			dst = append(dst, `{"authToken":"`...)
			dst = append(dst, token...)
			return append(dst, `"}}`...)
		},
	},
	"authenticate": {
		name: "authenticate", okMark: `"result":"sd`, tokenAfter: `"result":"`,
		request: func(dst []byte, id int64, _, user, password string) []byte {
			dst = appendRequestHead(dst, id, "authenticate")
			dst = append(dst, '[')
			dst = appendJSONString(dst, user)
			dst = append(dst, ',')
			dst = appendJSONString(dst, password)
			return append(dst, `]}`...)
		},
		logout: func(dst []byte, id int64, token string) []byte {
			dst = appendRequestHead(dst, id, "logout")
			dst = append(dst, `["`...)
			dst = append(dst, token...)
			return append(dst, `"]}`...)
		},
	},
}

// tokenIn returns the token that follows mark in a reply, or "".
func tokenIn(reply []byte, mark string) string {
	i := bytes.Index(reply, []byte(mark))
	if i < 0 {
		return ""
	}
	rest := reply[i+len(mark):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// benchRequests builds the requests of one client: the token methods rotate over tokens,
// starting at an offset of their own.
type benchRequests struct {
	m              benchMethod
	tokens         []string
	next           int
	user, password string
	id             int64
	buf            []byte
	pendingLogout  string
	keep           bool // do not log out after a login
}

func (r *benchRequests) request() []byte {
	r.id++
	token := ""
	if len(r.tokens) > 0 {
		token = r.tokens[r.next]
		r.next++
		if r.next == len(r.tokens) {
			r.next = 0
		}
	}
	r.buf = r.m.request(r.buf[:0], r.id, token, r.user, r.password)
	return r.buf
}

// check says whether a reply succeeded and, after a login, remembers the token to log out.
func (r *benchRequests) check(reply []byte) bool {
	ok := bytes.Contains(reply, []byte(r.m.okMark)) && !bytes.Contains(reply, []byte(`"error":{`))
	if ok && r.m.logout != nil && !r.keep {
		r.pendingLogout = tokenIn(reply, r.m.tokenAfter)
	}
	return ok
}

// logoutRequest returns the untimed request that follows a login, or nil.
func (r *benchRequests) logoutRequest() []byte {
	if r.pendingLogout == "" {
		return nil
	}
	r.id++
	r.buf = r.m.logout(r.buf[:0], r.id, r.pendingLogout)
	r.pendingLogout = ""
	return r.buf
}

// benchLineClient speaks newline-delimited JSON-RPC over TCP: to sessiond and to the floor server.
type benchLineClient struct {
	conn     net.Conn
	rd       *bufio.Reader
	batch    []byte // callMany's requests
	reqs     *benchRequests
	timeout  time.Duration
	deadline time.Time
}

func dialBenchLine(addr string, reqs *benchRequests, timeout time.Duration) (*benchLineClient, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to %s: %v", addr, unwrapOpError(err))
	}
	return &benchLineClient{conn: conn, rd: bufio.NewReaderSize(conn, 64<<10), reqs: reqs, timeout: timeout}, nil
}

// roundTrip writes one line and reads one reply line.
func (c *benchLineClient) roundTrip(request []byte) ([]byte, error) {
	if err := c.send(append(request, '\n')); err != nil {
		return nil, err
	}
	return c.reply()
}

// callMany sends n requests in one write and reads their n replies (--pipeline).
func (c *benchLineClient) callMany(n int) (failed int, err error) {
	c.batch = c.batch[:0]
	for range n {
		c.batch = append(c.batch, c.reqs.request()...)
		c.batch = append(c.batch, '\n')
	}
	if err := c.send(c.batch); err != nil {
		return 0, err
	}
	for range n {
		reply, err := c.reply()
		if err != nil {
			return 0, err
		}
		if !c.reqs.check(reply) {
			failed++
		}
	}
	return failed, nil
}

// send writes b, moving the connection's deadline when a quarter of it is used up (moving
// it costs a timer update).
func (c *benchLineClient) send(b []byte) error {
	if now := time.Now(); c.deadline.Sub(now) < c.timeout*3/4 {
		c.deadline = now.Add(c.timeout)
		_ = c.conn.SetDeadline(c.deadline)
	}
	_, err := c.conn.Write(b)
	return err
}

// reply reads one reply line.
func (c *benchLineClient) reply() ([]byte, error) {
	line, err := c.rd.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// A long reply (describeSessions of many sessions): read the rest.
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = c.rd.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	return line, err
}

func (c *benchLineClient) call() (bool, error) {
	reply, err := c.roundTrip(c.reqs.request())
	if err != nil {
		return false, err
	}
	return c.reqs.check(reply), nil
}

func (c *benchLineClient) after() error {
	if req := c.reqs.logoutRequest(); req != nil {
		_, err := c.roundTrip(req)
		return err
	}
	return nil
}

func (c *benchLineClient) close() { _ = c.conn.Close() }

// httpBenchClient POSTs each request on a kept-alive connection of its own.
type httpBenchClient struct {
	client *http.Client
	url    string
	reqs   *benchRequests
	body   bytes.Buffer
}

func (c *httpBenchClient) roundTrip(request []byte) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(request))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	c.body.Reset()
	if _, err := c.body.ReadFrom(resp.Body); err != nil {
		return nil, err
	}
	return c.body.Bytes(), nil
}

func (c *httpBenchClient) call() (bool, error) {
	reply, err := c.roundTrip(c.reqs.request())
	if err != nil {
		return false, err
	}
	return c.reqs.check(reply), nil
}

func (c *httpBenchClient) after() error {
	if req := c.reqs.logoutRequest(); req != nil {
		_, err := c.roundTrip(req)
		return err
	}
	return nil
}

func (c *httpBenchClient) close() { c.client.CloseIdleConnections() }

// measuresSessiond reports whether a bench run drives sessiond: always, unless only other
// targets (--redis, --floor, --argon2) were asked for and nothing names sessiond (its address,
// its tokens or a method).
func measuresSessiond(fs *pflag.FlagSet, o *benchOptions) bool {
	for _, name := range []string{"addr", "http", "tokens-file", "method", "sessions"} {
		if fs.Changed(name) {
			return true
		}
	}
	return o.redisAddr == "" && !o.floor && !o.argon2
}

// sessiondTarget prepares the sessiond target: its tokens (from --tokens-file, or logged in)
// and its clients. The cleanup it returns drops what setup created.
func sessiondTarget(o benchOptions, stderr io.Writer) (*benchTarget, func(), error) {
	m := benchMethods[o.method]
	t := &benchTarget{name: "sessiond", transport: "tcp", address: o.addr, method: m.name}
	if o.httpURL != "" {
		t.transport, t.address = "http", o.httpURL
	}
	setup := &setupClient{addr: o.addr, httpURL: o.httpURL, timeout: max(o.timeout, time.Minute)}
	var (
		tokens         []string
		user, password string
		cleanup        func()
	)
	switch {
	case o.tokensFile != "" && m.token:
		var err error
		if tokens, err = readTokens(o.tokensFile); err != nil {
			return nil, nil, err
		}
	default:
		if o.password == "" {
			setup.close()
			return nil, nil, fmt.Errorf("setting up needs the password of %q: give --password or SESSIOND_ADMIN_PASSWORD (or --tokens-file)", o.user)
		}
		var err error
		user, password, err = setupBenchAccount(setup, o.user, o.password)
		account := user
		cleanup = func() {
			if err := dropBenchAccount(setup, o.user, o.password, account); err != nil {
				fmt.Fprintln(stderr, "sessiond bench: cleaning up:", err)
			}
			setup.close()
		}
		if err != nil {
			return nil, cleanup, err
		}
		if m.token {
			if tokens, err = loginMany(setup, user, password, o.sessions); err != nil {
				return nil, cleanup, err
			}
		}
	}
	if cleanup == nil {
		setup.close()
	}
	t.sessions = len(tokens)
	var transport *http.Transport
	if o.httpURL != "" {
		transport = &http.Transport{
			MaxIdleConns: o.connections, MaxIdleConnsPerHost: o.connections, MaxConnsPerHost: o.connections,
			DisableCompression: true, IdleConnTimeout: time.Minute,
		}
	}
	t.open = func(i int) (benchClient, error) {
		reqs := &benchRequests{m: m, tokens: tokens, user: user, password: password, keep: !o.logout}
		if len(tokens) > 0 {
			reqs.next = i * len(tokens) / o.connections % len(tokens)
		}
		if transport != nil {
			return &httpBenchClient{client: &http.Client{Transport: transport, Timeout: o.timeout}, url: o.httpURL, reqs: reqs}, nil
		}
		return dialBenchLine(o.addr, reqs, o.timeout)
	}
	return t, cleanup, nil
}

// readTokens reads one token a line.
func readTokens(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--tokens-file: %w", err)
	}
	var tokens []string
	for line := range strings.Lines(string(b)) {
		if tok := strings.TrimSpace(line); tok != "" {
			tokens = append(tokens, tok)
		}
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("--tokens-file %s holds no tokens", path)
	}
	return tokens, nil
}

// setupClient makes the setup calls, over the transport being measured.
type setupClient struct {
	addr, httpURL string
	timeout       time.Duration
	conn          net.Conn
	rd            *bufio.Reader
	id            int
}

// rpcFailure is an error reply to a setup call.
type rpcFailure struct {
	Code    int64           `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

func (e *rpcFailure) Error() string {
	return fmt.Sprintf("error %d: %s %s", e.Code, e.Message, e.Data)
}

func (s *setupClient) call(method string, params any) (json.RawMessage, error) {
	s.id++
	request, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": s.id, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	var reply []byte
	if s.httpURL != "" {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		defer cancel()
		reply, err = callHTTP(ctx, s.httpURL, "", request, nil)
	} else {
		reply, err = s.callTCP(request)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	var decoded struct {
		Result json.RawMessage `json:"result"`
		Error  *rpcFailure     `json:"error"`
	}
	if err := json.Unmarshal(reply, &decoded); err != nil {
		return nil, fmt.Errorf("%s: malformed reply: %v", method, err)
	}
	if decoded.Error != nil {
		return nil, fmt.Errorf("%s: %w", method, decoded.Error)
	}
	return decoded.Result, nil
}

func (s *setupClient) callTCP(request []byte) ([]byte, error) {
	if s.conn == nil {
		conn, err := net.DialTimeout("tcp", s.addr, s.timeout)
		if err != nil {
			return nil, fmt.Errorf("cannot connect to %s: %v (is sessiond serve running there?)", s.addr, unwrapOpError(err))
		}
		s.conn, s.rd = conn, bufio.NewReader(conn)
	}
	_ = s.conn.SetDeadline(time.Now().Add(s.timeout))
	if _, err := s.conn.Write(append(request, '\n')); err != nil {
		return nil, err
	}
	return s.rd.ReadBytes('\n')
}

func (s *setupClient) close() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

// adminLogin returns a token of the admin account.
func adminLogin(setup *setupClient, user, password string) (string, error) {
	result, err := setup.call("createSession", map[string]string{"username": user, "password": password})
	if err != nil {
		return "", fmt.Errorf("logging in as %q: %w", user, err)
	}
	var s struct {
		AuthToken string `json:"authToken"`
	}
	if err := json.Unmarshal(result, &s); err != nil || s.AuthToken == "" {
		return "", fmt.Errorf("logging in as %q: no authToken in %s", user, result)
	}
	return s.AuthToken, nil
}

// setupBenchAccount creates the account bench logs in, named benchAccount and a random
// suffix so that runs side by side (a login flood beside token checks) do not share it, and
// returns its name and fresh password. The admin's session is deleted again so it does not
// count against the session caps during the run.
func setupBenchAccount(setup *setupClient, admin, adminPassword string) (string, string, error) {
	token, err := adminLogin(setup, admin, adminPassword)
	if err != nil {
		return "", "", err
	}
	defer func() { _, _ = setup.call("deleteSession", map[string]string{"authToken": token}) }()
	var raw [22]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", err
	}
	name := fmt.Sprintf("%s-%x", benchAccount, raw[:4])
	password := base64.RawURLEncoding.EncodeToString(raw[4:])
	_, err = setup.call("createAccount", map[string]any{"authToken": token, "username": name, "password": password,
		"accountDescription": "made by sessiond bench; dropped at its end", "lockoutAfterNFailedAttempts": 0})
	if err != nil {
		return "", "", fmt.Errorf("creating the account %s: %w", name, err)
	}
	return name, password, nil
}

// dropBenchAccount drops the bench account name, which ends every session it still has.
func dropBenchAccount(setup *setupClient, admin, adminPassword, name string) error {
	if name == "" {
		return nil
	}
	token, err := adminLogin(setup, admin, adminPassword)
	if err != nil {
		return err
	}
	defer func() { _, _ = setup.call("deleteSession", map[string]string{"authToken": token}) }()
	_, err = setup.call("dropAccounts", map[string]any{"authToken": token, "usernames": []string{name}})
	return err
}

// loginMany logs the bench account in n times, two logins at a time (each is one argon2id).
func loginMany(setup *setupClient, user, password string, n int) ([]string, error) {
	tokens := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range min(n, 2) {
		wg.Go(func() {
			own := &setupClient{addr: setup.addr, httpURL: setup.httpURL, timeout: setup.timeout}
			defer own.close()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				tokens[i], errs[i] = adminLogin(own, user, password)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return tokens, nil
}

// ---------------------------------------------------------------------------------------
// Redis, the floor and argon2.

// redisTarget sets keys keys in the redis-server at o.redisAddr and drives GET on them. Keys
// are as long as a sessiond token (52 bytes), values 3 bytes as redis-benchmark's default.
func redisTarget(o benchOptions, keys int) (*benchTarget, func(), error) {
	keys = max(keys, 1)
	names := make([]string, keys)
	for i := range names {
		names[i] = fmt.Sprintf("sessiond-bench:%037d", i)
	}
	setup, err := net.DialTimeout("tcp", o.redisAddr, o.timeout)
	if err != nil {
		return nil, nil, fmt.Errorf("--redis: cannot connect to %s: %v", o.redisAddr, unwrapOpError(err))
	}
	rd := bufio.NewReader(setup)
	pipeline := func(command string) error {
		w := bufio.NewWriterSize(setup, 64<<10)
		for start := 0; start < len(names); start += 1000 {
			batch := names[start:min(start+1000, len(names))]
			for _, name := range batch {
				if command == "SET" {
					fmt.Fprintf(w, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$3\r\nxxx\r\n", len(name), name)
				} else {
					fmt.Fprintf(w, "*2\r\n$3\r\nDEL\r\n$%d\r\n%s\r\n", len(name), name)
				}
			}
			if err := w.Flush(); err != nil {
				return err
			}
			for range batch {
				line, err := rd.ReadSlice('\n')
				if err != nil {
					return err
				}
				if line[0] == '-' {
					return fmt.Errorf("%s: %s", command, bytes.TrimSpace(line))
				}
			}
		}
		return nil
	}
	_ = setup.SetDeadline(time.Now().Add(max(o.timeout, time.Minute)))
	if err := pipeline("SET"); err != nil {
		setup.Close()
		return nil, nil, fmt.Errorf("--redis: setting the keys: %w", err)
	}
	cleanup := func() {
		_ = setup.SetDeadline(time.Now().Add(max(o.timeout, time.Minute)))
		_ = pipeline("DEL")
		setup.Close()
	}
	t := &benchTarget{name: "redis", transport: "resp", address: o.redisAddr, method: "GET", sessions: keys}
	t.open = func(i int) (benchClient, error) {
		conn, err := net.DialTimeout("tcp", o.redisAddr, o.timeout)
		if err != nil {
			return nil, fmt.Errorf("cannot connect to %s: %v", o.redisAddr, unwrapOpError(err))
		}
		c := &redisClient{conn: conn, rd: bufio.NewReaderSize(conn, 64<<10), keys: names, timeout: o.timeout}
		c.next = i * len(names) / o.connections % len(names)
		return c, nil
	}
	return t, cleanup, nil
}

// redisClient sends "GET key" as a RESP array, as redis-benchmark does, and reads the bulk
// reply.
type redisClient struct {
	conn     net.Conn
	rd       *bufio.Reader
	keys     []string
	next     int
	buf      []byte
	timeout  time.Duration
	deadline time.Time
}

func (c *redisClient) call() (bool, error) {
	failed, err := c.callMany(1)
	return failed == 0, err
}

// callMany sends n GETs in one write and reads their n replies (n > 1: --pipeline).
func (c *redisClient) callMany(n int) (failed int, err error) {
	if now := time.Now(); c.deadline.Sub(now) < c.timeout*3/4 {
		c.deadline = now.Add(c.timeout)
		_ = c.conn.SetDeadline(c.deadline)
	}
	c.buf = c.buf[:0]
	for range n {
		key := c.keys[c.next]
		c.next++
		if c.next == len(c.keys) {
			c.next = 0
		}
		c.buf = append(c.buf, "*2\r\n$3\r\nGET\r\n$"...)
		c.buf = strconv.AppendInt(c.buf, int64(len(key)), 10)
		c.buf = append(c.buf, "\r\n"...)
		c.buf = append(c.buf, key...)
		c.buf = append(c.buf, "\r\n"...)
	}
	if _, err := c.conn.Write(c.buf); err != nil {
		return 0, err
	}
	for range n {
		ok, err := c.reply()
		if err != nil {
			return 0, err
		}
		if !ok {
			failed++
		}
	}
	return failed, nil
}

// reply reads one GET's reply: ok is false for an error or a key that is gone.
func (c *redisClient) reply() (ok bool, err error) {
	line, err := c.rd.ReadSlice('\n')
	if err != nil {
		return false, err
	}
	if len(line) < 3 || line[0] != '$' {
		return false, nil // an error ('-') or an unexpected reply
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(line[1:])))
	if err != nil {
		return false, fmt.Errorf("malformed reply %q", line)
	}
	if n < 0 {
		return false, nil // nil: the key is gone
	}
	if _, err := c.rd.Discard(n + 2); err != nil {
		return false, err
	}
	return true, nil
}

func (c *redisClient) after() error { return nil }
func (c *redisClient) close()       { _ = c.conn.Close() }

// floorReply is what the floor server answers to every line.
const floorReply = `{"jsonrpc":"2.0","result":{},"id":1}` + "\n"

// floorExecutable is the sessiond binary that serves the floor; tests point it at the
// binary they build.
var floorExecutable = os.Executable

// floorTarget starts a trivial line server in a process of its own (sessiond bench
// --serve-floor): each connection reads a line and writes a fixed reply, nothing else. It is
// driven with the pingSession requests. It runs apart from the client, as sessiond and Redis
// do: inside the bench process it would share the client's runtime, scheduler and poller.
func floorTarget(o benchOptions) (*benchTarget, func(), error) {
	path, err := floorExecutable()
	if err != nil {
		return nil, nil, fmt.Errorf("floor: %w", err)
	}
	args := []string{"bench", "--serve-floor", "127.0.0.1:0"}
	if o.floorCPUs != "" {
		args = append(args, "--cpus", o.floorCPUs)
	}
	cmd := exec.Command(path, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("floor: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("floor: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("floor: %w", err)
	}
	// The floor serves until its stdin ends, so it never outlives bench.
	cleanup := func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr := strings.TrimSpace(line)
	if err != nil || addr == "" {
		cleanup()
		return nil, nil, fmt.Errorf("floor: no address from %s (%v)", path, err)
	}
	m := benchMethods["pingSession"]
	token := strings.Repeat("x", engine.TokenLength)
	t := &benchTarget{name: "floor", transport: "tcp", address: addr, method: "fixed reply", sessions: 1,
		pid: cmd.Process.Pid}
	t.open = func(int) (benchClient, error) {
		return dialBenchLine(addr, &benchRequests{m: m, tokens: []string{token}}, o.timeout)
	}
	return t, cleanup, nil
}

// serveFloor is the floor process: it listens on addr, writes the address it got on stdout,
// and answers every line of every connection with floorReply until stdin ends. Its
// connections close as the process exits right after.
func serveFloor(addr string, stdin io.Reader, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	if _, err := fmt.Fprintln(stdout, ln.Addr()); err != nil {
		return err
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				rd := bufio.NewReaderSize(conn, 16<<10)
				reply := []byte(floorReply)
				for {
					if _, err := rd.ReadSlice('\n'); err != nil {
						return
					}
					if _, err := conn.Write(reply); err != nil {
						return
					}
				}
			}()
		}
	}()
	_, _ = io.Copy(io.Discard, stdin)
	return nil
}

// argon2Target measures the production password hash alone: one hash per core at a time,
// as the server's default maxConcurrentHashes allows.
func argon2Target() *benchTarget {
	p := engine.DefaultHashParams
	t := &benchTarget{
		name: "argon2", transport: "in-process", workers: runtime.GOMAXPROCS(0),
		method: fmt.Sprintf("argon2id m=%d t=%d p=%d", p.MemoryKiB, p.Iterations, p.Parallelism),
	}
	t.open = func(int) (benchClient, error) {
		salt := make([]byte, 16)
		_, _ = rand.Read(salt)
		return &argon2Client{params: p, salt: salt}, nil
	}
	return t
}

type argon2Client struct {
	params engine.HashParams
	salt   []byte
}

func (c *argon2Client) call() (bool, error) {
	key := argon2.IDKey([]byte("sessiond bench password"), c.salt, c.params.Iterations, c.params.MemoryKiB, c.params.Parallelism, 32)
	return len(key) == 32, nil
}

func (c *argon2Client) after() error { return nil }
func (c *argon2Client) close()       {}

// ---------------------------------------------------------------------------------------
// --populate

// populateStore writes o.populate live sessions of populateAccount into the Badger store in
// o.dataDir, which no server may have open, and their tokens to o.tokensFile. On a new store
// it first creates the admin account exactly as serve would, so the store stays usable.
//
// The sessions are made as createSession makes them (random token, its SHA-256, a random
// id) and imported in large batches with the store's ImportSessions: one write batch and one
// sync per ten thousand sessions instead of a transaction and a sync each.
func populateStore(o benchOptions, stderr io.Writer) error {
	cfg := DefaultConfig()
	if o.configPath != "" {
		var err error
		if cfg, err = LoadConfig(o.configPath); err != nil {
			return err
		}
	}
	log, _ := newLogger(stderr, "warn", "text")
	key, err := encryptionKey(cfg.Storage.EncryptionKeyFile)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return err
	}
	store, err := badgerstore.Open(badgerstore.Options{Dir: dir, EncryptionKey: key, Logger: log, FlushInterval: -1})
	if err != nil {
		return fmt.Errorf("opening the store in %s (stop the server first): %w", dir, err)
	}
	defer func() {
		if err := store.Close(); err != nil {
			fmt.Fprintln(stderr, "sessiond bench: closing the store:", err)
		}
	}()
	engineCfg := cfg.Engine
	engineCfg.Logger = log
	engineCfg.HousekeepingInterval = -1
	eng, err := engine.New(store, engineCfg)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	defer eng.Close()
	if err := bootstrapAdmin(eng, stderr, log); err != nil {
		return err
	}
	ctx := context.Background()
	now := time.Now()
	err = store.CreateAccount(ctx, &engine.Account{
		Username:    populateAccount,
		Description: "sessions written by sessiond bench --populate; no usable password",
		// No argon2 encoding: every password check against it fails.
		PasswordHash:       "",
		LockoutAfter:       engineCfg.DefaultLockoutAfter,
		LockoutWaitMinutes: engineCfg.DefaultLockoutWaitMinutes,
		CreatedAt:          now,
	})
	if err != nil && !errors.Is(err, engine.ErrAccountExists) {
		return fmt.Errorf("creating the account %s: %w", populateAccount, err)
	}

	f, err := os.OpenFile(o.tokensFile, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("--tokens-file: %w", err)
	}
	defer f.Close()
	// A file that was there keeps its mode through OpenFile: live tokens are for the owner only.
	if err := f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("--tokens-file: %w", err)
	}
	out := bufio.NewWriterSize(f, 1<<20)
	var outMu sync.Mutex

	settings := engineCfg.Defaults.Settings
	settings.IdleConnectionTimeoutSeconds = int64(o.populateIdle / time.Second)
	var (
		next, done atomic.Int64
		wg         sync.WaitGroup
		errOnce    sync.Once
		firstErr   error
	)
	const chunk = 10_000
	total := int64(o.populate)
	start := time.Now()
	stopProgress := make(chan struct{})
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-tick.C:
				fmt.Fprintf(stderr, "populate: %s of %s sessions written\n", groupDigits(done.Load()), groupDigits(total))
			}
		}
	}()
	// Each worker makes a chunk of sessions (tokens, hashes, ids), imports it in one batch
	// and writes its tokens; imports from several workers share their syncs.
	for range max(runtime.GOMAXPROCS(0), 2) {
		wg.Go(func() {
			sessions := make([]engine.Session, 0, chunk)
			lines := make([]byte, 0, chunk*(engine.TokenLength+1))
			for {
				first := next.Add(chunk) - chunk
				if first >= total {
					return
				}
				n := min(total-first, chunk)
				sessions, lines = sessions[:0], lines[:0]
				for range n {
					token, s, err := populatedSession(settings, now)
					if err != nil {
						errOnce.Do(func() { firstErr = err })
						return
					}
					sessions = append(sessions, *s)
					lines = append(append(lines, token...), '\n')
				}
				if err := store.ImportSessions(ctx, sessions); err != nil {
					errOnce.Do(func() { firstErr = err })
					next.Store(total) // stop the others
					return
				}
				outMu.Lock()
				_, _ = out.Write(lines)
				outMu.Unlock()
				done.Add(n)
			}
		})
	}
	wg.Wait()
	close(stopProgress)
	if err := out.Flush(); err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		return fmt.Errorf("after %d sessions: %w", done.Load(), firstErr)
	}
	took := time.Since(start)
	fmt.Fprintf(stderr, "populate: wrote %s sessions of %s in %s (%s/s); their tokens are in %s\n",
		groupDigits(done.Load()), populateAccount, took.Round(time.Millisecond),
		groupDigits(int64(float64(done.Load())/took.Seconds())), o.tokensFile)
	return nil
}

// populatedSession returns a new token and its session, as createSession would make them.
func populatedSession(settings engine.SessionSettings, now time.Time) (string, *engine.Session, error) {
	token, err := engine.NewToken(rand.Reader, false)
	if err != nil {
		return "", nil, err
	}
	parsed, err := engine.ParseToken(token)
	if err != nil {
		return "", nil, err
	}
	var raw [15]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", nil, err
	}
	return token, &engine.Session{
		ID: "ses_" + base64.RawURLEncoding.EncodeToString(raw[:]), TokenHash: parsed.Hash,
		Username: populateAccount, Origin: engine.OriginCreateSession, Settings: settings,
		CreatedAt: now, LastAccessedAt: now, LastActiveAt: now, ClientAddress: "127.0.0.1",
	}, nil
}
