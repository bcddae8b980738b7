package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/engine"
)

var errRename = errors.New("redisstore: UpdateAccount cannot change the account's canonical username")

// CreateAccount stores a new account. It returns engine.ErrAccountExists if the key is
// taken: the check and the write are one script, so of several nodes creating the same
// account at once exactly one succeeds.
func (s *Store) CreateAccount(ctx context.Context, a *engine.Account) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	raw, err := encodeAccount(a)
	if err != nil {
		return err
	}
	key := a.Key()
	k := s.keys
	res, err := scriptCreateAccount.Run(ctx, s.rdb, []string{k.accounts(), k.admins(), k.account(key)},
		key, raw, flag(a.IsAdmin())).Text()
	if err != nil {
		return s.fail(ctx, "creating an account", err)
	}
	switch res {
	case "OK":
		return nil
	case "EXISTS":
		return engine.ErrAccountExists
	}
	return fmt.Errorf("redisstore: creating an account: unexpected reply %q", res)
}

// GetAccount returns the account, or engine.ErrAccountNotFound.
func (s *Store) GetAccount(ctx context.Context, userKey string) (*engine.Account, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	a, _, err := s.getAccount(ctx, userKey)
	return a, err
}

func (s *Store) getAccount(ctx context.Context, userKey string) (*engine.Account, string, error) {
	raw, err := s.rdb.Get(ctx, s.keys.account(userKey)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, "", engine.ErrAccountNotFound
	}
	if err != nil {
		return nil, "", s.fail(ctx, "reading an account", err)
	}
	a, err := decodeAccount(raw)
	return a, raw, err
}

// UpdateAccount applies fn to a copy of the account and stores the result if the account
// did not change meanwhile (on any node); otherwise it reads it again and calls fn again, so
// fn may run more than once and must only change its argument. If fn fails nothing changes.
// Besides the errors of engine.AccountStore, it returns engine.ErrLastAdmin if fn takes the
// admin role from the only admin, and an error if fn changes the canonical username.
func (s *Store) UpdateAccount(ctx context.Context, userKey string, fn func(*engine.Account) error) (*engine.Account, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	k := s.keys
	for range maxCASAttempts {
		current, raw, err := s.getAccount(ctx, userKey)
		if err != nil {
			return nil, err
		}
		updated := current.Clone()
		if err := fn(updated); err != nil {
			return nil, err
		}
		if updated.Key() != userKey {
			return nil, errRename
		}
		next, err := encodeAccount(updated)
		if err != nil {
			return nil, err
		}
		res, err := scriptUpdateAccount.Run(ctx, s.rdb, []string{k.accounts(), k.admins(), k.account(userKey)},
			userKey, raw, next, flag(updated.IsAdmin())).Text()
		if err != nil {
			return nil, s.fail(ctx, "updating an account", err)
		}
		switch res {
		case "OK":
			return decodeAccount(next)
		case "RETRY":
			continue
		case "NOTFOUND":
			return nil, engine.ErrAccountNotFound
		case "LASTADMIN":
			return nil, engine.ErrLastAdmin
		}
		return nil, fmt.Errorf("redisstore: updating an account: unexpected reply %q", res)
	}
	return nil, errContention
}

// DeleteAccounts removes the accounts that exist, with all their sessions and preferences,
// and returns their keys sorted. It returns engine.ErrLastAdmin if that would leave no
// admin. Accounts with more than purgeBatch sessions between them lose them purgeBatch a
// script, so that dropping a large account does not block Redis for long, each script after
// the last-admin check; the last script removes the remaining sessions with the accounts, so
// a session made meanwhile goes too. When it fails part of the way, the sessions removed
// before stay removed, and the accounts stay.
func (s *Store) DeleteAccounts(ctx context.Context, userKeys []string) ([]string, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	k := s.keys
	args := []any{k.global, purgeBatch}
	for i, key := range userKeys {
		if !slices.Contains(userKeys[:i], key) {
			args = append(args, key, k.account(key), k.userSessions(key), k.preferences(key))
		}
	}
	for {
		reply, err := scriptDeleteAccounts.Run(ctx, s.rdb, []string{k.allSessions(), k.accounts(), k.admins()}, args...).StringSlice()
		if err != nil {
			return nil, s.fail(ctx, "deleting accounts", err)
		}
		if len(reply) == 0 {
			return nil, fmt.Errorf("redisstore: deleting accounts: empty reply")
		}
		switch reply[0] {
		case "MORE":
			continue
		case "OK":
			removed := append(make([]string, 0, len(reply)-1), reply[1:]...)
			slices.Sort(removed)
			return removed, nil
		case "LASTADMIN":
			return nil, engine.ErrLastAdmin
		}
		return nil, fmt.Errorf("redisstore: deleting accounts: unexpected reply %q", reply)
	}
}

// CountAccounts returns how many accounts the store holds, and how many are admins, read
// together (MULTI).
func (s *Store) CountAccounts(ctx context.Context) (accounts, admins int, err error) {
	if err := s.enter(); err != nil {
		return 0, 0, err
	}
	defer s.leave()
	var all, adm *redis.IntCmd
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		all, adm = p.ZCard(ctx, s.keys.accounts()), p.SCard(ctx, s.keys.admins())
		return nil
	})
	if err != nil {
		return 0, 0, s.fail(ctx, "counting accounts", err)
	}
	return int(all.Val()), int(adm.Val()), nil
}

// ListAccounts returns the accounts whose key starts with one of prefixes (all of them when
// prefixes is empty), sorted by key. It reads the accounts index listPage names at a time,
// in key order, and their records with one MGET a page, so that listing a million accounts
// does not hold Redis up for the other nodes' token checks; an account that exists
// throughout is listed once.
func (s *Store) ListAccounts(ctx context.Context, prefixes []string) ([]*engine.Account, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []*engine.Account
	for _, r := range lexRanges(prefixes) {
		for page := r; ; {
			page.Count = listPage
			names, err := s.rdb.ZRangeByLex(ctx, s.keys.accounts(), &page).Result()
			if err != nil {
				return nil, s.fail(ctx, "listing accounts", err)
			}
			if len(names) == 0 {
				break
			}
			keys := make([]string, len(names))
			for i, name := range names {
				keys[i] = s.keys.account(name)
			}
			records, err := s.rdb.MGet(ctx, keys...).Result()
			if err != nil {
				return nil, s.fail(ctx, "listing accounts", err)
			}
			for _, raw := range records {
				text, ok := raw.(string)
				if !ok {
					continue // dropped since the page was read
				}
				a, err := decodeAccount(text)
				if err != nil {
					return nil, err
				}
				out = append(out, a)
			}
			if len(names) < listPage {
				break
			}
			page.Min = "(" + names[len(names)-1]
		}
	}
	return out, nil
}

// lexRanges returns the index ranges of the keys that start with one of prefixes (every key
// when there is none), disjoint and in key order: a prefix that another one starts is left
// out, as its keys are in that one's range.
func lexRanges(prefixes []string) []redis.ZRangeBy {
	if len(prefixes) == 0 || slices.Contains(prefixes, "") {
		return []redis.ZRangeBy{{Min: "-", Max: "+"}}
	}
	sorted := slices.Sorted(slices.Values(prefixes))
	var ranges []redis.ZRangeBy
	last := ""
	for _, p := range sorted {
		if last != "" && strings.HasPrefix(p, last) {
			continue
		}
		last = p
		ranges = append(ranges, redis.ZRangeBy{Min: "[" + p, Max: "(" + p + "\xff"})
	}
	return ranges
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
