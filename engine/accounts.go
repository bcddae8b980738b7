package engine

import (
	"context"
	"errors"
	"time"
)

// CreateAccountRequest is createAccount.
type CreateAccountRequest struct {
	Username    string
	Password    string
	Description string
	Roles       []string
	// LockoutAfter and LockoutWaitMinutes default to the engine's defaults when nil.
	LockoutAfter       *int
	LockoutWaitMinutes *int
}

// AlterAccountRequest is alterAccount: nil fields are left as they are.
type AlterAccountRequest struct {
	Username           string
	Password           *string
	CurrentPassword    *string
	Description        *string
	Roles              []string
	LockoutAfter       *int
	LockoutWaitMinutes *int
	// Client is the caller's, for the login throttle a wrong CurrentPassword counts against.
	Client Client
}

func validateRoles(roles []string) error {
	for _, r := range roles {
		if r != RoleAdmin {
			return invalid("roles", "the only role is %q; got %q", RoleAdmin, r)
		}
	}
	return nil
}

func validateLockout(after, wait *int) error {
	if after != nil && (*after < 0 || *after > 1000) {
		return invalid("lockoutAfterNFailedAttempts", "must be 0 (no lockout) to 1000")
	}
	if wait != nil && (*wait < 0 || *wait > 525600) {
		return invalid("lockoutWaitMinutes", "must be 0 to 525600 (one year)")
	}
	return nil
}

func normaliseRoles(roles []string) []string {
	if len(roles) > 0 {
		return []string{RoleAdmin}
	}
	return nil
}

// requireAdmin authorizes token and returns the caller's account if it is an admin.
func (e *Engine) requireAdmin(ctx context.Context, token string) (*Account, error) {
	c, err := e.authorize(ctx, token, true)
	if err != nil {
		return nil, err
	}
	me, err := e.account(ctx, c)
	if err != nil {
		return nil, err
	}
	if !me.IsAdmin() {
		return nil, ErrPermissionDenied
	}
	return me, nil
}

// CreateAccount creates an account; only admins may.
func (e *Engine) CreateAccount(ctx context.Context, token string, req CreateAccountRequest) (*Account, error) {
	if err := validateNewAccount(&req); err != nil {
		return nil, err
	}
	if _, err := e.requireAdmin(ctx, token); err != nil {
		return nil, err
	}
	return e.createAccount(ctx, req)
}

func validateNewAccount(req *CreateAccountRequest) error {
	for _, err := range []error{
		validateNewUsername("username", req.Username),
		validatePassword("password", req.Password),
		validateLength("accountDescription", req.Description, 0, MaxDescriptionBytes),
		validateRoles(req.Roles),
		validateLockout(req.LockoutAfter, req.LockoutWaitMinutes),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// Bootstrap creates the first admin account if the store has no accounts at all, and
// reports whether it did. It needs no token: it is how a new server gets its first admin.
func (e *Engine) Bootstrap(ctx context.Context, username, password string) (bool, error) {
	if accounts, _, err := e.store.CountAccounts(ctx); err != nil || accounts > 0 {
		return false, err
	}
	req := CreateAccountRequest{Username: username, Password: password, Roles: []string{RoleAdmin}}
	if err := validateNewAccount(&req); err != nil {
		return false, err
	}
	if _, err := e.createAccount(ctx, req); err != nil {
		if errors.Is(err, ErrAccountExists) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

func (e *Engine) createAccount(ctx context.Context, req CreateAccountRequest) (*Account, error) {
	hash, err := e.hasher.hash(ctx, req.Password)
	if err != nil {
		return nil, err
	}
	now := e.clock.Now()
	a := &Account{
		Username:           req.Username,
		Description:        req.Description,
		Roles:              normaliseRoles(req.Roles),
		PasswordHash:       hash,
		LockoutAfter:       e.cfg.DefaultLockoutAfter,
		LockoutWaitMinutes: e.cfg.DefaultLockoutWaitMinutes,
		CreatedAt:          now,
		PasswordChangedAt:  now,
	}
	if req.LockoutAfter != nil {
		a.LockoutAfter = *req.LockoutAfter
	}
	if req.LockoutWaitMinutes != nil {
		a.LockoutWaitMinutes = *req.LockoutWaitMinutes
	}
	if err := e.store.CreateAccount(ctx, a); err != nil {
		return nil, err
	}
	e.log.Info("account created", "user", a.Username, "admin", a.IsAdmin())
	return a.Clone(), nil
}

// AlterAccount changes an account. Admins may change any account; an account may change its
// own description and password (giving currentPassword). A password change ends the account's
// other temporary sessions and clears a lockout.
func (e *Engine) AlterAccount(ctx context.Context, token string, req AlterAccountRequest) (*Account, error) {
	for _, err := range []error{
		validateUsername("username", req.Username),
		validateRoles(req.Roles),
		validateLockout(req.LockoutAfter, req.LockoutWaitMinutes),
	} {
		if err != nil {
			return nil, err
		}
	}
	if req.Password != nil {
		if err := validatePassword("password", *req.Password); err != nil {
			return nil, err
		}
	}
	if req.Description != nil {
		if err := validateLength("accountDescription", *req.Description, 0, MaxDescriptionBytes); err != nil {
			return nil, err
		}
	}
	c, err := e.authorize(ctx, token, true)
	if err != nil {
		return nil, err
	}
	me, err := e.account(ctx, c)
	if err != nil {
		return nil, err
	}
	key := UserKey(req.Username)
	self := key == me.Key()
	if !me.IsAdmin() {
		if !self {
			return nil, ErrPermissionDenied
		}
		if req.Roles != nil || req.LockoutAfter != nil || req.LockoutWaitMinutes != nil {
			return nil, ErrPermissionDenied
		}
	}
	selfChange := self && req.Password != nil
	if selfChange {
		// Failure counts still being written first: a lock they set is seen by the check.
		if err := e.pending.wait(ctx, key); err != nil {
			return nil, err
		}
	}
	target, err := e.store.GetAccount(ctx, key)
	if err != nil {
		return nil, err
	}
	var newHash string
	if req.Password != nil {
		if self {
			if err := e.checkCurrentPassword(ctx, target, req.CurrentPassword, req.Client); err != nil {
				return nil, err
			}
		}
		if newHash, err = e.hasher.hash(ctx, *req.Password); err != nil {
			return nil, err
		}
	}
	if req.Roles != nil && len(req.Roles) == 0 && target.IsAdmin() {
		// Refused here before anything else is done (a password change ends sessions
		// first); the store refuses the demotion of the last admin atomically all the same.
		if _, admins, err := e.store.CountAccounts(ctx); err != nil {
			return nil, err
		} else if admins <= 1 {
			return nil, ErrLastAdmin
		}
	}
	if err := e.pending.wait(ctx, key); err != nil { // a cleared lockout stays cleared
		return nil, err
	}
	now := e.clock.Now()
	if newHash != "" {
		// The account's temporary sessions end before the new password is stored, so that a
		// crash between the two cannot leave them alive with it, and again after, for those
		// the old password opened meanwhile.
		if err := e.endTemporarySessions(ctx, key, c.session.ID, now); err != nil {
			return nil, err
		}
	}
	updated, err := e.store.UpdateAccount(ctx, key, func(a *Account) error {
		// A lock, or another password, that came after the check (a guess counted, a
		// concurrent change) voids it, as it does a login's.
		if selfChange && (now.Before(a.LockedUntil) || a.PasswordHash != target.PasswordHash) {
			return ErrCurrentPasswordWrong
		}
		if req.Description != nil {
			a.Description = *req.Description
		}
		if req.Roles != nil {
			a.Roles = normaliseRoles(req.Roles)
		}
		if req.LockoutAfter != nil {
			a.LockoutAfter = *req.LockoutAfter
		}
		if req.LockoutWaitMinutes != nil {
			a.LockoutWaitMinutes = *req.LockoutWaitMinutes
		}
		if newHash != "" {
			a.PasswordHash = newHash
			a.PasswordChangedAt = now
			a.FailedAttempts = 0
			a.LockedUntil = time.Time{}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if newHash != "" {
		if err := e.endTemporarySessions(ctx, key, c.session.ID, now); err != nil {
			return nil, err
		}
		e.log.Info("password changed", "user", updated.Username, "by", me.Username)
	}
	return updated, nil
}

// checkCurrentPassword checks the password an account gives to change its own. It is a
// login by another door, so it is guarded as one: refused from a throttled address, a wrong
// one counted against the address and the account's lockout, and a locked account's never
// right.
func (e *Engine) checkCurrentPassword(ctx context.Context, target *Account, current *string, client Client) error {
	now := e.clock.Now()
	if e.throttle.blocked(client.Address, now) {
		return ErrLoginThrottled
	}
	given := ""
	if current != nil {
		given = *current
	}
	ok, err := e.hasher.verify(ctx, given, target.PasswordHash)
	if err != nil {
		return err
	}
	if ok && !now.Before(target.LockedUntil) {
		return nil
	}
	e.failedLogin(target.Key(), client, now)
	e.log.Info("password change refused: wrong current password or locked account", "user", target.Username, "client", client.Address)
	return ErrCurrentPasswordWrong
}

// endTemporarySessions deletes the temporary sessions of an account except keepID.
func (e *Engine) endTemporarySessions(ctx context.Context, key, keepID string, now time.Time) error {
	sessions, err := e.store.ListSessions(ctx, []string{key}, now)
	if err != nil {
		return err
	}
	var ids []string
	for _, s := range sessions {
		if !s.Permanent && s.ID != keepID {
			ids = append(ids, s.ID)
		}
	}
	if len(ids) == 0 {
		return e.settled(ctx) // those ended perhaps by a call still syncing
	}
	_, err = e.store.DeleteSessions(ctx, ids, now)
	return err
}

// DropAccounts deletes accounts (admins only) with all their sessions, permanent ones too, and
// preferences. It returns the usernames dropped; unknown names are skipped. Dropping the last
// admin is ErrLastAdmin and drops nothing.
func (e *Engine) DropAccounts(ctx context.Context, token string, usernames []string) ([]string, error) {
	for _, u := range usernames {
		if err := validateUsername("usernames", u); err != nil {
			return nil, err
		}
	}
	me, err := e.requireAdmin(ctx, token)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(usernames))
	for _, u := range usernames {
		keys = append(keys, UserKey(u))
	}
	dropped, err := e.store.DeleteAccounts(ctx, keys)
	if err != nil {
		return nil, err
	}
	if dropped == nil {
		dropped = []string{}
	}
	e.log.Info("accounts dropped", "by", me.Username, "accounts", dropped)
	return dropped, nil
}

// ListAccounts lists accounts whose username starts with any of partialNames (all when
// empty), case-insensitively; admins only.
func (e *Engine) ListAccounts(ctx context.Context, token string, partialNames []string) ([]*Account, error) {
	if _, err := e.requireAdmin(ctx, token); err != nil {
		return nil, err
	}
	if err := e.pending.wait(ctx); err != nil { // show the failure counts already answered
		return nil, err
	}
	prefixes := make([]string, 0, len(partialNames))
	for _, p := range partialNames {
		prefixes = append(prefixes, UserKey(p))
	}
	return e.store.ListAccounts(ctx, prefixes)
}

// DescribeAccounts returns the named accounts: admins may name any (unknown ones are left
// out); other accounts only themselves. No usernames means the caller's own account.
func (e *Engine) DescribeAccounts(ctx context.Context, token string, usernames []string) ([]*Account, error) {
	c, err := e.authorize(ctx, token, true)
	if err != nil {
		return nil, err
	}
	if err := e.pending.wait(ctx); err != nil { // show the failure counts already answered
		return nil, err
	}
	me, err := e.account(ctx, c)
	if err != nil {
		return nil, err
	}
	if len(usernames) == 0 {
		return []*Account{me}, nil
	}
	out := []*Account{}
	seen := map[string]bool{}
	for _, u := range usernames {
		key := UserKey(u)
		if !me.IsAdmin() && key != me.Key() {
			return nil, ErrPermissionDenied
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		a, err := e.store.GetAccount(ctx, key)
		if errors.Is(err, ErrAccountNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}
