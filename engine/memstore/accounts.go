package memstore

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"

	"github.com/sessiond/sessiond/engine"
)

var errRename = errors.New("memstore: UpdateAccount cannot change the account's canonical username")

// CreateAccount stores a copy of a. It returns engine.ErrAccountExists if the key is taken.
func (s *Store) CreateAccount(ctx context.Context, a *engine.Account) error {
	if err := s.writable(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	key := a.Key()
	if _, ok := s.accounts[key]; ok {
		return engine.ErrAccountExists
	}
	if _, ok := s.deletedOnDisk[key]; ok {
		// Its deletion was written only in part: the name is free once the next load has
		// dropped the rest.
		return engine.ErrAccountExists
	}
	stored := normalAccount(a)
	if err := s.commit(&Batch{Accounts: []*engine.Account{stored}}); err != nil {
		return err
	}
	s.putAccount(key, stored)
	return nil
}

// GetAccount returns a copy of the account, or engine.ErrAccountNotFound.
func (s *Store) GetAccount(ctx context.Context, userKey string) (*engine.Account, error) {
	if err := s.readable(ctx); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	a, ok := s.accounts[userKey]
	if !ok {
		return nil, engine.ErrAccountNotFound
	}
	return a.Clone(), nil
}

// CountAccounts returns how many accounts the store holds, and how many are admins.
func (s *Store) CountAccounts(ctx context.Context) (accounts, admins int, err error) {
	if err := s.readable(ctx); err != nil {
		return 0, 0, err
	}
	defer s.mu.RUnlock()
	return len(s.accounts), s.admins, nil
}

// UpdateAccount applies fn to a copy of the account and stores the result. fn runs under
// the store's lock and must not call the store. If fn fails nothing changes. Besides the
// errors of engine.AccountStore, it returns engine.ErrLastAdmin if fn takes the admin role
// from the only admin, and an error if fn changes the canonical username.
func (s *Store) UpdateAccount(ctx context.Context, userKey string, fn func(*engine.Account) error) (*engine.Account, error) {
	if err := s.writable(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	current, ok := s.accounts[userKey]
	if !ok {
		return nil, engine.ErrAccountNotFound
	}
	updated := current.Clone()
	if err := fn(updated); err != nil {
		return nil, err
	}
	if updated.Key() != userKey {
		return nil, errRename
	}
	if current.IsAdmin() && !updated.IsAdmin() && s.admins == 1 {
		return nil, engine.ErrLastAdmin
	}
	stored := normalAccount(updated)
	if err := s.commit(&Batch{Accounts: []*engine.Account{stored}}); err != nil {
		return nil, err
	}
	s.putAccount(userKey, stored)
	return stored.Clone(), nil
}

// DeleteAccounts removes the accounts that exist with their sessions and preferences and
// returns their keys sorted. It returns engine.ErrLastAdmin if that would leave no admin,
// checked before it removes anything. When the accounts have more than writeChunk sessions
// in all, it first removes them writeChunk a hold of the lock, as DeleteSessions does, so
// that dropping accounts of a million sessions does not hold every token check up, and then
// the accounts with the rest in one batch. It checks the rule again before each hold: a
// demotion meanwhile can make it stop there, with ErrLastAdmin and some of the sessions
// removed.
func (s *Store) DeleteAccounts(ctx context.Context, userKeys []string) ([]string, error) {
	for {
		if err := s.writable(ctx); err != nil {
			return nil, err
		}
		removed, err := s.deletableAccounts(userKeys)
		if err != nil || len(removed) == 0 {
			s.mu.Unlock()
			return removed, err
		}
		total, big := 0, ""
		for _, key := range removed {
			n := len(s.users.members(key))
			if total += n; n > 0 && (big == "" || n > len(s.users.members(big))) {
				big = key
			}
		}
		if total <= writeChunk {
			err := s.deleteAccounts(removed)
			s.mu.Unlock()
			if err != nil {
				return nil, err
			}
			return removed, nil
		}
		err = s.dropSomeSessionsOf(big)
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		runtime.Gosched() // on one processor, a token check waiting for the lock runs first
	}
}

// deletableAccounts returns the keys of userKeys that name an account, sorted, or
// engine.ErrLastAdmin if removing them would leave no admin. The write lock is held.
func (s *Store) deletableAccounts(userKeys []string) ([]string, error) {
	removed := make([]string, 0, len(userKeys))
	seen := make(map[string]bool, len(userKeys))
	adminsRemoved := 0
	for _, key := range userKeys {
		a, ok := s.accounts[key]
		if !ok || seen[key] {
			continue
		}
		seen[key] = true
		removed = append(removed, key)
		if a.IsAdmin() {
			adminsRemoved++
		}
	}
	if len(removed) > 0 && s.admins > 0 && adminsRemoved == s.admins {
		return nil, engine.ErrLastAdmin
	}
	slices.Sort(removed)
	return removed, nil
}

// dropSomeSessionsOf removes up to writeChunk sessions of the account key, the last ones of
// its members. The write lock is held.
func (s *Store) dropSomeSessionsOf(key string) error {
	m := s.users.members(key)
	return s.deleteRecords(slices.Clone(m[len(m)-min(len(m), writeChunk):]))
}

// deleteAccounts removes the accounts of keys, which exist, with their sessions and
// preferences, in one batch. The write lock is held.
func (s *Store) deleteAccounts(removed []string) error {
	if s.journal != nil {
		b := &Batch{DeletedAccounts: removed}
		for _, key := range removed {
			b.DeletedSessions = append(b.DeletedSessions, s.ids(s.users.members(key))...)
			for label := range s.prefs[key] {
				b.DeletedPreferences = append(b.DeletedPreferences, PreferenceKey{UserKey: key, Label: label})
			}
		}
		if err := s.journal.Commit(b); err != nil {
			var partial *AccountsDeletedError
			if errors.As(err, &partial) {
				s.forgetAccounts(partial.Keys)
				for _, key := range partial.Keys {
					s.deletedOnDisk[key] = struct{}{}
				}
			}
			return err
		}
	}
	s.forgetAccounts(removed)
	return nil
}

// forgetAccounts removes the accounts in keys from memory, with their sessions and
// preferences; keys not in memory are skipped.
func (s *Store) forgetAccounts(keys []string) {
	for _, key := range keys {
		if _, ok := s.accounts[key]; !ok {
			continue
		}
		for members := s.users.members(key); len(members) > 0; members = s.users.members(key) {
			s.removeRecord(members[len(members)-1])
		}
		delete(s.prefs, key)
		if s.accounts[key].IsAdmin() {
			s.admins--
		}
		delete(s.accounts, key)
	}
}

// ListAccounts returns copies of the accounts whose key starts with one of prefixes (all of
// them when prefixes is empty), sorted by key. It collects the matching keys letting go of
// the read lock every listChunk accounts it walks past, sorts them, and copies the accounts
// listChunk at a time, so that the token checks waiting for the lock are not held up by a
// million accounts (0.4-0.7 s in one hold before, then 50 ms for the walk alone): an account
// that exists throughout is listed, one created or deleted meanwhile may be or not.
func (s *Store) ListAccounts(ctx context.Context, prefixes []string) ([]*engine.Account, error) {
	if err := s.readable(ctx); err != nil {
		return nil, err
	}
	var keys []string
	walked := 0
	// Go's map iteration allows writes between its steps: a key that is there throughout
	// comes exactly once, however the map changes while the lock is let go.
	for key := range s.accounts {
		if len(prefixes) == 0 || slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(key, p) }) {
			keys = append(keys, key)
		}
		if walked++; walked%listChunk == 0 {
			s.mu.RUnlock()
			runtime.Gosched()
			if err := s.readable(ctx); err != nil {
				return nil, err
			}
		}
	}
	s.mu.RUnlock()
	slices.Sort(keys)
	out := make([]*engine.Account, 0, len(keys))
	err := inChunks(ctx, s, keys, func(chunk []string) {
		for _, key := range chunk {
			if a, ok := s.accounts[key]; ok {
				out = append(out, a.Clone())
			}
		}
	}, nil)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// putAccount stores a (owned by the store from now on) under key.
func (s *Store) putAccount(key string, a *engine.Account) {
	if old, ok := s.accounts[key]; ok && old.IsAdmin() {
		s.admins--
	}
	if a.IsAdmin() {
		s.admins++
	}
	s.accounts[key] = a
}
