package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/sessiond/sessiond/engine"
)

// hashers are the two helpers of a Linux server. Hashes go to a helper with the SCHED_IDLE
// policy, which the kernel treats as idle time: a token check that wakes up takes its CPU
// at once, where a nice-10 thread may keep the CPU for the rest of its time slice. Beside a
// login flood, token checks then lost 9 % against their run alone instead of 18 % (16 and
// 15 alternated windows on the 2-vCPU VM), for 40 logins/s beside them instead of 42, and
// as many alone (56-58/s).
//
// A SCHED_IDLE process gets almost nothing while the CPUs are busy, and an unprivileged one
// cannot be moved back. So when a hash has waited for the idle helper longer than its
// patience (hashPatience) and the helper has answered nothing for as long, it is asked of a
// second helper at nice 10, as the single helper was before, and so are the hashes after it
// until the idle helper answers again. A helper that answers, however slowly, is waited for:
// it is only being given less CPU than token checks. The second helper starts when first
// needed.
type hashers struct {
	idle, niced *hashProcess
	log         *slog.Logger

	mu       sync.Mutex
	starving bool          // the idle helper is given up on until it answers again
	typical  time.Duration // moving average of the idle helper's answers in time
	lastSeen time.Time     // when the idle helper last answered, or started
	patience time.Duration // when set (tests), replaces hashPatience's estimate
}

// Bounds of hashPatience.
const (
	minHashPatience   = 250 * time.Millisecond
	firstHashPatience = 2 * time.Second // before the idle helper has answered in time once
)

// startHashers starts the idle helper from the sessiond binary at path, and prepares the
// nice-10 one.
func startHashers(path string, log *slog.Logger) (*hashers, error) {
	hs := &hashers{log: log, lastSeen: time.Now(), niced: newHashProcess(path, log, false),
		idle: newHashProcess(path, log, true)}
	hs.idle.answered = hs.answered
	if err := hs.idle.start(); err != nil {
		return nil, err
	}
	return hs, nil
}

// startPasswordHashing starts the helpers of this machine: two on Linux, else one at nice
// hashWorkerNice. It returns the engine's DeriveKey and what stops them.
func startPasswordHashing(log *slog.Logger) (engine.DeriveKeyFunc, func(), error) {
	path, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	if !idleHelper {
		h, err := startHashProcessAt(path, log)
		if err != nil {
			return nil, nil, err
		}
		return h.derive, h.close, nil
	}
	hs, err := startHashers(path, log)
	if err != nil {
		return nil, nil, err
	}
	return hs.derive, hs.close, nil
}

// answered hears of every reply of the idle helper, and of its exit.
func (hs *hashers) answered(waited bool, took time.Duration) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.starving {
		hs.log.Debug("password hash helper: the idle helper answers again")
	}
	hs.starving = false
	// lastSeen only moves forward: a test sets it ahead ("it always just answered"), and an
	// answer must not pull it back between the helper's reply and its delivery to the caller.
	if now := time.Now(); now.After(hs.lastSeen) {
		hs.lastSeen = now
	}
	if !waited {
		return // how long a hash given up on took says nothing of the usual time
	}
	if hs.typical == 0 {
		hs.typical = took
	} else {
		hs.typical += (took - hs.typical) / 8
	}
}

// hashPatience is how long a hash may take in the idle helper: eight times the usual, at
// least minHashPatience. hs.mu is held.
func (hs *hashers) hashPatience() time.Duration {
	switch {
	case hs.patience > 0:
		return hs.patience
	case hs.typical == 0:
		return firstHashPatience
	default:
		return max(minHashPatience, 8*hs.typical)
	}
}

// derive is an engine.DeriveKeyFunc.
func (hs *hashers) derive(ctx context.Context, password, salt []byte, p engine.HashParams, keyLen uint32) ([]byte, error) {
	hs.mu.Lock()
	starving, patience := hs.starving, hs.hashPatience()
	hs.mu.Unlock()
	if !starving {
		progressing := func() bool {
			hs.mu.Lock()
			defer hs.mu.Unlock()
			return time.Since(hs.lastSeen) < patience
		}
		key, err := hs.idle.deriveWithin(ctx, password, salt, p, keyLen, patience, progressing)
		if !errors.Is(err, errHashLate) {
			return key, err
		}
		hs.mu.Lock()
		if !hs.starving {
			hs.log.Debug("password hash helper: the idle helper is starved; hashing at nice 10", "waited", patience)
		}
		hs.starving = true
		hs.mu.Unlock()
	}
	return hs.niced.derive(ctx, password, salt, p, keyLen)
}

// close stops both helpers, at once.
func (hs *hashers) close() {
	var wg sync.WaitGroup
	wg.Go(hs.idle.close)
	hs.niced.close()
	wg.Wait()
}
