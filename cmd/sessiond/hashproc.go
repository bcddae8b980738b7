package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/sessiond/sessiond/engine"
)

// Password hashes in a helper process.
//
// An argon2id hash is tens of milliseconds of CPU that cannot be interrupted, and Go has no
// priorities among goroutines: a flood of logins running on every core leaves token checks
// waiting behind hashes for up to a scheduler slice each, and their throughput falls by an
// order of magnitude. The kernel does have priorities. So serve computes hashes in a helper,
// `sessiond serve --hash-worker`, started with a lower CPU priority (nice hashWorkerNice):
// with nothing else to do it uses every core, as hashing in the server would; when token
// checks need the CPU they get it first.
//
// The helper is a child of the server, speaks a small binary protocol on its stdin and
// stdout, computes at most as many hashes at once as the server asks for (bounded by
// security.maxConcurrentHashes; a hash given up on in a starved idle helper goes on there
// while the nice-10 helper computes it again, so twice that in the worst case), keeps nothing, and exits when its stdin closes or the
// server dies. If it cannot be started or dies, hashes are computed in the server until it
// is restarted, so logins never fail because of it. On Linux the server runs two helpers,
// one with the SCHED_IDLE policy and one at nice hashWorkerNice for when the first is
// starved (hashers.go).

// hashWorkerNice is the helper's nice value: under contention it gets about a tenth of the
// CPU a normal process gets, so logins slow down but go on.
const hashWorkerNice = 10

// Frames, little-endian. Request: id u64, keyLen u32, iterations u32, memoryKiB u32,
// parallelism u8, len(password) u16, password, len(salt) u8, salt. Reply: id u64, len(key)
// u16, key; a key of length 0 means the helper refused the request.
const maxHashField = 1 << 16

// hashProcess is the server's side of the helper.
type hashProcess struct {
	log  *slog.Logger
	path string
	idle bool // the helper runs with the SCHED_IDLE policy (hashidle_linux.go)
	// answered, if set, is told of every reply (whether its caller still waited, and how
	// long it took), and of the helper's exit (waited false, took 0). It is called without
	// mu held.
	answered func(waited bool, took time.Duration)

	mu      sync.Mutex
	proc    *os.Process   // the last helper started, nil before the first
	w       *bufio.Writer // nil while no helper runs
	stdin   io.Closer
	pending map[uint64]*pendingHash
	nextID  uint64
	retryAt time.Time // no restart before this after a failure
	closed  bool
	done    chan struct{} // closed when the current helper has exited and been reaped
}

// newHashProcess prepares a helper from the sessiond binary at path; its first hash starts
// it. With idle set it runs with the SCHED_IDLE policy (Linux), else at nice hashWorkerNice.
func newHashProcess(path string, log *slog.Logger, idle bool) *hashProcess {
	return &hashProcess{log: log, path: path, idle: idle, pending: map[uint64]*pendingHash{}}
}

// startHashProcessAt starts a nice-10 helper from the sessiond binary at path.
func startHashProcessAt(path string, log *slog.Logger) (*hashProcess, error) {
	h := newHashProcess(path, log, false)
	if err := h.start(); err != nil {
		return nil, err
	}
	return h, nil
}

// start starts the helper h prepared by newHashProcess.
func (h *hashProcess) start() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.startLocked()
}

// startLocked starts a helper process; h.mu is held.
func (h *hashProcess) startLocked() error {
	// The helper reads its stdin until it ends, which happens when the server closes it or
	// dies, so it never outlives the server.
	cmd := exec.Command(h.path, "serve", "--hash-worker")
	cmd.Stderr = os.Stderr
	ownProcessGroup(cmd)
	cmd.Env = helperEnv(os.Environ(), h.idle)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		stdin.Close()
		return err
	}
	if err := cmd.Start(); err != nil {
		stdin.Close()
		stdout.Close()
		return fmt.Errorf("starting the hash helper: %w", err)
	}
	h.w, h.stdin, h.proc = bufio.NewWriter(stdin), stdin, cmd.Process
	done := make(chan struct{})
	h.done = done
	go h.readReplies(cmd, stdout, done)
	return nil
}

// helperEnv is the environment of a helper: the server's without its secrets (every
// SESSIOND_ variable but hashWorkerCPUs: the admin password, the encryption key, a token),
// which would otherwise sit in clear in /proc/PID/environ of a process that never needs them,
// and with hashWorkerIdle set for the idle helper.
func helperEnv(environ []string, idle bool) []string {
	env := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "SESSIOND_") || strings.HasPrefix(kv, hashWorkerCPUs+"=") {
			env = append(env, kv)
		}
	}
	if idle {
		env = append(env, hashWorkerIdle+"=1")
	}
	return env
}

// hashWorkerNiced marks a helper that already lowered its priority; hashWorkerIdle asks the
// helper for the SCHED_IDLE policy instead of nice hashWorkerNice.
const (
	hashWorkerNiced = "SESSIOND_HASH_WORKER_NICED"
	hashWorkerIdle  = "SESSIOND_HASH_WORKER_IDLE"
	// hashWorkerCPUs is the CPU list a helper runs on when serve --cpus pinned the server
	// elsewhere: the CPUs the server started with.
	hashWorkerCPUs = "SESSIOND_HASH_WORKER_CPUS"
)

// lowerPriority gives the helper process, every thread of it, the nice value hashWorkerNice,
// or the SCHED_IDLE policy when hashWorkerIdle is set, and the CPUs of hashWorkerCPUs when
// set. On Linux priority and CPUs belong to a thread, and threads inherit them from the
// thread that makes them; a Go program has several threads before main runs. So the helper
// lowers the priority of its current thread (and pins it) and executes itself again from it:
// the new program's threads all descend from that thread. If that fails the helper runs at
// normal priority (and pins all its threads).
func lowerPriority(stderr io.Writer) {
	if os.Getenv(hashWorkerNiced) != "" {
		return
	}
	cpus := os.Getenv(hashWorkerCPUs)
	path, err := os.Executable()
	if err == nil {
		runtime.LockOSThread()
		// The CPUs, like the priority, pass from this thread to the next program's threads.
		if cpus != "" {
			if err := pinThread(cpus); err != nil {
				fmt.Fprintln(stderr, "sessiond: the password hash helper stays on the server's CPUs:", err)
				cpus = ""
			}
		}
		if err = lowerThread(os.Getenv(hashWorkerIdle) != ""); err == nil {
			err = syscall.Exec(path, os.Args, append(os.Environ(), hashWorkerNiced+"=1"))
		}
	}
	fmt.Fprintln(stderr, "sessiond: the password hash helper runs at normal priority:", err)
	if cpus != "" {
		// Without the new program, only this thread has the CPUs: give them to every thread.
		if _, _, err := pinTo(cpus); err != nil {
			fmt.Fprintln(stderr, "sessiond: the password hash helper stays on the server's CPUs:", err)
		}
	}
}

// readReplies hands the helper's replies to their callers until it exits; then the pending
// callers compute their hashes themselves.
func (h *hashProcess) readReplies(cmd *exec.Cmd, stdout io.Reader, done chan struct{}) {
	rd := bufio.NewReader(stdout)
	var head [10]byte
	var err error
	for {
		if _, err = io.ReadFull(rd, head[:]); err != nil {
			break
		}
		id := binary.LittleEndian.Uint64(head[:8])
		key := make([]byte, binary.LittleEndian.Uint16(head[8:]))
		if _, err = io.ReadFull(rd, key); err != nil {
			break
		}
		h.mu.Lock()
		ph := h.pending[id]
		delete(h.pending, id)
		h.mu.Unlock()
		if ph == nil {
			continue
		}
		if h.answered != nil {
			h.answered(ph.reply != nil, time.Since(ph.sent))
		}
		if ph.reply != nil {
			ph.reply <- key // buffered
		}
	}
	h.mu.Lock()
	if h.done == done {
		h.w, h.stdin = nil, nil
		for id, ph := range h.pending {
			if ph.reply != nil {
				close(ph.reply)
			}
			delete(h.pending, id)
		}
		if !h.closed {
			h.log.Warn("the password hash helper stopped; hashing in the server until it restarts", "err", err)
			h.retryAt = time.Now().Add(time.Second)
		}
	}
	h.mu.Unlock()
	if h.answered != nil {
		h.answered(false, 0) // a helper that died is not starved: the next hash restarts it
	}
	_ = cmd.Wait()
	close(done)
}

// pendingHash is a request the helper has not answered yet.
type pendingHash struct {
	reply chan []byte // nil once its caller stopped waiting
	sent  time.Time
}

// derive is an engine.DeriveKeyFunc: the helper computes the key, or the server does when
// there is no helper.
func (h *hashProcess) derive(ctx context.Context, password, salt []byte, p engine.HashParams, keyLen uint32) ([]byte, error) {
	return h.deriveWithin(ctx, password, salt, p, keyLen, 0, nil)
}

// errHashLate is deriveWithin's error when it stopped waiting for the helper.
var errHashLate = errors.New("the password hash helper did not answer in time")

// deriveWithin is derive, but if patience is not 0, the helper has not answered within it
// and wait says not to wait on, it stops waiting and returns errHashLate. wait is asked
// every patience.
func (h *hashProcess) deriveWithin(ctx context.Context, password, salt []byte, p engine.HashParams, keyLen uint32, patience time.Duration, wait func() bool) ([]byte, error) {
	inProcess := func() ([]byte, error) {
		return argon2.IDKey(password, salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen), nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(password) >= maxHashField || len(salt) > 255 || keyLen >= maxHashField {
		return inProcess()
	}
	id, reply := h.send(password, salt, p, keyLen)
	if reply == nil {
		return inProcess()
	}
	var timer *time.Timer
	var timeout <-chan time.Time
	if patience > 0 {
		timer = time.NewTimer(patience)
		defer timer.Stop()
		timeout = timer.C
	}
	for {
		select {
		case key, ok := <-reply:
			if !ok || len(key) != int(keyLen) {
				return inProcess()
			}
			return key, nil
		case <-ctx.Done():
			h.forget(id)
			return nil, ctx.Err()
		case <-timeout:
			if wait != nil && wait() {
				timer.Reset(patience)
				continue
			}
			h.forget(id)
			return nil, errHashLate
		}
	}
}

// forget stops waiting for the reply to request id; the reply, when it comes, is dropped.
func (h *hashProcess) forget(id uint64) {
	h.mu.Lock()
	if ph := h.pending[id]; ph != nil {
		ph.reply = nil
	}
	h.mu.Unlock()
}

// send writes one request and returns the channel its reply comes on, or nil when there is
// no helper.
func (h *hashProcess) send(password, salt []byte, p engine.HashParams, keyLen uint32) (uint64, chan []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return 0, nil
	}
	if h.w == nil {
		if time.Now().Before(h.retryAt) {
			return 0, nil
		}
		first := h.proc == nil
		if err := h.startLocked(); err != nil {
			h.retryAt = time.Now().Add(time.Second)
			h.log.Warn("cannot start the password hash helper", "err", err, "idle", h.idle)
			return 0, nil
		}
		if first {
			h.log.Info("started the password hash helper", "idle", h.idle)
		} else {
			h.log.Info("restarted the password hash helper", "idle", h.idle)
		}
	}
	h.nextID++
	id := h.nextID
	var head [27]byte
	binary.LittleEndian.PutUint64(head[0:], id)
	binary.LittleEndian.PutUint32(head[8:], keyLen)
	binary.LittleEndian.PutUint32(head[12:], p.Iterations)
	binary.LittleEndian.PutUint32(head[16:], p.MemoryKiB)
	head[20] = p.Parallelism
	binary.LittleEndian.PutUint16(head[21:], uint16(len(password)))
	_, _ = h.w.Write(head[:23])
	_, _ = h.w.Write(password)
	_ = h.w.WriteByte(byte(len(salt)))
	_, _ = h.w.Write(salt)
	if err := h.w.Flush(); err != nil {
		return 0, nil // the reader notices the exit and cleans up
	}
	reply := make(chan []byte, 1)
	h.pending[id] = &pendingHash{reply: reply, sent: time.Now()}
	return id, reply
}

// close ends the helper's input and waits for it to exit, for a second before it kills it.
func (h *hashProcess) close() {
	h.mu.Lock()
	h.closed = true
	stdin, done, proc := h.stdin, h.done, h.proc
	h.mu.Unlock()
	if stdin != nil {
		_ = stdin.Close()
	}
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(time.Second):
		// A helper starved of CPU (the idle one, on a busy machine) may take long to see
		// the end of its input, and nothing waits for its answers any more.
		_ = proc.Kill()
		select {
		case <-done:
		case <-time.After(time.Second):
		}
	}
}

// runHashWorker is `sessiond serve --hash-worker`, the helper: it answers hash requests on
// stdin with keys on stdout until stdin ends.
func runHashWorker(stdin io.Reader, stdout, stderr io.Writer) int {
	lowerPriority(stderr)
	rd := bufio.NewReader(stdin)
	out := bufio.NewWriter(stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, runtime.NumCPU())
	reply := func(id uint64, key []byte) {
		mu.Lock()
		defer mu.Unlock()
		var head [10]byte
		binary.LittleEndian.PutUint64(head[:], id)
		binary.LittleEndian.PutUint16(head[8:], uint16(len(key)))
		_, _ = out.Write(head[:])
		_, _ = out.Write(key)
		_ = out.Flush()
	}
	for {
		var head [23]byte
		if _, err := io.ReadFull(rd, head[:]); err != nil {
			break
		}
		id := binary.LittleEndian.Uint64(head[0:])
		keyLen := binary.LittleEndian.Uint32(head[8:])
		p := engine.HashParams{
			Iterations:  binary.LittleEndian.Uint32(head[12:]),
			MemoryKiB:   binary.LittleEndian.Uint32(head[16:]),
			Parallelism: head[20],
		}
		password := make([]byte, binary.LittleEndian.Uint16(head[21:]))
		if _, err := io.ReadFull(rd, password); err != nil {
			break
		}
		saltLen, err := rd.ReadByte()
		if err != nil {
			break
		}
		salt := make([]byte, saltLen)
		if _, err := io.ReadFull(rd, salt); err != nil {
			break
		}
		// The same bounds as the engine's configuration check: never panic, never allocate
		// more than a configured hash could.
		if keyLen == 0 || keyLen >= maxHashField || p.Iterations < 1 || p.Iterations > 1000 || p.Parallelism < 1 ||
			p.MemoryKiB < 8*uint32(p.Parallelism) || p.MemoryKiB > 4<<20 {
			reply(id, nil)
			continue
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			key := argon2.IDKey(password, salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen)
			clear(password)
			reply(id, key)
		})
	}
	wg.Wait()
	return 0
}
