package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadCPUs returns the CPU list of every thread of process pid, as /proc prints them.
func threadCPUs(t *testing.T, pid int) map[string]int {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	lists := map[string]int{}
	for _, task := range tasks {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if err != nil {
			continue // exited since the listing
		}
		for line := range strings.Lines(string(status)) {
			if list, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				lists[strings.TrimSpace(list)]++
			}
		}
	}
	return lists
}

// childPIDs returns the processes that process pid started.
func childPIDs(t *testing.T, pid int) []int {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, task := range tasks {
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		for _, f := range strings.Fields(string(children)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
	}
	return pids
}

// testCPUs returns the CPUs the test runs on and the last of them, to pin to; it skips the
// test when there are fewer than two.
func testCPUs(t *testing.T) (all []int, last string) {
	t.Helper()
	var mine unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mine); err != nil {
		t.Fatal(err)
	}
	all = cpusOf(&mine)
	if len(all) < 2 {
		t.Skipf("this test runs on CPUs %v; pinning needs two", all)
	}
	return all, strconv.Itoa(all[len(all)-1])
}

// TestServeCPUs checks that serve --cpus pins every thread of the server to the CPU given,
// follows with GOMAXPROCS, and leaves the password hash helper on the CPUs serve started with.
func TestServeCPUs(t *testing.T) {
	all, last := testCPUs(t)
	p := startServer(t, "--in-memory", "--tcp", "127.0.0.1:0", "--http", "off", "--cpus", last)
	pid := p.cmd.Process.Pid
	if got := threadCPUs(t, pid); len(got) != 1 || got[last] == 0 {
		t.Errorf("server threads' CPUs %v, want all on %s", got, last)
	}
	want := `"msg":"pinned to CPUs","cpus":"` + last + `","gomaxprocs":1`
	if os.Getenv("GOMAXPROCS") != "" {
		want = `"msg":"pinned to CPUs","cpus":"` + last + `"` // the variable decides
	}
	if logs := p.logs.String(); !strings.Contains(logs, want) {
		t.Errorf("no %s in the logs:\n%s", want, logs)
	}
	// The admin account was created at start, with a hash: the idle helper runs.
	helpers := childPIDs(t, pid)
	if len(helpers) == 0 {
		t.Fatalf("no hash helper started; logs:\n%s", p.logs.String())
	}
	allList := formatCPUList(all)
	for _, h := range helpers {
		if got := threadCPUs(t, h); len(got) != 1 || got[allList] == 0 {
			t.Errorf("helper %d threads' CPUs %v, want all on %s", h, got, allList)
		}
	}
}

// TestServeCPUsRefused checks that a CPU list that names no usable CPU, or is not one, stops
// serve with a clear message, as a usage error.
func TestServeCPUsRefused(t *testing.T) {
	for _, tc := range []struct{ list, want string }{
		{"1023", "none of CPUs 1023 is one this process may use"},
		{"1-0", "runs backwards"},
	} {
		p := launchServer(t, "--in-memory", "--tcp", "127.0.0.1:0", "--http", "off", "--cpus", tc.list)
		<-p.exited
		if code := p.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(p.logs.String(), tc.want) {
			t.Errorf("--cpus %s: exit %d, logs:\n%s\nwant exit 2 (a usage error) and %q", tc.list, code, p.logs.String(), tc.want)
		}
	}
}

// TestBenchFloorCPUs checks that the floor process bench starts with --floor-cpus pins its
// threads to the CPU given.
func TestBenchFloorCPUs(t *testing.T) {
	_, last := testCPUs(t)
	target, cleanup, err := floorTarget(benchOptions{floorCPUs: last, timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	// floorTarget returns once the floor has written its address: it is serving, pinned.
	if got := threadCPUs(t, target.pid); len(got) != 1 || got[last] == 0 {
		t.Errorf("floor threads' CPUs %v, want all on %s", got, last)
	}
}

// TestBenchCPUsRefused checks that bench refuses a CPU list that is not one before it runs.
func TestBenchCPUsRefused(t *testing.T) {
	for _, flag := range []string{"--cpus", "--floor-cpus"} {
		var out, errOut bytes.Buffer
		if code := runBench([]string{flag, "3-1", "--floor"}, strings.NewReader(""), &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "runs backwards") {
			t.Errorf("%s 3-1: exit %d, %q; want exit 2 and the reason", flag, code, errOut.String())
		}
	}
}
