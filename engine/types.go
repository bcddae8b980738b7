package engine

import (
	"strings"
	"time"
)

// TokenHash is the SHA-256 of a session token. Stores keep only this, never the token.
type TokenHash [32]byte

// RoleAdmin is the only role: an admin account sees and manages every account and session.
const RoleAdmin = "admin"

// UserKey is the canonical form of a username: usernames match case-insensitively.
func UserKey(username string) string { return strings.ToLower(username) }

// Account is a user or application that can log in.
type Account struct {
	// Username as it was created; its canonical key is UserKey(Username).
	Username    string   `json:"username"`
	Description string   `json:"description,omitempty"`
	Roles       []string `json:"roles,omitempty"`
	// PasswordHash is the encoded argon2id hash (parameters, salt, key). Never sent to clients.
	PasswordHash string `json:"passwordHash"`
	// LockoutAfter failed logins in a row lock the account for LockoutWait; 0 disables lockout.
	LockoutAfter       int       `json:"lockoutAfter"`
	LockoutWaitMinutes int       `json:"lockoutWaitMinutes"`
	FailedAttempts     int       `json:"failedAttempts,omitempty"`
	LockedUntil        time.Time `json:"lockedUntil,omitzero"`
	CreatedAt          time.Time `json:"createdAt"`
	LastLoginAt        time.Time `json:"lastLoginAt,omitzero"`
	PasswordChangedAt  time.Time `json:"passwordChangedAt,omitzero"`
}

// Key returns the account's canonical username.
func (a *Account) Key() string { return UserKey(a.Username) }

// IsAdmin reports whether the account has the admin role.
func (a *Account) IsAdmin() bool {
	for _, r := range a.Roles {
		if r == RoleAdmin {
			return true
		}
	}
	return false
}

// Clone returns a deep copy.
func (a *Account) Clone() *Account {
	c := *a
	c.Roles = append([]string(nil), a.Roles...)
	return &c
}

// ResponseOptions are the default responseOptions of a session.
type ResponseOptions struct {
	// BinaryFormat is how binary values are returned: "hex", "base64" or "byteArray".
	BinaryFormat string `json:"binaryFormat,omitempty"`
	// DataFormat is how rows are returned: "arrays" or "objects".
	DataFormat string `json:"dataFormat,omitempty"`
	// NumberFormat is how numbers are returned: "number" or "string".
	NumberFormat string `json:"numberFormat,omitempty"`
}

// SessionSettings are the settings a client chooses at createSession and may change with
// alterSession.
type SessionSettings struct {
	Description                  string          `json:"description"`
	DefaultAPI                   string          `json:"defaultApi"`
	DefaultDebug                 string          `json:"defaultDebug"`
	DefaultDatabaseName          string          `json:"defaultDatabaseName"`
	DefaultOwnerName             string          `json:"defaultOwnerName"`
	DefaultBinaryFormat          string          `json:"defaultBinaryFormat"`
	DefaultVariantFormat         string          `json:"defaultVariantFormat,omitempty"`
	DefaultResponseOptions       ResponseOptions `json:"defaultResponseOptions"`
	DefaultRetentionPolicy       string          `json:"defaultRetentionPolicy"`
	DefaultRetentionUnit         string          `json:"defaultRetentionUnit"`
	DefaultRetentionPeriod       int             `json:"defaultRetentionPeriod"`
	IdleConnectionTimeoutSeconds int64           `json:"idleConnectionTimeoutSeconds"`
	IdleCursorTimeoutSeconds     int64           `json:"idleCursorTimeoutSeconds"`
}

// Origin says which API created a session.
type Origin string

const (
	// OriginCreateSession is a FairCom createSession session.
	OriginCreateSession Origin = "createSession"
	// OriginAuthenticate is a NetX authenticate session key.
	OriginAuthenticate Origin = "authenticate"
)

// Session is one login: a temporary session or a permanent one (an API key).
type Session struct {
	ID        string    `json:"id"`
	TokenHash TokenHash `json:"tokenHash"`
	// Username is the account's username as created; UserKey gives the index key.
	Username  string          `json:"username"`
	Permanent bool            `json:"permanent,omitempty"`
	Origin    Origin          `json:"origin"`
	Settings  SessionSettings `json:"settings"`
	// InactivitySeconds is the NetX inactivity timeout (0 = off). The session ends one minute
	// after that much time without a call other than a tickle.
	InactivitySeconds int64 `json:"inactivitySeconds,omitempty"`
	// LifetimeEnd is an absolute end (maxSessionLifetimeSeconds); zero means none.
	LifetimeEnd    time.Time `json:"lifetimeEnd,omitzero"`
	CreatedAt      time.Time `json:"createdAt"`
	LastAccessedAt time.Time `json:"lastAccessedAt"`
	LastActiveAt   time.Time `json:"lastActiveAt"`
	ClientAddress  string    `json:"clientAddress,omitempty"`
}

// Clone returns a copy.
func (s *Session) Clone() *Session {
	c := *s
	return &c
}

// UserKey returns the canonical username of the session's account.
func (s *Session) UserKey() string { return UserKey(s.Username) }

// inactivityGrace is NetX's minute between the inactivity prompt and the end of the session.
const inactivityGrace = time.Minute

// ExpiresAt returns when the first of the session's clocks runs out, and false if none can:
// permanent sessions and sessions whose clocks are all off never expire.
//  1. idle: IdleConnectionTimeoutSeconds after LastAccessedAt;
//  2. inactivity: InactivitySeconds plus one minute after LastActiveAt;
//  3. lifetime: LifetimeEnd.
func (s *Session) ExpiresAt() (time.Time, bool) {
	if s.Permanent {
		return time.Time{}, false
	}
	var end time.Time
	earliest := func(t time.Time) {
		if end.IsZero() || t.Before(end) {
			end = t
		}
	}
	if idle := s.Settings.IdleConnectionTimeoutSeconds; idle > 0 {
		earliest(s.LastAccessedAt.Add(time.Duration(idle) * time.Second))
	}
	if s.InactivitySeconds > 0 {
		earliest(s.LastActiveAt.Add(time.Duration(s.InactivitySeconds)*time.Second + inactivityGrace))
	}
	if !s.LifetimeEnd.IsZero() {
		earliest(s.LifetimeEnd)
	}
	return end, !end.IsZero()
}

// Expired reports whether the session has ended at now.
func (s *Session) Expired(now time.Time) bool {
	end, ok := s.ExpiresAt()
	return ok && !now.Before(end)
}
