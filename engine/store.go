package engine

import (
	"context"
	"time"
)

// Store keeps accounts, sessions and preferences. Every implementation must pass the
// conformance suite in engine/storetest.
//
// Durability contract: when a mutating method (everything except Touch) returns nil, the
// change is durable: a crash immediately afterwards loses nothing. Touch is the exception: it
// records use in memory and is persisted lazily (by Flush, or periodically by the
// implementation), so after a crash a session's last-use times may be older than they were.
// Older times only ever make a session expire sooner, never later.
//
// Usernames passed to a Store are always canonical (see UserKey). Records returned are copies
// the caller may keep and modify.
type Store interface {
	AccountStore
	SessionStore
	PreferenceStore

	// Flush persists pending Touch updates.
	Flush(ctx context.Context) error
	// Close flushes and releases the store. The store is unusable afterwards.
	Close() error
}

// AccountStore holds accounts keyed by their canonical username.
type AccountStore interface {
	// CreateAccount stores a new account. It returns ErrAccountExists if the key is taken.
	CreateAccount(ctx context.Context, a *Account) error
	// GetAccount returns ErrAccountNotFound if there is no such account.
	GetAccount(ctx context.Context, userKey string) (*Account, error)
	// UpdateAccount atomically applies fn to the current account and stores the result. If fn
	// returns an error nothing is written and that error is returned. It returns
	// ErrAccountNotFound if there is no such account, and ErrLastAdmin, writing nothing, if
	// fn takes the admin role from the only account that has it. fn may run more than once
	// (a store retries after a conflicting write), each time on a fresh copy, so it must have
	// no effects beyond its argument other than ones that are safe to repeat (logging).
	UpdateAccount(ctx context.Context, userKey string, fn func(*Account) error) (*Account, error)
	// DeleteAccounts removes the named accounts that exist, with all their sessions
	// (permanent ones too) and preferences, and returns the keys removed. If removing them
	// would leave no account with the admin role while one exists now, no account is removed
	// and it returns ErrLastAdmin. A store may remove many sessions in steps before the
	// accounts, which other callers can see between, checking that rule before each step: a
	// failure, or a demotion meanwhile that makes the rule refuse, leaves the sessions of the
	// steps before removed. The accounts themselves go at once.
	DeleteAccounts(ctx context.Context, userKeys []string) ([]string, error)
	// ListAccounts returns the accounts whose key starts with any of prefixes (all accounts
	// when prefixes is empty), sorted by key.
	ListAccounts(ctx context.Context, prefixes []string) ([]*Account, error)
	// CountAccounts returns how many accounts the store holds and how many of them have the
	// admin role, without listing them.
	CountAccounts(ctx context.Context) (accounts, admins int, err error)
}

// SessionStore holds sessions, indexed by sessionId, by token hash and by username.
//
// A session is live at time now when !s.Expired(now). Expired sessions must not be returned
// by any method nor counted against any cap, whether or not they have been removed yet.
type SessionStore interface {
	// InsertSession atomically checks the caps against the live sessions at now and stores s.
	// A cap of 0 is no cap; a session with an empty ClientAddress is not counted against
	// MaxSessionsPerAddress. When a cap would be exceeded it stores nothing and returns a
	// *LimitError naming the cap. The account must exist (ErrAccountNotFound otherwise), so a
	// session can never outlive the deletion of its account.
	InsertSession(ctx context.Context, s *Session, caps Caps, now time.Time) error
	// SessionByTokenHash returns the live session whose token hashes to h, or
	// ErrSessionNotFound.
	SessionByTokenHash(ctx context.Context, h TokenHash, now time.Time) (*Session, error)
	// SessionByID returns the live session with that sessionId, or ErrSessionNotFound.
	SessionByID(ctx context.Context, id string, now time.Time) (*Session, error)
	// UpdateSession atomically applies fn to the live session with that id and stores the
	// result (durably). It returns ErrSessionNotFound if there is no such live session, or the
	// error of fn, in which case nothing is written. Like UpdateAccount's, fn may run more
	// than once.
	UpdateSession(ctx context.Context, id string, now time.Time, fn func(*Session) error) (*Session, error)
	// DeleteSessions removes the sessions with these ids and returns how many live ones it
	// removed. Unknown ids are not an error. A store may remove many in several steps, which
	// other callers can see between; when it fails part of the way, the sessions removed
	// before stay removed and are counted.
	DeleteSessions(ctx context.Context, ids []string, now time.Time) (int, error)
	// ListSessions returns the live sessions of the given canonical usernames (all sessions
	// when userKeys is empty), sorted by creation time then id. The result is not bounded:
	// callers that face clients must apply their own limits.
	ListSessions(ctx context.Context, userKeys []string, now time.Time) ([]*Session, error)
	// Touch records use of a session: it sets LastAccessedAt to at (and LastActiveAt too when
	// active), never moving either backwards. It is cheap, never waits for the disk, and
	// ignores unknown sessions and sessions already expired at at (use cannot revive them).
	// It is persisted lazily (see Store). The engine touches only a session it has just
	// found live at at; a store that records uses to write them later (redisstore) is exact
	// for such uses, and for others may lose a use but not revive a session.
	Touch(ctx context.Context, id string, at time.Time, active bool) error
	// PurgeExpired removes expired sessions from storage and returns how many it removed,
	// also when it fails part of the way.
	PurgeExpired(ctx context.Context, now time.Time) (int, error)
}

// TokenToucher is a store that can find a session by token hash and record its use in one
// step, as the engine does on every authenticated request: one lookup and one lock instead
// of two. The engine uses it when the store has it, and SessionByTokenHash then Touch
// otherwise.
type TokenToucher interface {
	// TouchByTokenHash does what Touch(ctx, id, at, active) does to the session live at at
	// whose token hashes to h, and returns that session as SessionByTokenHash(ctx, h, at)
	// would right after; ErrSessionNotFound if there is none.
	TouchByTokenHash(ctx context.Context, h TokenHash, at time.Time, active bool) (*Session, error)
	// TouchToken does what TouchByTokenHash does without returning the session, for callers
	// that only need to know it is live (PingSession, on every request): no copy is made.
	TouchToken(ctx context.Context, h TokenHash, at time.Time, active bool) error
}

// Syncer is a store whose changes are seen before they are durable: badgerstore makes a
// change in memory, then waits for a group sync before its call returns. A caller that finds
// something already changed (a session already deleted) may be seeing another caller's
// change that is not durable yet. Sync returns once every change seen before the call is
// durable; the engine calls it before it answers on the strength of such a finding.
type Syncer interface {
	Sync(ctx context.Context) error
}

// WriteChecker is a store that can refuse changes while it still serves reads and token
// checks: badgerstore refuses them while its disk is nearly full. CheckWrites returns the
// error a change would fail with now (ErrUnavailable wrapped), or nil; it does not write.
type WriteChecker interface {
	CheckWrites(ctx context.Context) error
}

// PreferenceStore holds per-user label/value preferences.
type PreferenceStore interface {
	// SetPreference stores value under label for the user. It returns ErrAccountNotFound if
	// the account does not exist, and ErrTooManyPreferences if the user already has
	// maxPerUser labels and label is new.
	SetPreference(ctx context.Context, userKey, label, value string, maxPerUser int) error
	// GetPreference returns the value and true, or "" and false when the label is not set.
	GetPreference(ctx context.Context, userKey, label string) (string, bool, error)
}

// Caps are the session limits of jsonActionApiDefaults; 0 means no limit.
type Caps struct {
	MaxSessions           int
	MaxSessionsPerAddress int
	MaxSessionsPerUser    int
}
