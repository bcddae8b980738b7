package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The server's side of a run: on Linux, bench finds the process listening on the target's
// address and reads its CPU time and its read(2) and write(2) calls from /proc before and
// after the measured window. On a machine whose CPUs the client shares, throughput depends on
// the client's cost as much as the server's; CPU a request is the server's alone. Its child
// processes (sessiond's password hash helpers) are counted apart. bench's own CPU a
// request comes from getrusage(2) (ownCPU): the client's cost of each target.

// serverUsage is what /proc says a process has used so far.
type serverUsage struct {
	cpu    time.Duration // user and system, all threads
	calls  int64         // read(2) and write(2) calls; -1 when /proc/PID/io is not readable
	sample bool          // false when nothing could be read
	// children is the CPU time of its child processes: those alive (their own threads) and
	// those it has waited for, so a helper that exits and is restarted is still counted.
	children time.Duration
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// readServerUsage reads the usage of process pid from root (normally "/proc").
func readServerUsage(root string, pid int) serverUsage {
	own, waited, ok := statTimes(root, pid)
	if !ok {
		return serverUsage{}
	}
	u := serverUsage{cpu: own, children: waited, calls: -1, sample: true}
	for _, child := range childProcesses(root, pid) {
		if cpu, _, ok := statTimes(root, child); ok {
			u.children += cpu
		}
	}
	if io, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "io")); err == nil {
		var syscr, syscw int64 = -1, -1
		for line := range strings.Lines(string(io)) {
			name, value, ok := strings.Cut(strings.TrimSpace(line), ": ")
			if !ok {
				continue
			}
			switch name {
			case "syscr":
				syscr, _ = strconv.ParseInt(value, 10, 64)
			case "syscw":
				syscw, _ = strconv.ParseInt(value, 10, 64)
			}
		}
		if syscr >= 0 && syscw >= 0 {
			u.calls = syscr + syscw
		}
	}
	return u
}

// statTimes reads from /proc/PID/stat the CPU time process pid has used (user and system,
// all threads) and that of the children it has waited for; ok is false if it cannot.
func statTimes(root string, pid int) (own, waited time.Duration, ok bool) {
	stat, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// The command name, field 2, is in parentheses and may hold spaces: fields count
	// from after its closing parenthesis, where field 3 (state) is the first.
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, 0, false
	}
	fields := strings.Fields(string(stat[end+1:]))
	// sum adds fields a and b (1-based, as proc(5) numbers them), in clock ticks.
	sum := func(a, b int) (time.Duration, bool) {
		if len(fields) < b-2 {
			return 0, false
		}
		x, err1 := strconv.ParseInt(fields[a-3], 10, 64)
		y, err2 := strconv.ParseInt(fields[b-3], 10, 64)
		return time.Duration(x+y) * time.Second / clockTicks, err1 == nil && err2 == nil
	}
	own, ok = sum(14, 15)   // utime, stime
	waited, _ = sum(16, 17) // cutime, cstime
	return own, waited, ok
}

// childProcesses lists the live children of process pid, from the children files of its
// threads (a Go program forks from any of them).
func childProcesses(root string, pid int) []int {
	tasks, err := filepath.Glob(filepath.Join(root, strconv.Itoa(pid), "task", "*", "children"))
	if err != nil {
		return nil
	}
	var out []int
	for _, file := range tasks {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if child, err := strconv.Atoi(f); err == nil && child != pid {
				out = append(out, child)
			}
		}
	}
	return out
}

// listeningProcess returns the process that listens on the TCP address addr (host:port), or
// 0 if it cannot be told: not Linux, another machine, or a process bench may not inspect.
func listeningProcess(root, addr string) int {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return 0
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return 0 // only a server on this machine can be inspected
	}
	inodes := map[string]bool{}
	for _, table := range []string{"net/tcp", "net/tcp6"} {
		data, err := os.ReadFile(filepath.Join(root, table))
		if err == nil {
			for _, inode := range listenInodes(data, uint16(port)) {
				inodes["socket:["+inode+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, err := os.ReadDir(root)
	if err != nil {
		return 0
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(filepath.Join(root, p.Name(), "fd"))
		if err != nil {
			continue // gone, or another user's
		}
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join(root, p.Name(), "fd", fd.Name())); err == nil && inodes[target] {
				return pid
			}
		}
	}
	return 0
}

// listenInodes returns the inodes of the listening sockets on port in a /proc/net/tcp or
// tcp6 table.
func listenInodes(table []byte, port uint16) []string {
	const listen = "0A"
	want := fmt.Sprintf(":%04X", port)
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(table))
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != listen || !strings.HasSuffix(f[1], want) {
			continue
		}
		out = append(out, f[9])
	}
	return out
}

// schedGroup names the scheduling group of process pid ("self" for bench), from the /proc
// at root and the cgroup v2 hierarchy at cgroupRoot: the cgroup whose CPU controller governs
// it and, when that is the root one and the kernel's autogroup feature is on, its autogroup
// (the kernel ignores autogroups inside a CPU cgroup). The kernel shares the CPUs between
// groups before it shares them between the tasks in a group, which changes how a server and
// a client on the same CPUs take turns: a daemon (its own session, so its own autogroup) and
// a server started from the client's shell are not driven the same way. It returns "" when
// /proc says nothing of it.
func schedGroup(root, cgroupRoot, pid string) string {
	path := "" // none named: the root CPU group, if any
	if data, err := os.ReadFile(filepath.Join(root, pid, "cgroup")); err == nil {
		path = cpuCgroup(string(data), cgroupRoot)
	}
	var parts []string
	if path != "" {
		parts = append(parts, "cgroup "+path)
	}
	if path == "/" || path == "" {
		if on, err := os.ReadFile(filepath.Join(root, "sys/kernel/sched_autogroup_enabled")); err == nil && strings.TrimSpace(string(on)) == "1" {
			// "/autogroup-10 nice 0"
			if data, err := os.ReadFile(filepath.Join(root, pid, "autogroup")); err == nil {
				if f := strings.Fields(string(data)); len(f) > 0 {
					parts = append(parts, strings.TrimPrefix(f[0], "/"))
				}
			}
		}
	}
	return strings.Join(parts, ", ")
}

// cpuCgroup returns the cgroup whose CPU controller governs a process, from its
// /proc/PID/cgroup file: cgroup v1's cpu controller if it is mounted, else the nearest
// cgroup of v2's unified hierarchy ("0::path") that has the cpu controller (its
// cgroup.controllers under cgroupRoot lists cpu), the root at the latest. A v2 cgroup whose
// controllers cannot be read counts as its own. "" when the file names neither.
func cpuCgroup(file, cgroupRoot string) string {
	unified := ""
	for line := range strings.Lines(file) {
		// hierarchy-ID:controller-list:path
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			unified = f[2]
			continue
		}
		for c := range strings.SplitSeq(f[1], ",") {
			if c == "cpu" {
				return f[2]
			}
		}
	}
	for unified != "" && unified != "/" {
		data, err := os.ReadFile(filepath.Join(cgroupRoot, unified, "cgroup.controllers"))
		if err != nil || slices.Contains(strings.Fields(string(data)), "cpu") {
			break
		}
		unified = filepath.Dir(unified)
	}
	return unified
}
