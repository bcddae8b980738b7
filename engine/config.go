package engine

import (
	"context"
	"io"
	"log/slog"
	"time"
)

// Defaults are the jsonActionApiDefaults of services.json: the settings createSession
// sessions start with, the session caps, and whether permanent sessions are allowed.
type Defaults struct {
	Settings SessionSettings
	Caps     Caps
	// EnablePermanentSessions allows createSession with permanentSession: true.
	EnablePermanentSessions bool
	// MaxSessionLifetime is an absolute cap from creation on temporary sessions; 0 is off.
	MaxSessionLifetime time.Duration
}

// NetXProperties are the sessionKeyProperties of services.json, for authenticate sessions.
type NetXProperties struct {
	// SessionDurationMinutes is the idle timeout of a session key (1–35791; 0 means 30).
	SessionDurationMinutes int
	// InactivityTimeoutMinutes ends a key one minute after that long without a call other than
	// a tickle; 0 is off.
	InactivityTimeoutMinutes int
	// NoTickle makes tickles extend nothing.
	NoTickle bool
	// Persistence (user.sessionPersistence) means keys are shared between nodes; it needs a
	// shared store and is checked by the command, not the engine.
	Persistence bool
}

// HashParams are the argon2id parameters for new password hashes. Existing hashes keep the
// parameters they were made with.
type HashParams struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
}

// DefaultHashParams is the OWASP minimum for argon2id: 19 MiB, 2 iterations, 1 lane.
var DefaultHashParams = HashParams{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1}

// Clock tells the time. Tests inject a fake one.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// SystemClock is the real clock.
var SystemClock Clock = systemClock{}

// HostInfo describes this server in session objects.
type HostInfo struct {
	Hostname    string
	UUID        string
	IPAddresses []string
}

// Config is everything the engine needs besides its store. The zero value of each field
// means its documented default.
type Config struct {
	Defaults Defaults
	NetX     NetXProperties
	Hash     HashParams
	// MaxConcurrentHashes bounds argon2 computations running at once (default: GOMAXPROCS).
	MaxConcurrentHashes int
	// HashTimeout bounds the wait for one hash (default: a minute, far beyond any sane
	// configuration): a hash helper that stopped answering fails logins instead of holding
	// every hash slot for good.
	HashTimeout time.Duration
	// DefaultLockoutAfter and DefaultLockoutWaitMinutes apply to accounts created without
	// their own lockout settings (defaults 5 and 15).
	DefaultLockoutAfter       int
	DefaultLockoutWaitMinutes int
	// LoginFailuresPerAddress failed logins within LoginThrottleWindow from one client address
	// make further logins from it fail with ErrLoginThrottled until the window passes
	// (defaults 20 and one minute). A negative value turns throttling off.
	LoginFailuresPerAddress int
	LoginThrottleWindow     time.Duration
	// MaxPreferencesPerUser bounds the labels a user may store (default 1000).
	MaxPreferencesPerUser int
	// HousekeepingInterval is how often expired sessions are removed from storage and pending
	// last-use times flushed (default 10 s). Negative turns the background loop off.
	HousekeepingInterval time.Duration
	Host                 HostInfo
	Clock                Clock
	// Rand supplies token and salt randomness (default crypto/rand).
	Rand   io.Reader
	Logger *slog.Logger
	// DeriveKey computes argon2id keys (default: argon2.IDKey in this process). sessiond
	// serve hands them to a helper process of lower CPU priority, so that a flood of logins
	// cannot starve token checks of CPU.
	DeriveKey DeriveKeyFunc
}

// DeriveKeyFunc returns the argon2id key of password and salt with parameters p, as
// argon2.IDKey(password, salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen) does. It may
// be called concurrently (at most MaxConcurrentHashes at once) and must not keep password. Its
// context is not cancelled when the caller gives up: a hash holds its slot until it is done,
// or until HashTimeout ends the context.
type DeriveKeyFunc func(ctx context.Context, password, salt []byte, p HashParams, keyLen uint32) ([]byte, error)
