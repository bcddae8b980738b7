//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/enginetest"
)

// TestHashProcessPriority checks that every thread of the helpers has the lower priority, the
// idle helper the SCHED_IDLE policy too, and that no thread of this process got either.
func TestHashProcessPriority(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("thread priorities are read from /proc")
	}
	hs := startTestHashers(t)
	ctx := context.Background()
	for _, h := range []*hashProcess{hs.idle, hs.niced} {
		if _, err := h.derive(ctx, []byte("x"), []byte("salt-salt-salt-1"), enginetest.CheapHash, 32); err != nil {
			t.Fatal(err)
		}
	}
	check := func(pid, wantNice int, wantPolicy string) { // wantNice -1: any
		tasks, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/stat")
		if err != nil || len(tasks) == 0 {
			t.Fatalf("threads of %d: %v", pid, err)
		}
		for _, task := range tasks {
			b, err := os.ReadFile(task)
			if err != nil {
				continue // the thread ended
			}
			// Field 19 is the nice value and field 41 the policy (0 normal, 5 SCHED_IDLE);
			// the command name (field 2) has no spaces here.
			fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
			if nice, policy := fields[16], fields[38]; wantNice >= 0 && nice != strconv.Itoa(wantNice) || policy != wantPolicy {
				t.Errorf("%s: nice %s, policy %s; want %d, %s", task, nice, policy, wantNice, wantPolicy)
			}
		}
	}
	check(helperPID(hs.idle), -1, "5") // SCHED_IDLE has no nice value
	check(helperPID(hs.niced), hashWorkerNice, "0")
	check(os.Getpid(), syscallNice(t), "0")
}

// TestHashersStarvedIdle checks that a hash the idle helper does not answer in time is
// computed by the nice-10 helper, that the hashes after it go there too, that the idle
// helper is used again once it answers, and once it is restarted after dying while starved.
func TestHashersStarvedIdle(t *testing.T) {
	hs := startTestHashers(t)
	ctx := context.Background()
	slow := engine.HashParams{MemoryKiB: 16 << 10, Iterations: 2, Parallelism: 1} // tens of ms
	password, salt := []byte("secret"), []byte("salt-salt-salt-4")
	want := wantKey(password, salt, slow, 32)
	derive := func(what string) {
		t.Helper()
		if got, err := hs.derive(ctx, password, salt, slow, 32); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %x, %v", what, got, err)
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s", what)
			}
		}
	}
	// A stopped idle helper answers nothing: it is starved.
	idlePID := helperPID(hs.idle)
	if err := syscall.Kill(idlePID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = syscall.Kill(idlePID, syscall.SIGCONT)
		}
	}()
	hs.mu.Lock()
	hs.patience = time.Millisecond
	hs.mu.Unlock()
	derive("late idle hash")
	if !isStarving(hs) || helperPID(hs.niced) == 0 || sentTo(hs.niced) != 1 || sentTo(hs.idle) != 1 {
		t.Fatalf("after a late idle hash: starving %v, nice-10 helper %d with %d requests, idle %d",
			isStarving(hs), helperPID(hs.niced), sentTo(hs.niced), sentTo(hs.idle))
	}
	derive("hash while starving")
	if sentTo(hs.niced) != 2 || sentTo(hs.idle) != 1 {
		t.Errorf("while starving: %d requests to the nice-10 helper, %d to the idle one; want 2, 1", sentTo(hs.niced), sentTo(hs.idle))
	}
	// The idle helper answers the hash given up on, and is used again.
	stopped = false
	if err := syscall.Kill(idlePID, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor("answer from the resumed idle helper", func() bool { return !isStarving(hs) })
	hs.mu.Lock()
	hs.patience = time.Hour
	hs.mu.Unlock()
	derive("idle hash again")
	if sentTo(hs.idle) != 2 || sentTo(hs.niced) != 2 {
		t.Errorf("after the idle helper answered: %d requests to it, %d to the nice-10 one; want 2, 2", sentTo(hs.idle), sentTo(hs.niced))
	}
	// An idle helper that dies while starved is not given up on for good: it restarts.
	hs.mu.Lock()
	hs.starving = true
	hs.mu.Unlock()
	if err := syscall.Kill(idlePID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor("end of starving after the idle helper died", func() bool { return !isStarving(hs) })
	waitFor("restart allowed", func() bool {
		hs.idle.mu.Lock()
		defer hs.idle.mu.Unlock()
		return time.Now().After(hs.idle.retryAt)
	})
	derive("hash after the idle helper died")
	if pid := helperPID(hs.idle); pid == idlePID || sentTo(hs.idle) != 3 {
		t.Errorf("idle helper %d (was %d) with %d requests; want a new one with 3", pid, idlePID, sentTo(hs.idle))
	}
}

// syscallNice is this process's own nice value, which the helper must not have changed.
func syscallNice(t *testing.T) int {
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	return 20 - prio // the raw system call returns 20 - nice
}

// TestHashProcessSurvivesHelperDeath checks that hashes are still right while the helper is
// dead (computed in this process) and after it was restarted.
func TestHashProcessSurvivesHelperDeath(t *testing.T) {
	h, logs := startTestHashProcess(t)
	ctx := context.Background()
	password, salt := []byte("secret"), []byte("salt-salt-salt-2")
	want := wantKey(password, salt, enginetest.CheapHash, 32)
	h.mu.Lock()
	pid := h.proc.Pid
	h.mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	check := func(when string) {
		if got, err := h.derive(ctx, password, salt, enginetest.CheapHash, 32); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %x, %v", when, got, err)
		}
	}
	// waitLog polls the logs every step until they say line, calling each between looks.
	waitLog := func(line, missing string, step time.Duration, each func()) {
		for !strings.Contains(logs.String(), line) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s", missing, logs.String())
			}
			time.Sleep(step)
			each()
		}
	}
	waitLog("helper stopped", "the death went unnoticed", 10*time.Millisecond, func() {})
	check("while dead")
	waitLog("restarted the password hash helper", "no restart", 50*time.Millisecond, func() { check("restarting") })
	h.mu.Lock()
	restarted := h.proc.Pid
	h.mu.Unlock()
	if restarted == pid {
		t.Fatal("no new helper")
	}
}

// TestHashProcessCloseKillsAHelperThatStays checks that close ends a helper that does not
// exit at the end of its input (a starved one, say) about a second after it, and reaps it.
func TestHashProcessCloseKillsAHelperThatStays(t *testing.T) {
	helper := filepath.Join(t.TempDir(), "helper")
	if err := os.WriteFile(helper, []byte("#!/bin/sh\nexec sleep 60\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	h := newHashProcess(helper, slog.New(slog.DiscardHandler), false)
	if err := h.start(); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	proc := h.proc
	h.mu.Unlock()
	closed := make(chan struct{})
	go func() { h.close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		_ = proc.Kill()
		t.Fatal("close has not returned 10 s after it began")
	}
	// Through the process, not its id, which the system may have given another by now.
	if err := proc.Signal(syscall.Signal(0)); !errors.Is(err, os.ErrProcessDone) {
		_ = proc.Kill()
		t.Errorf("the helper is still there after close: %v", err)
	}
}

// TestHashWorkerIgnoresStopSignals checks that the helper ignores SIGINT and SIGTERM, which a
// terminal's Ctrl-C or a supervisor sends to the server's whole process group (or cgroup),
// and SIGTTOU, which would stop it, a background job, writing to the terminal (tostop):
// the server ends the helper itself, by closing its input, once its last hash is done. Linux
// only (/proc/PID/status).
func TestHashWorkerIgnoresStopSignals(t *testing.T) {
	h, _ := startTestHashProcess(t)
	// An answer from the helper: it has started, and executed itself at its lower priority.
	salt := []byte("salt-salt-salt-3")
	if _, err := h.derive(context.Background(), []byte("pw"), salt, enginetest.CheapHash, 32); err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(helperPID(h)), "status"))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var ignored uint64
	for line := range strings.Lines(string(status)) {
		if hex, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			if ignored, err = strconv.ParseUint(strings.TrimSpace(hex), 16, 64); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGTTOU} {
		if ignored&(1<<(sig-1)) == 0 {
			t.Errorf("the helper does not ignore %v (SigIgn %x)", sig, ignored)
		}
	}
}

// TestHashWorkerOwnProcessGroup checks that the helper leads a process group of its own, so
// that signals sent to the server's group never reach it, not even while it starts.
func TestHashWorkerOwnProcessGroup(t *testing.T) {
	h, _ := startTestHashProcess(t)
	if _, err := h.derive(context.Background(), []byte("pw"), []byte("salt-salt-salt-4"), enginetest.CheapHash, 32); err != nil {
		t.Fatal(err)
	}
	pid := helperPID(h)
	group, err := syscall.Getpgid(pid)
	if err != nil {
		t.Fatal(err)
	}
	if group != pid || group == syscall.Getpgrp() {
		t.Errorf("the helper %d is in process group %d, this process in %d; want a group of its own", pid, group, syscall.Getpgrp())
	}
}

// TestInterruptStopsTheServerQuietly sends SIGINT to the server's process group, as a
// terminal's Ctrl-C does, and SIGTERM, as a supervisor stopping a whole group does, helper
// included: the server stops cleanly, and does not report the helper as stopped (and fall
// back to hashing in its own process) on the way out.
func TestInterruptStopsTheServerQuietly(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			p := startServerWith(t, func(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} },
				"--data", t.TempDir(), "--tcp", "127.0.0.1:0", "--http", "off")
			c := dialLine(t, p.tcpAddr)
			c.mustCall("createSession", map[string]any{"username": "admin", "password": testAdminPassword}, nil) // a hash by the helper
			if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil {
				t.Fatal(err)
			}
			if code := p.waitExit(sig.String()); code != 0 {
				t.Errorf("exit code %d, want 0; logs:\n%s", code, p.logs.String())
			}
			if logs := p.logs.String(); strings.Contains(logs, "helper stopped") || !strings.Contains(logs, `"msg":"stopped"`) {
				t.Errorf("want a clean stop and no word of the helper; logs:\n%s", logs)
			}
		})
	}
}
