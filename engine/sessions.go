package engine

import (
	"context"
	"errors"
	"time"
)

// SessionInfo is a session as a caller may see it.
type SessionInfo struct {
	Session
	// AuthToken is set only where the caller presented or has just received this token.
	AuthToken string
	// ExpiresAt is when the session ends if nothing extends it; zero if it never expires.
	ExpiresAt time.Time
}

func (e *Engine) info(s *Session, token string) SessionInfo {
	end, _ := s.ExpiresAt()
	return SessionInfo{Session: *s, AuthToken: token, ExpiresAt: end}
}

// CreateSessionRequest is a FairCom createSession.
type CreateSessionRequest struct {
	Username  string
	Password  string
	Options   SessionOptions
	Permanent bool
	Client    Client
}

// CreateSession logs in with a username and password and starts a session with the
// jsonActionApiDefaults settings, overridden by the options given. A permanent session (an
// API key) needs EnablePermanentSessions. Any credential failure is ErrInvalidCredentials.
func (e *Engine) CreateSession(ctx context.Context, req CreateSessionRequest) (SessionInfo, error) {
	if err := validateUsername("username", req.Username); err != nil {
		return SessionInfo{}, err
	}
	if err := validatePassword("password", req.Password); err != nil {
		return SessionInfo{}, err
	}
	settings := e.cfg.Defaults.Settings
	if err := req.Options.apply(&settings); err != nil {
		return SessionInfo{}, err
	}
	if req.Permanent && !e.cfg.Defaults.EnablePermanentSessions {
		return SessionInfo{}, ErrPermanentDisabled
	}
	acct, err := e.login(ctx, req.Username, req.Password, req.Client)
	if err != nil {
		return SessionInfo{}, err
	}
	now := e.clock.Now()
	s := &Session{
		Username:      acct.Username,
		Permanent:     req.Permanent,
		Origin:        OriginCreateSession,
		Settings:      settings,
		ClientAddress: req.Client.Address,
	}
	if !req.Permanent && e.cfg.Defaults.MaxSessionLifetime > 0 {
		s.LifetimeEnd = now.Add(e.cfg.Defaults.MaxSessionLifetime)
	}
	token, err := e.insertLoggedIn(ctx, acct, s, now)
	if err != nil {
		return SessionInfo{}, err
	}
	e.log.Info("session created", "user", acct.Username, "session", s.ID, "token", Fingerprint(token), "permanent", s.Permanent, "client", req.Client.Address)
	return e.info(s, token), nil
}

// Authenticate is NetX's authenticate: it returns a session key whose idle clock is
// user.sessionDuration and whose inactivity clock is user.sessionInactivityTimeout.
// It returns ErrInvalidCredentials (or ErrLoginThrottled) when authentication fails.
func (e *Engine) Authenticate(ctx context.Context, login, password string, client Client) (string, error) {
	if validateUsername("login", login) != nil || validatePassword("password", password) != nil {
		return "", &CredentialsError{Username: login}
	}
	acct, err := e.login(ctx, login, password, client)
	if err != nil {
		return "", err
	}
	now := e.clock.Now()
	settings := e.cfg.Defaults.Settings
	settings.IdleConnectionTimeoutSeconds = int64(e.cfg.NetX.SessionDurationMinutes) * 60
	s := &Session{
		Username:          acct.Username,
		Origin:            OriginAuthenticate,
		Settings:          settings,
		InactivitySeconds: int64(e.cfg.NetX.InactivityTimeoutMinutes) * 60,
		ClientAddress:     client.Address,
	}
	if e.cfg.Defaults.MaxSessionLifetime > 0 {
		s.LifetimeEnd = now.Add(e.cfg.Defaults.MaxSessionLifetime)
	}
	token, err := e.insertLoggedIn(ctx, acct, s, now)
	if err != nil {
		return "", err
	}
	e.log.Info("session key issued", "user", acct.Username, "session", s.ID, "token", Fingerprint(token), "client", client.Address)
	return token, nil
}

// insertLoggedIn stores s, a session of acct, which login has just returned. A password
// change ends the account's temporary sessions once the new password is stored; one that
// raced the login may have done so before s was stored, so a temporary s is taken back if
// acct's password is not the one login checked any more.
func (e *Engine) insertLoggedIn(ctx context.Context, acct *Account, s *Session, now time.Time) (string, error) {
	token, err := e.insert(ctx, s, now)
	if err != nil || s.Permanent {
		return token, err
	}
	current, err := e.store.GetAccount(ctx, acct.Key())
	if err == nil && current.PasswordHash == acct.PasswordHash {
		return token, nil
	}
	if _, derr := e.store.DeleteSessions(ctx, []string{s.ID}, now); derr != nil {
		return "", derr
	}
	if err != nil && !errors.Is(err, ErrAccountNotFound) {
		return "", err
	}
	e.log.Info("login failed", "user", acct.Username, "client", s.ClientAddress, "reason", "password changed during the login")
	return "", &CredentialsError{Username: acct.Username}
}

// insert gives s an id, a token and its clocks, and stores it under the caps.
func (e *Engine) insert(ctx context.Context, s *Session, now time.Time) (string, error) {
	token, err := NewToken(e.cfg.Rand, s.Permanent)
	if err != nil {
		return "", err
	}
	parsed, err := ParseToken(token)
	if err != nil {
		return "", err
	}
	if s.ID, err = newID(e.cfg.Rand, "ses_"); err != nil {
		return "", err
	}
	s.TokenHash = parsed.Hash
	s.CreatedAt, s.LastAccessedAt, s.LastActiveAt = now, now, now
	if err := e.store.InsertSession(ctx, s, e.cfg.Defaults.Caps, now); err != nil {
		if errors.Is(err, ErrAccountNotFound) {
			// The account was dropped while logging in.
			return "", &CredentialsError{Username: s.Username}
		}
		return "", err
	}
	return token, nil
}

// login checks credentials with the same cost and the same answer for an unknown user, a
// wrong password and a locked account, and applies per-account lockout and per-address
// throttling.
//
// A wrong password's failure count is written after the reply (e.pending): a synced write
// only on that path would let an attacker time which usernames exist. Every decision that
// depends on the count (the next successful login, account changes and reads) first waits
// for the writes already started, so lockout stays exact; only a crash can forget the count
// of the failures still being written.
func (e *Engine) login(ctx context.Context, username, password string, client Client) (*Account, error) {
	now := e.clock.Now()
	if e.throttle.blocked(client.Address, now) {
		return nil, ErrLoginThrottled
	}
	key := UserKey(username)
	acct, err := e.store.GetAccount(ctx, key)
	if err != nil && !errors.Is(err, ErrAccountNotFound) {
		return nil, err
	}
	encoded := ""
	if acct != nil {
		encoded = acct.PasswordHash
	}
	ok, err := e.hasher.verify(ctx, password, encoded)
	if err != nil {
		return nil, err
	}
	reason := ""
	switch {
	case acct == nil:
		reason = "unknown user"
	case now.Before(acct.LockedUntil):
		reason = "locked"
	case !ok:
		reason = "wrong password"
	default:
		if err := e.pending.wait(ctx, key); err != nil {
			return nil, err
		}
		updated, err := e.store.UpdateAccount(ctx, key, func(a *Account) error {
			if now.Before(a.LockedUntil) {
				return errLocked
			}
			if a.PasswordHash != encoded {
				return errPasswordChanged
			}
			a.FailedAttempts = 0
			a.LockedUntil = time.Time{}
			a.LastLoginAt = now
			return nil
		})
		switch {
		case errors.Is(err, errLocked):
			reason = "locked"
		case errors.Is(err, errPasswordChanged):
			reason = "password changed during the login"
		case errors.Is(err, ErrAccountNotFound):
			reason = "unknown user"
		case err != nil:
			return nil, err
		default:
			return updated, nil
		}
	}
	// Every failure takes the same path here, so all three cost the same up to the reply;
	// only for a wrong password does countFailure find something to write.
	e.failedLogin(key, client, now)
	if acct == nil {
		// An unknown "username" may be a password typed into the wrong field: never log it.
		e.log.Info("login failed", "client", client.Address, "reason", reason)
	} else {
		e.log.Info("login failed", "user", acct.Username, "client", client.Address, "reason", reason)
	}
	return nil, &CredentialsError{Username: username}
}

// failedLogin counts a failed login from client against its address's throttle and, once
// the reply is out (pending), against key's lockout.
func (e *Engine) failedLogin(key string, client Client, now time.Time) {
	e.throttle.fail(client.Address, now)
	e.pending.start(key, func() { e.countFailure(key, now) })
}

// errLocked aborts a login's account update when the account is locked.
var errLocked = errors.New("account locked")

// errPasswordChanged: the account's password changed while a login checked the old one.
var errPasswordChanged = errors.New("password changed during the login")

// countFailure records a wrong password for key and locks the account at its limit. A locked
// account counts nothing more.
func (e *Engine) countFailure(key string, now time.Time) {
	_, err := e.store.UpdateAccount(context.Background(), key, func(a *Account) error {
		if now.Before(a.LockedUntil) {
			return errLocked
		}
		a.FailedAttempts++
		if a.LockoutAfter > 0 && a.FailedAttempts >= a.LockoutAfter {
			a.FailedAttempts = 0
			a.LockedUntil = now.Add(time.Duration(a.LockoutWaitMinutes) * time.Minute)
			e.log.Warn("account locked", "user", a.Username, "until", a.LockedUntil)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errLocked) && !errors.Is(err, ErrAccountNotFound) {
		e.log.Error("recording a failed login", "user", key, "err", err)
	}
}

// caller is an authenticated request: the session its token names.
type caller struct {
	session *Session
	token   string
}

// authorize resolves a token to its live session and records the use. Active use resets
// both the idle and the inactivity clock; a tickle (active false) only the idle clock.
func (e *Engine) authorize(ctx context.Context, token string, active bool) (*caller, error) {
	s, err := e.touch(ctx, token, active)
	if err != nil {
		return nil, err
	}
	return &caller{session: s, token: token}, nil
}

// touch checks the token, records its use, and returns the session as it is afterwards:
// authorize without the caller record, and keepAlive on a store that is no TokenToucher.
func (e *Engine) touch(ctx context.Context, token string, active bool) (*Session, error) {
	parsed, err := e.lookupToken(token)
	if err != nil {
		return nil, ErrInvalidToken
	}
	now := e.clock.Now()
	var s *Session
	if e.toucher != nil {
		s, err = e.toucher.TouchByTokenHash(ctx, parsed.Hash, now, active)
	} else {
		s, err = e.store.SessionByTokenHash(ctx, parsed.Hash, now)
		if err == nil {
			err = e.store.Touch(ctx, s.ID, now, active)
		}
	}
	if err != nil {
		return nil, tokenLookupError(token, err)
	}
	s.LastAccessedAt = now
	if active {
		s.LastActiveAt = now
	}
	return s, nil
}

// account returns the caller's account. A session whose account is gone is invalid.
func (e *Engine) account(ctx context.Context, c *caller) (*Account, error) {
	a, err := e.store.GetAccount(ctx, c.session.UserKey())
	if errors.Is(err, ErrAccountNotFound) {
		return nil, ErrInvalidToken
	}
	return a, err
}

// Validate checks a token and records the use, as every authenticated call does. It is the
// hot path: one hash, one lookup, no disk write.
func (e *Engine) Validate(ctx context.Context, token string) (SessionInfo, error) {
	c, err := e.authorize(ctx, token, true)
	if err != nil {
		return SessionInfo{}, err
	}
	return e.info(c.session, token), nil
}

// PingSession is FairCom's pingSession: with no token it only checks the server is up; with
// one it keeps that session alive, and an invalid token is ErrInvalidToken.
func (e *Engine) PingSession(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	return e.keepAlive(ctx, token, true)
}

// keepAlive records a use of the token's live session, like touch, for callers that need
// nothing of the session (pingSession and tickles, the hot paths of applications): with a
// TokenToucher it is touched in place and nothing is copied out.
func (e *Engine) keepAlive(ctx context.Context, token string, active bool) error {
	if e.toucher == nil {
		_, err := e.touch(ctx, token, active)
		return err
	}
	parsed, err := e.lookupToken(token)
	if err != nil {
		return ErrInvalidToken
	}
	return tokenLookupError(token, e.toucher.TouchToken(ctx, parsed.Hash, e.clock.Now(), active))
}

// lookupToken parses a token that is looked up next. A store that checks tokens in memory
// (TokenToucher) finds a hash for less than the checksum costs, and a token it finds was
// issued by sessiond, checksum and all, so only the length and the prefix are checked: a
// mistyped token is not found instead, and tokenLookupError makes any failure of its lookup
// ErrInvalidToken, as before. Other stores are spared a read or a round trip by the whole
// check. The checksum and the base64 decoding, with their tables (8 KiB), took
// BenchmarkRequestPath/pingSession from 531-552 ns to 476-479.
func (e *Engine) lookupToken(token string) (ParsedToken, error) {
	if e.toucher != nil {
		return parseTokenShape(token)
	}
	return ParseToken(token)
}

// tokenLookupError is err, from looking up token's hash, as a token check reports it. A
// token that fails ParseToken (whose check lookupToken may have skipped) is ErrInvalidToken,
// whatever the store said: a cancelled call or a closed store does not change the answer to
// a malformed token.
func tokenLookupError(token string, err error) error {
	if err == nil {
		return nil
	}
	if _, perr := ParseToken(token); perr != nil {
		return ErrInvalidToken
	}
	return tokenError(err)
}

// tokenError is a store's error as a token check reports it: no such live session means the
// token is invalid.
func tokenError(err error) error {
	if errors.Is(err, ErrSessionNotFound) {
		return ErrInvalidToken
	}
	return err
}

// AlterSession changes the settings of the caller's session. A temporary session can never
// become permanent (ErrPermanentNotAllowed), nor a permanent one temporary.
func (e *Engine) AlterSession(ctx context.Context, token string, opts SessionOptions, permanent *bool) (SessionInfo, error) {
	c, err := e.authorize(ctx, token, true)
	if err != nil {
		return SessionInfo{}, err
	}
	if permanent != nil && *permanent != c.session.Permanent {
		if *permanent {
			return SessionInfo{}, ErrPermanentNotAllowed
		}
		return SessionInfo{}, invalid("permanentSession", "a permanent session cannot become temporary; delete it instead")
	}
	now := e.clock.Now()
	s, err := e.store.UpdateSession(ctx, c.session.ID, now, func(s *Session) error {
		return opts.apply(&s.Settings)
	})
	if err != nil {
		return SessionInfo{}, tokenError(err)
	}
	return e.info(s, token), nil
}

// DeleteSession ends the session of a token. A well-formed token that matches no session
// (already deleted or expired) is not an error; a malformed one is ErrInvalidToken.
func (e *Engine) DeleteSession(ctx context.Context, token string) error {
	parsed, err := ParseToken(token)
	if err != nil {
		return ErrInvalidToken
	}
	now := e.clock.Now()
	s, err := e.store.SessionByTokenHash(ctx, parsed.Hash, now)
	if errors.Is(err, ErrSessionNotFound) {
		return e.settled(ctx) // perhaps deleted by a call still syncing
	}
	if err != nil {
		return err
	}
	if _, err := e.store.DeleteSessions(ctx, []string{s.ID}, now); err != nil {
		return err
	}
	e.log.Info("session deleted", "user", s.Username, "session", s.ID)
	return nil
}

// settled returns once the changes this call may have seen are durable (Syncer): before a
// reply says something is done because it found it already done.
func (e *Engine) settled(ctx context.Context) error {
	if e.syncer != nil {
		return e.syncer.Sync(ctx)
	}
	return nil
}

// Logout is NetX's logout: it ends the session of a key, valid or not, and always succeeds
// unless the store fails.
func (e *Engine) Logout(ctx context.Context, sessionKey string) error {
	err := e.DeleteSession(ctx, sessionKey)
	if errors.Is(err, ErrInvalidToken) {
		return nil
	}
	return err
}

// visible reports whether the caller's account may see and revoke s: admins see every
// session, other accounts only their own.
func visible(caller *Account, s *Session) bool {
	return caller.IsAdmin() || caller.Key() == s.UserKey()
}

// DescribeSessions returns the sessions named by authTokens and sessionIds that the caller may
// see, or, when both are empty, every session the caller may see. Names the caller may not
// see or that match nothing are left out. A session carries its token only where the caller
// presented it.
func (e *Engine) DescribeSessions(ctx context.Context, token string, authTokens, sessionIDs []string) ([]SessionInfo, error) {
	c, err := e.authorize(ctx, token, true)
	if err != nil {
		return nil, err
	}
	me, err := e.account(ctx, c)
	if err != nil {
		return nil, err
	}
	now := e.clock.Now()
	presented := map[string]string{c.session.ID: token}
	if len(authTokens) == 0 && len(sessionIDs) == 0 {
		return e.listVisible(ctx, me, nil, now, presented)
	}
	out := make([]SessionInfo, 0, len(authTokens)+len(sessionIDs))
	seen := map[string]bool{}
	add := func(s *Session) {
		if !seen[s.ID] && visible(me, s) {
			seen[s.ID] = true
			out = append(out, e.info(s, presented[s.ID]))
		}
	}
	for _, t := range authTokens {
		parsed, err := ParseToken(t)
		if err != nil {
			continue
		}
		if parsed.Hash == c.session.TokenHash {
			add(c.session) // "who am I": the caller's own session, just read
			continue
		}
		s, err := e.store.SessionByTokenHash(ctx, parsed.Hash, now)
		if errors.Is(err, ErrSessionNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		presented[s.ID] = t
		add(s)
	}
	for _, id := range sessionIDs {
		s, err := e.store.SessionByID(ctx, id, now)
		if errors.Is(err, ErrSessionNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		add(s)
	}
	return out, nil
}

// ListSessions lists the sessions the caller may see, of the given usernames only when
// usernameFilter is not empty. Listed sessions never carry tokens.
func (e *Engine) ListSessions(ctx context.Context, token string, usernameFilter []string) ([]SessionInfo, error) {
	c, err := e.authorize(ctx, token, true)
	if err != nil {
		return nil, err
	}
	me, err := e.account(ctx, c)
	if err != nil {
		return nil, err
	}
	return e.listVisible(ctx, me, usernameFilter, e.clock.Now(), nil)
}

func (e *Engine) listVisible(ctx context.Context, me *Account, usernames []string, now time.Time, tokens map[string]string) ([]SessionInfo, error) {
	var keys []string
	for _, u := range usernames {
		keys = append(keys, UserKey(u))
	}
	if !me.IsAdmin() {
		// Others see only their own sessions, whatever they ask for.
		if len(keys) > 0 && !contains(keys, me.Key()) {
			return []SessionInfo{}, nil
		}
		keys = []string{me.Key()}
	}
	sessions, err := e.store.ListSessions(ctx, keys, now)
	if err != nil {
		return nil, err
	}
	out := make([]SessionInfo, 0, len(sessions))
	for _, s := range sessions {
		out = append(out, e.info(s, tokens[s.ID]))
	}
	return out, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// RevokeRequest names the sessions to end: exactly one of its fields must be set.
type RevokeRequest struct {
	// SessionIDs: sessions by their public id; ids the caller may not see are skipped.
	SessionIDs []string
	// Usernames: every session of these accounts, permanent ones too. Admins may name anyone;
	// other accounts only themselves.
	Usernames []string
	// AllOthers: every session of the caller's account except the caller's own.
	AllOthers bool
}

// RevokeSessions ends sessions and returns how many it ended.
func (e *Engine) RevokeSessions(ctx context.Context, token string, req RevokeRequest) (int, error) {
	given := 0
	for _, set := range []bool{req.SessionIDs != nil, req.Usernames != nil, req.AllOthers} {
		if set {
			given++
		}
	}
	if given != 1 {
		return 0, invalid("params", "give exactly one of sessionIds, usernames or allOthers: true")
	}
	c, err := e.authorize(ctx, token, true)
	if err != nil {
		return 0, err
	}
	me, err := e.account(ctx, c)
	if err != nil {
		return 0, err
	}
	now := e.clock.Now()
	var ids []string
	switch {
	case req.SessionIDs != nil:
		for _, id := range req.SessionIDs {
			s, err := e.store.SessionByID(ctx, id, now)
			if errors.Is(err, ErrSessionNotFound) {
				continue
			}
			if err != nil {
				return 0, err
			}
			if visible(me, s) {
				ids = append(ids, s.ID)
			}
		}
	case req.Usernames != nil:
		var keys []string
		for _, u := range req.Usernames {
			k := UserKey(u)
			if !me.IsAdmin() && k != me.Key() {
				return 0, ErrPermissionDenied
			}
			keys = append(keys, k)
		}
		if len(keys) == 0 {
			return 0, nil
		}
		sessions, err := e.store.ListSessions(ctx, keys, now)
		if err != nil {
			return 0, err
		}
		for _, s := range sessions {
			ids = append(ids, s.ID)
		}
	default:
		sessions, err := e.store.ListSessions(ctx, []string{me.Key()}, now)
		if err != nil {
			return 0, err
		}
		for _, s := range sessions {
			if s.ID != c.session.ID {
				ids = append(ids, s.ID)
			}
		}
	}
	if len(ids) == 0 {
		return 0, e.settled(ctx) // those named perhaps deleted by a call still syncing
	}
	n, err := e.store.DeleteSessions(ctx, ids, now)
	if err == nil {
		e.log.Info("sessions revoked", "by", me.Username, "count", n)
	}
	return n, err
}
