package main

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/enginetest"
)

// startTestHashProcess starts the helper from the sessiond binary the end-to-end tests build.
func startTestHashProcess(t *testing.T) (*hashProcess, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	h, err := startHashProcessAt(binPath, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.close)
	return h, logs
}

func wantKey(password, salt []byte, p engine.HashParams, keyLen uint32) []byte {
	return argon2.IDKey(password, salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen)
}

// TestHashProcessKeys checks that the helper computes the same keys as argon2.IDKey, many at
// once, for several parameters and passwords.
func TestHashProcessKeys(t *testing.T) {
	h, _ := startTestHashProcess(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			p := engine.HashParams{MemoryKiB: 64 + 8*uint32(i%5), Iterations: 1 + uint32(i%3), Parallelism: 1 + uint8(i%2)}
			password := []byte(strings.Repeat("pw", i))
			salt := bytes.Repeat([]byte{byte(i)}, 16)
			got, err := h.derive(ctx, password, salt, p, 32)
			if err != nil || !bytes.Equal(got, wantKey(password, salt, p, 32)) {
				t.Errorf("key %d: %x, %v", i, got, err)
			}
		})
	}
	wg.Wait()
}

// TestHashProcessPriority checks that every thread of the helper has the lower priority and
// no thread of this process got it.
func TestHashProcessPriority(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("thread priorities are read from /proc")
	}
	h, _ := startTestHashProcess(t)
	if _, err := h.derive(context.Background(), []byte("x"), []byte("salt-salt-salt-1"), enginetest.CheapHash, 32); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	pid := h.pid
	h.mu.Unlock()
	check := func(pid, want int) {
		tasks, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/stat")
		if err != nil || len(tasks) == 0 {
			t.Fatalf("threads of %d: %v", pid, err)
		}
		for _, task := range tasks {
			b, err := os.ReadFile(task)
			if err != nil {
				continue // the thread ended
			}
			// Field 19 is the nice value; the command name (field 2) has no spaces here.
			fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
			if nice := fields[16]; nice != strconv.Itoa(want) {
				t.Errorf("%s: nice %s, want %d", task, nice, want)
			}
		}
	}
	check(pid, hashWorkerNice)
	check(os.Getpid(), syscallNice(t))
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
	pid := h.pid
	h.mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "helper stopped") {
		if time.Now().After(deadline) {
			t.Fatalf("the death went unnoticed: %s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, err := h.derive(ctx, password, salt, enginetest.CheapHash, 32); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("while dead: %x, %v", got, err)
	}
	for !strings.Contains(logs.String(), "restarted the password hash helper") {
		if time.Now().After(deadline) {
			t.Fatalf("no restart: %s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
		if got, err := h.derive(ctx, password, salt, enginetest.CheapHash, 32); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("restarting: %x, %v", got, err)
		}
	}
	h.mu.Lock()
	restarted := h.pid
	h.mu.Unlock()
	if restarted == pid {
		t.Fatal("no new helper")
	}
}

// TestHashProcessCancel checks that a caller whose context ends stops waiting.
func TestHashProcessCancel(t *testing.T) {
	h, _ := startTestHashProcess(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	slow := engine.HashParams{MemoryKiB: 32 << 10, Iterations: 3, Parallelism: 1}
	start := time.Now()
	if _, err := h.derive(ctx, []byte("x"), []byte("salt-salt-salt-3"), slow, 32); err != context.DeadlineExceeded {
		t.Fatalf("derive past its deadline: %v", err)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("derive returned %v after its deadline", waited)
	}
}

// TestHashWorkerRefusesBadParams checks that the helper answers parameters argon2 would panic
// on with an empty key, and the server then computes (or refuses) them itself.
func TestHashWorkerRefusesBadParams(t *testing.T) {
	var in, out bytes.Buffer
	h := &hashProcess{pending: map[uint64]chan []byte{}}
	h.w = bufio.NewWriter(&in)
	h.send([]byte("pw"), []byte("salt"), engine.HashParams{MemoryKiB: 64, Iterations: 0, Parallelism: 1}, 32)
	h.send([]byte("pw"), []byte("salt"), enginetest.CheapHash, 16)
	t.Setenv(hashWorkerNiced, "1") // no re-execution of the test binary
	if code := runHashWorker(&in, &out, &bytes.Buffer{}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	replies := map[uint64]int{}
	b := out.Bytes()
	for len(b) >= 10 {
		n := int(b[8]) | int(b[9])<<8
		replies[uint64(b[0])] = n
		b = b[10+n:]
	}
	if replies[1] != 0 || replies[2] != 16 || len(replies) != 2 {
		t.Fatalf("replies (id: key length): %v", replies)
	}
}
