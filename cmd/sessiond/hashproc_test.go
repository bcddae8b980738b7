package main

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/enginetest"
	"github.com/sessiond/sessiond/internal/syncbuf"
)

// startTestHashProcess starts the helper from the sessiond binary the end-to-end tests build.
func startTestHashProcess(t *testing.T) (*hashProcess, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
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

// helperPID is the process id of h's helper, 0 before it started one.
func helperPID(h *hashProcess) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.proc == nil {
		return 0
	}
	return h.proc.Pid
}

// startTestHashers starts the two helpers from the sessiond binary the end-to-end tests build.
func startTestHashers(t *testing.T) *hashers {
	t.Helper()
	hs, err := startHashers(binPath, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hs.close)
	return hs
}

// sentTo is how many requests h has sent to its helpers.
func sentTo(h *hashProcess) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nextID
}

// isStarving reports whether hs gave up on its idle helper.
func isStarving(hs *hashers) bool {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.starving
}

// TestHashersWaitForProgress checks that a hash waiting longer than the patience is still
// left to the idle helper while the helper answers other hashes: it is slow, not starved.
func TestHashersWaitForProgress(t *testing.T) {
	hs := startTestHashers(t)
	slow := engine.HashParams{MemoryKiB: 16 << 10, Iterations: 2, Parallelism: 1}
	password, salt := []byte("secret"), []byte("salt-salt-salt-5")
	hs.mu.Lock()
	hs.patience = time.Microsecond
	hs.lastSeen = time.Now().Add(time.Hour) // as if it had just answered, at every check
	hs.mu.Unlock()
	if got, err := hs.derive(context.Background(), password, salt, slow, 32); err != nil || !bytes.Equal(got, wantKey(password, salt, slow, 32)) {
		t.Fatalf("slow idle hash: %x, %v", got, err)
	}
	hs.mu.Lock()
	starving := hs.starving
	hs.mu.Unlock()
	if starving || helperPID(hs.niced) != 0 {
		t.Errorf("a progressing idle helper was given up on (starving %v, nice-10 helper %d)", starving, helperPID(hs.niced))
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
	h := &hashProcess{pending: map[uint64]*pendingHash{}}
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
