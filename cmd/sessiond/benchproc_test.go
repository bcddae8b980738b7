package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// writeTree writes text to the file name under dir, making its directories; an empty text
// writes nothing.
func writeTree(t *testing.T, dir, name, text string) {
	t.Helper()
	if text == "" {
		return
	}
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeProc writes a /proc with one TCP table and process 4242, whose fd 3 is the socket of
// inode 777.
func fakeProc(t *testing.T, table, stat, io string) string {
	t.Helper()
	root := t.TempDir()
	write := func(name, text string) { writeTree(t, root, name, text) }
	write("net/tcp", table)
	write("4242/stat", stat)
	if io != "" {
		write("4242/io", io)
	}
	write("self/stat", "not a process directory")
	if err := os.MkdirAll(filepath.Join(root, "4242", "fd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("socket:[777]", filepath.Join(root, "4242", "fd", "3")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", filepath.Join(root, "4242", "fd", "0")); err != nil {
		t.Fatal(err)
	}
	return root
}

const tcpTable = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1CE8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1CE9 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 778 1 0000000000000000 20 4 30 10 -1
`

// TestListeningProcess checks that bench finds the process listening on a loopback port
// from /proc, and finds none for a port only connected to, or another machine's address.
func TestListeningProcess(t *testing.T) {
	root := fakeProc(t, tcpTable, "", "")
	for _, c := range []struct {
		addr string
		want int
	}{
		{"127.0.0.1:7400", 4242}, // 0x1CE8, listening
		{"localhost:7400", 4242},
		{"[::1]:7400", 4242},
		{"127.0.0.1:7401", 0}, // 0x1CE9: an established connection, not a listener
		{"127.0.0.1:7402", 0},
		{"192.0.2.1:7400", 0}, // not this machine
		{"127.0.0.1", 0},
	} {
		if got := listeningProcess(root, c.addr); got != c.want {
			t.Errorf("listeningProcess(%q) = %d, want %d", c.addr, got, c.want)
		}
	}
}

// TestReadServerUsage checks the CPU time and system call counts read from /proc/PID/stat
// and io, a command name with spaces and parentheses included.
func TestReadServerUsage(t *testing.T) {
	stat := "4242 (redis ) server) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 5 0 100 0 0\n"
	io := "rchar: 10\nwchar: 20\nsyscr: 300\nsyscw: 45\nread_bytes: 0\n"
	u := readServerUsage(fakeProc(t, tcpTable, stat, io), 4242)
	if !u.sample || u.cpu != 3800*time.Millisecond || u.calls != 345 {
		t.Errorf("usage %+v, want 3.8s of CPU and 345 calls", u)
	}
	u = readServerUsage(fakeProc(t, tcpTable, stat, ""), 4242)
	if !u.sample || u.calls != -1 {
		t.Errorf("usage without io %+v, want calls -1", u)
	}
	for _, bad := range []string{"", "4242 (x) S 1 2", "4242 (x) S 1 4242 4242 0 -1 0 0 0 0 0 lots 1 0 0"} {
		if u := readServerUsage(fakeProc(t, tcpTable, bad, io), 4242); u.sample {
			t.Errorf("stat %q read as %+v", bad, u)
		}
	}
	if u := readServerUsage(t.TempDir(), 4242); u.sample {
		t.Errorf("a missing process read as %+v", u)
	}
	if runtime.GOOS == "linux" {
		if u := readServerUsage("/proc", os.Getpid()); !u.sample || u.calls < 0 {
			t.Errorf("this process: %+v", u)
		}
	}
}

// TestSchedGroup checks how a process's scheduling group is named from /proc and the cgroup
// v2 hierarchy: the cgroup whose CPU controller governs it (v1's cpu controller, or the
// nearest v2 cgroup with cpu among its controllers), and the autogroup only in the root CPU
// group and while the kernel has autogroup on.
func TestSchedGroup(t *testing.T) {
	v2 := map[string]string{ // cgroup.controllers of the v2 hierarchy
		"user.slice":              "cpuset cpu io memory pids",
		"user.slice/session-1":    "memory pids",
		"system.slice":            "memory pids",
		"system.slice/redis.slot": "io",
	}
	for _, c := range []struct {
		name, cgroup, autogroupOn, autogroup, want string
	}{
		{"v2 with cpu: no autogroup", "0::/user.slice\n", "1\n", "/autogroup-10 nice 0\n", "cgroup /user.slice"},
		{"v2 child without cpu: its parent's", "0::/user.slice/session-1\n", "1\n", "/autogroup-10 nice 0\n", "cgroup /user.slice"},
		{"v2 without cpu up to the root: autogroup", "0::/system.slice/redis.slot\n", "1\n", "/autogroup-10 nice 0\n", "cgroup /, autogroup-10"},
		{"root, autogroup off", "0::/\n", "0\n", "/autogroup-10 nice 0\n", "cgroup /"},
		{"v1 cpu controller", "4:memory:/m\n3:cpu,cpuacct:/system.slice/redis.service\n0::/\n", "1\n", "/autogroup-3 nice 5\n", "cgroup /system.slice/redis.service"},
		{"v1 root cpu group", "3:cpu,cpuacct:/\n0::/\n", "1\n", "/autogroup-3 nice 5\n", "cgroup /, autogroup-3"},
		{"v1 without cpu", "4:memory:/m\n2:cpuset:/\n", "1\n", "/autogroup-3 nice 5\n", "autogroup-3"},
		{"nothing readable", "", "", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			root, cgroups := t.TempDir(), t.TempDir()
			write := func(dir, name, text string) { writeTree(t, dir, name, text) }
			write(root, "4242/cgroup", c.cgroup)
			write(root, "4242/autogroup", c.autogroup)
			write(root, "sys/kernel/sched_autogroup_enabled", c.autogroupOn)
			for dir, controllers := range v2 {
				write(cgroups, filepath.Join(dir, "cgroup.controllers"), controllers+"\n")
			}
			if got := schedGroup(root, cgroups, "4242"); got != c.want {
				t.Errorf("schedGroup = %q, want %q", got, c.want)
			}
		})
	}
}

// TestGroupNote checks that the report warns exactly when the measured servers are in
// different scheduling groups.
func TestGroupNote(t *testing.T) {
	run := func(group string) benchRun { return benchRun{ServerPID: 1, ServerGroup: group} }
	for _, c := range []struct {
		runs []benchRun
		note bool
	}{
		{[]benchRun{run("cgroup /, autogroup-9"), run("cgroup /, autogroup-10")}, true},
		{[]benchRun{run("cgroup /, autogroup-9"), run("cgroup /, autogroup-9")}, false},
		{[]benchRun{run("cgroup /, autogroup-9"), run("")}, false}, // unknown is not different
		{[]benchRun{run("cgroup /a")}, false},
	} {
		var out bytes.Buffer
		printGroupNote(&out, "cgroup /, autogroup-9", c.runs)
		if got := strings.Contains(out.String(), "different scheduling groups"); got != c.note {
			t.Errorf("runs %+v: note %v, want %v:\n%s", c.runs, got, c.note, out.String())
		}
	}
}

// TestReadServerChildren checks that a server's children count apart from it: the live ones
// found through every thread's children file, and those it has waited for (cutime, cstime).
func TestReadServerChildren(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) { writeTree(t, root, name, text) }
	stat := func(pid string, utime, stime, cutime, cstime int) string {
		return fmt.Sprintf("%s (sd) S 1 1 1 0 -1 0 0 0 0 0 %d %d %d %d 20 0 5 0 100 0 0\n", pid, utime, stime, cutime, cstime)
	}
	write("4242/stat", stat("4242", 300, 100, 5, 5))
	write("4242/task/4242/children", "4243 ")
	write("4242/task/4250/children", "4244 4299\n") // 4299 has exited: no stat
	write("4243/stat", stat("4243", 100, 0, 0, 0))
	write("4244/stat", stat("4244", 20, 30, 0, 0))
	u := readServerUsage(root, 4242)
	if u.cpu != 4*time.Second || u.children != 1600*time.Millisecond {
		t.Errorf("usage %+v, want 4s of CPU and 1.6s in children (0.1 waited for, 1 and 0.5 alive)", u)
	}
	if runtime.GOOS != "linux" {
		return
	}
	// This process, after a child that used CPU and was waited for.
	before := readServerUsage("/proc", os.Getpid()).children
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
	if err := cmd.Run(); err != nil {
		t.Skipf("sh: %v", err)
	}
	used := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if after := readServerUsage("/proc", os.Getpid()).children; after-before < used/2 {
		t.Errorf("children's CPU went from %v to %v after a child that used %v", before, after, used)
	}
}
