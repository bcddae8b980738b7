package engine

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Engine applies sessiond's rules on top of a Store. It is safe for concurrent use.
type Engine struct {
	store     Store
	toucher   TokenToucher       // the store, when it can find and touch a session in one step
	syncer    Syncer             // the store, when its changes are seen before they are durable
	writes    WriteChecker       // the store, when it can refuse changes while it serves reads
	checkSync singleflight.Group // the sync CheckStore waits for, while one runs
	cfg       Config
	clock     Clock
	log       *slog.Logger
	hasher    *hasher
	throttle  *throttle
	pending   pendingWrites // failure counts written after the reply; see login

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// Client describes where a request came from.
type Client struct {
	// Address is the client's IP address (no port), or "stdio" for an embedding process. It
	// is what maxJsonApiSessionsPerIpAddress and login throttling count by.
	Address string
}

// New returns an engine on store. It starts a background loop that removes expired sessions
// from storage; Close stops it.
func New(store Store, cfg Config) (*Engine, error) {
	cfg = withDefaults(cfg)
	if err := validateConfig(cfg); err != nil {
		return nil, err
	}
	h, err := newHasher(cfg.Hash, cfg.MaxConcurrentHashes, cfg.HashTimeout, cfg.Rand, cfg.DeriveKey)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		store:    store,
		cfg:      cfg,
		clock:    cfg.Clock,
		log:      cfg.Logger,
		hasher:   h,
		throttle: newThrottle(cfg.LoginFailuresPerAddress, cfg.LoginThrottleWindow),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	e.toucher, _ = store.(TokenToucher)
	e.syncer, _ = store.(Syncer)
	e.writes, _ = store.(WriteChecker)
	if cfg.HousekeepingInterval > 0 {
		go e.housekeeping(cfg.HousekeepingInterval)
	} else {
		close(e.done)
	}
	return e, nil
}

func withDefaults(cfg Config) Config {
	if cfg.Hash == (HashParams{}) {
		cfg.Hash = DefaultHashParams
	}
	if cfg.HashTimeout <= 0 {
		cfg.HashTimeout = time.Minute
	}
	if cfg.MaxConcurrentHashes <= 0 {
		cfg.MaxConcurrentHashes = runtime.GOMAXPROCS(0)
	}
	if cfg.DefaultLockoutAfter == 0 {
		cfg.DefaultLockoutAfter = 5
	}
	if cfg.DefaultLockoutWaitMinutes == 0 {
		cfg.DefaultLockoutWaitMinutes = 15
	}
	if cfg.LoginFailuresPerAddress == 0 {
		cfg.LoginFailuresPerAddress = 20
	}
	if cfg.LoginThrottleWindow == 0 {
		cfg.LoginThrottleWindow = time.Minute
	}
	if cfg.MaxPreferencesPerUser == 0 {
		cfg.MaxPreferencesPerUser = 1000
	}
	if cfg.HousekeepingInterval == 0 {
		cfg.HousekeepingInterval = 10 * time.Second
	}
	if cfg.NetX.SessionDurationMinutes == 0 {
		cfg.NetX.SessionDurationMinutes = 30
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

func validateConfig(cfg Config) error {
	if d := cfg.NetX.SessionDurationMinutes; d < 1 || d > 35791 {
		return invalid("user.sessionDuration", "must be 0 (meaning 30) or 1–35791 minutes, got %d", d)
	}
	if cfg.NetX.InactivityTimeoutMinutes < 0 {
		return invalid("user.sessionInactivityTimeout", "must be 0 (off) or a positive number of minutes")
	}
	if err := validateSettings(&cfg.Defaults.Settings); err != nil {
		return err
	}
	caps := cfg.Defaults.Caps
	for _, c := range []struct {
		name string
		v    int
	}{{LimitMaxSessions, caps.MaxSessions}, {LimitMaxSessionsPerAddress, caps.MaxSessionsPerAddress}, {LimitMaxSessionsPerUser, caps.MaxSessionsPerUser}} {
		if c.v < 0 {
			return invalid(c.name, "must be 0 (no limit) or positive")
		}
	}
	if cfg.Defaults.MaxSessionLifetime < 0 {
		return invalid("maxSessionLifetimeSeconds", "must be 0 (off) or positive")
	}
	if cfg.Hash.MemoryKiB < 8*uint32(max(cfg.Hash.Parallelism, 1)) || cfg.Hash.Iterations < 1 || cfg.Hash.Parallelism < 1 {
		return invalid("passwordHash", "argon2id needs iterations ≥ 1, parallelism ≥ 1 and memory ≥ 8 KiB per lane")
	}
	return nil
}

// Store returns the engine's store.
func (e *Engine) Store() Store { return e.store }

// Host describes this server, for session objects.
func (e *Engine) Host() HostInfo { return e.cfg.Host }

// Now is the engine's clock.
func (e *Engine) Now() time.Time { return e.clock.Now() }

// CheckStore reports whether the store can serve calls: nil, or the store's error
// (ErrUnavailable when Redis does not answer in time). It looks up a token hash that no
// session has, as every call needs a lookup, and on a store whose changes wait for a sync
// (Syncer) it waits for one: after a sync has failed, such a store refuses every change
// until it is opened again while its lookups still answer. A store that refuses changes for
// now (WriteChecker: a nearly full disk) reports why. A store that gives no answer before
// ctx's deadline is unavailable too.
func (e *Engine) CheckStore(ctx context.Context) error {
	_, err := e.store.SessionByTokenHash(ctx, TokenHash{}, e.clock.Now())
	if errors.Is(err, ErrSessionNotFound) {
		err = nil
		if e.syncer != nil {
			err = e.syncWithin(ctx)
		}
		if err == nil && e.writes != nil {
			err = e.writes.CheckWrites(ctx)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: no answer in time: %w", ErrUnavailable, err)
	}
	return err
}

// syncWithin waits for the store's sync until ctx ends: a sync does not take a context, and
// a disk that hangs holds it. Checks that come while one sync runs wait for that one, so
// probes of a hanging disk do not pile up goroutines.
func (e *Engine) syncWithin(ctx context.Context) error {
	done := e.checkSync.DoChan("sync", func() (any, error) {
		return nil, e.syncer.Sync(context.WithoutCancel(ctx))
	})
	select {
	case r := <-done:
		return r.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ChecksInMemory reports whether a token check is answered from memory: the store finds and
// touches a session in one step (TokenToucher), as the embedded stores do, rather than with
// a round trip, as the Redis store does.
func (e *Engine) ChecksInMemory() bool { return e.toucher != nil }

// Settle returns once the account writes that run after their reply (the failure counts of
// wrong passwords) and were started before the call are in the store. Engine methods wait for
// them where it matters; Settle is for callers that read the store directly.
func (e *Engine) Settle(ctx context.Context) error { return e.pending.wait(ctx) }

// Close stops background work. It does not close the store, which the caller owns.
func (e *Engine) Close() error {
	e.stopOnce.Do(func() { close(e.stop) })
	<-e.done
	e.pending.drain()
	return nil
}

// housekeeping removes expired sessions from storage and forgets old throttle entries. Expired
// sessions are already invisible to every lookup; this only reclaims space.
func (e *Engine) housekeeping(every time.Duration) {
	defer close(e.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.Housekeep(context.Background())
		}
	}
}

// Housekeep runs one round of background maintenance now.
func (e *Engine) Housekeep(ctx context.Context) {
	now := e.clock.Now()
	n, err := e.store.PurgeExpired(ctx, now)
	switch {
	case err == nil && n > 0:
		e.log.Debug("removed expired sessions", "count", n)
	case err == nil || errors.Is(err, context.Canceled):
	case errors.Is(err, ErrUnavailable):
		// The stores log an outage once (Redis not answering, a disk nearly full); a warning
		// every round would bury it.
		e.log.Debug("removing expired sessions: the store is unavailable", "removed", n, "err", err)
	default:
		e.log.Warn("removing expired sessions", "removed", n, "err", err) // the rest next round
	}
	e.throttle.forget(now)
}

// throttle counts failed logins per client address in fixed windows.
type throttle struct {
	limit  int
	window time.Duration
	mu     sync.Mutex
	byAddr map[string]*failureWindow
}

type failureWindow struct {
	start    time.Time
	failures int
}

func newThrottle(limit int, window time.Duration) *throttle {
	return &throttle{limit: limit, window: window, byAddr: make(map[string]*failureWindow)}
}

// blocked reports whether addr has used up its failed logins for the current window.
func (t *throttle) blocked(addr string, now time.Time) bool {
	if t.limit < 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.byAddr[addr]
	return w != nil && now.Before(w.start.Add(t.window)) && w.failures >= t.limit
}

func (t *throttle) fail(addr string, now time.Time) {
	if t.limit < 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.byAddr[addr]
	if w == nil || !now.Before(w.start.Add(t.window)) {
		w = &failureWindow{start: now}
		t.byAddr[addr] = w
	}
	w.failures++
}

func (t *throttle) forget(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for addr, w := range t.byAddr {
		if !now.Before(w.start.Add(t.window)) {
			delete(t.byAddr, addr)
		}
	}
}
