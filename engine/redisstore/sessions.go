package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/engine"
)

var (
	errDuplicateID    = errors.New("redisstore: a session with this id exists")
	errDuplicateToken = errors.New("redisstore: a session with this token hash exists")
	errIdentity       = errors.New("redisstore: UpdateSession cannot change a session's id or account")
	errContention     = errors.New("redisstore: gave up after too many concurrent changes to the same record")
)

// maxCASAttempts bounds the compare-and-set loops of UpdateSession and UpdateAccount. Each
// failed attempt means another change to the same record succeeded, so the loop makes
// progress; the bound only stops a pathological storm.
const maxCASAttempts = 1000

// purgeBatch is how many sessions one purge or delete script removes at most.
const purgeBatch = 1000

// InsertSession stores the session if its account exists and no cap is reached, counting the
// live sessions at now in Redis, across every node. The check and the write are one script,
// so the caps are exact however many nodes insert at once. Expired sessions in a count that
// has reached its cap are removed first. An empty ClientAddress is not subject to
// MaxSessionsPerAddress. It returns an error if the id or the token hash is already in use.
//
// This node's own pending Touch updates are written first when a cap is set, so that a
// session it kept alive counts; a use on another node counts once that node has written it
// (within its FlushInterval).
func (s *Store) InsertSession(ctx context.Context, sess *engine.Session, caps engine.Caps, now time.Time) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if caps.MaxSessions > 0 || caps.MaxSessionsPerAddress > 0 || caps.MaxSessionsPerUser > 0 {
		if err := s.settle(ctx); err != nil {
			return err
		}
	}
	f, err := encodeSession(sess)
	if err != nil {
		return err
	}
	user := sess.UserKey()
	k := s.keys
	nowS, nowN := timeParts(now)
	keys := []string{k.allSessions(), k.account(user), k.userSessions(user), k.session(user, sess.ID), k.token(sess.TokenHash), k.sessionID(sess.ID)}
	res, err := scriptInsertSession.Run(ctx, s.rdb, keys,
		k.global, nowS, nowN,
		caps.MaxSessions, caps.MaxSessionsPerAddress, caps.MaxSessionsPerUser, k.address(sess.ClientAddress),
		sess.ID, f.json, f.las, f.lan, f.lvs, f.lvn, f.idle, f.inact, f.lifeSecs, f.lifeNanos, f.permanent,
	).Text()
	if err != nil {
		return s.fail(ctx, "inserting a session", err)
	}
	switch res {
	case "OK":
		return nil
	case "NOACCOUNT":
		return engine.ErrAccountNotFound
	case "DUPID":
		return errDuplicateID
	case "DUPTOKEN":
		return errDuplicateToken
	case "LIMIT:g":
		return &engine.LimitError{Limit: engine.LimitMaxSessions, Max: caps.MaxSessions}
	case "LIMIT:a":
		return &engine.LimitError{Limit: engine.LimitMaxSessionsPerAddress, Max: caps.MaxSessionsPerAddress}
	case "LIMIT:u":
		return &engine.LimitError{Limit: engine.LimitMaxSessionsPerUser, Max: caps.MaxSessionsPerUser}
	}
	return fmt.Errorf("redisstore: inserting a session: unexpected reply %q", res)
}

// SessionByTokenHash returns the live session whose token hashes to h, or
// engine.ErrSessionNotFound. It costs one round trip to Redis.
func (s *Store) SessionByTokenHash(ctx context.Context, h engine.TokenHash, now time.Time) (*engine.Session, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	stored, err := s.read(ctx, s.keys.token(h), now)
	if err != nil {
		return nil, err
	}
	if stored.session.TokenHash != h {
		return nil, engine.ErrSessionNotFound
	}
	return stored.session, nil
}

// SessionByID returns the live session with that id, or engine.ErrSessionNotFound.
func (s *Store) SessionByID(ctx context.Context, id string, now time.Time) (*engine.Session, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	stored, err := s.read(ctx, s.keys.sessionID(id), now)
	if err != nil {
		return nil, err
	}
	if stored.session.ID != id {
		return nil, engine.ErrSessionNotFound
	}
	return stored.session, nil
}

// read returns the session the token or id key points to, with this node's pending uses
// applied, if it is live at now.
func (s *Store) read(ctx context.Context, indexKey string, now time.Time) (storedSession, error) {
	list, err := scriptReadSession.Run(ctx, s.rdb, []string{indexKey}).Slice()
	if err != nil {
		return storedSession{}, s.fail(ctx, "reading a session", err)
	}
	if len(list) == 0 {
		return storedSession{}, engine.ErrSessionNotFound
	}
	stored, err := decodeSession(list)
	if err != nil {
		return storedSession{}, err
	}
	applyUses(stored.session, s.touches.get(stored.session.ID))
	if stored.session.Expired(now) {
		return storedSession{}, engine.ErrSessionNotFound
	}
	return stored, nil
}

// UpdateSession applies fn to a copy of the live session and stores the result if the
// session did not change meanwhile (on any node); otherwise it reads it again and calls fn
// again, so fn may run more than once and must only change its argument. fn may change
// anything but the id and the account (an error otherwise), including the token hash and
// the client address. Last-use times never move back: a later use recorded meanwhile wins.
func (s *Store) UpdateSession(ctx context.Context, id string, now time.Time, fn func(*engine.Session) error) (*engine.Session, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if err := s.settle(ctx, id); err != nil {
		return nil, err
	}
	for range maxCASAttempts {
		stored, err := s.read(ctx, s.keys.sessionID(id), now)
		if err != nil {
			return nil, err
		}
		current := stored.session
		updated := current.Clone()
		if err := fn(updated); err != nil {
			return nil, err
		}
		if updated.ID != id || updated.UserKey() != current.UserKey() {
			return nil, errIdentity
		}
		f, err := encodeSession(updated)
		if err != nil {
			return nil, err
		}
		user := current.UserKey()
		k := s.keys
		reply, err := scriptUpdateSession.Run(ctx, s.rdb, []string{k.allSessions(), k.session(user, id)},
			k.global, stored.json, f.json, f.las, f.lan, f.lvs, f.lvn, f.idle, f.inact,
			f.lifeSecs, f.lifeNanos, f.permanent, k.token(updated.TokenHash), k.address(updated.ClientAddress),
		).StringSlice()
		if err != nil {
			return nil, s.fail(ctx, "updating a session", err)
		}
		switch reply[0] {
		case "OK":
			if len(reply) != 5 {
				return nil, fmt.Errorf("redisstore: updating a session: unexpected reply %q", reply)
			}
			if updated.LastAccessedAt, err = timeFromParts(reply[1], reply[2]); err != nil {
				return nil, err
			}
			if updated.LastActiveAt, err = timeFromParts(reply[3], reply[4]); err != nil {
				return nil, err
			}
			normalizeTimes(updated)
			return updated, nil
		case "RETRY":
			continue
		case "NOTFOUND":
			return nil, engine.ErrSessionNotFound
		case "DUPTOKEN":
			return nil, errDuplicateToken
		}
		return nil, fmt.Errorf("redisstore: updating a session: unexpected reply %q", reply)
	}
	return nil, errContention
}

// DeleteSessions removes the sessions with these ids, expired or not, on every node at once,
// and returns how many of them were live at now. It sends them purgeBatch at a time, so that
// a mass revoke does not block Redis for long; when it fails part of the way, the batches
// before stay deleted and their live sessions are counted.
func (s *Store) DeleteSessions(ctx context.Context, ids []string, now time.Time) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	if len(ids) == 0 {
		return 0, nil
	}
	if err := s.settle(ctx, ids...); err != nil {
		return 0, err
	}
	nowS, nowN := timeParts(now)
	args := make([]any, 0, 3+min(len(ids), purgeBatch))
	live := 0
	for len(ids) > 0 {
		batch := ids[:min(len(ids), purgeBatch)]
		ids = ids[len(batch):]
		args = append(args[:0], s.keys.global, nowS, nowN)
		for _, id := range batch {
			args = append(args, id)
		}
		n, err := scriptDeleteSessions.Run(ctx, s.rdb, []string{s.keys.allSessions()}, args...).Int()
		if err != nil {
			return live, s.fail(ctx, "deleting sessions", err)
		}
		live += n
	}
	return live, nil
}

// ListSessions returns the live sessions of these accounts (of all accounts when userKeys is
// empty), sorted by creation time, then id, with this node's pending uses applied.
func (s *Store) ListSessions(ctx context.Context, userKeys []string, now time.Time) ([]*engine.Session, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	// A session Redis holds as expired at now may be live here thanks to a use not yet
	// written; such a use is later than the session's stored expiry, so start there.
	from := now
	if first, ok := s.touches.earliest(); ok && first.Before(from) {
		from = first
	}
	indexes := []string{s.keys.allSessions()}
	if len(userKeys) > 0 {
		indexes = indexes[:0]
		for i, key := range userKeys {
			if !slices.Contains(userKeys[:i], key) {
				indexes = append(indexes, s.keys.userSessions(key))
			}
		}
	}
	minScore := float64(millis(from))
	seen := make(map[string]bool)
	var out []*engine.Session
	for _, index := range indexes {
		for cursor := uint64(0); ; {
			entries, next, err := s.rdb.ZScan(ctx, index, cursor, "", listPage).Result()
			if err != nil {
				return nil, s.fail(ctx, "listing sessions", err)
			}
			args := []any{s.keys.global}
			for i := 0; i+1 < len(entries); i += 2 {
				id := entries[i]
				score, err := strconv.ParseFloat(entries[i+1], 64)
				if err != nil {
					return nil, fmt.Errorf("redisstore: listing sessions: score %q of %s: %w", entries[i+1], id, err)
				}
				if score >= minScore && !seen[id] {
					seen[id] = true
					args = append(args, id)
				}
			}
			if len(args) > 1 {
				if out, err = s.appendListed(ctx, out, args, now); err != nil {
					return nil, err
				}
			}
			if next == 0 {
				break
			}
			cursor = next
		}
	}
	slices.SortFunc(out, func(a, b *engine.Session) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// listPage is how many index entries a listing asks Redis for a step (ZSCAN's COUNT), and
// so about how many records one script reads: a listing of a million sessions does not
// hold Redis up for the other nodes' token checks while it runs.
const listPage = 1000

// appendListed appends to out the sessions, live at now, whose ids follow the global prefix
// in args, with this node's recorded uses applied.
func (s *Store) appendListed(ctx context.Context, out []*engine.Session, args []any, now time.Time) ([]*engine.Session, error) {
	list, err := scriptSessionRecords.Run(ctx, s.rdb, []string{s.keys.allSessions()}, args...).Slice()
	if err != nil {
		return nil, s.fail(ctx, "listing sessions", err)
	}
	for _, item := range list {
		fields, ok := item.([]any)
		if !ok {
			return nil, fmt.Errorf("redisstore: listing sessions: unexpected reply element %T", item)
		}
		stored, err := decodeSession(fields)
		if err != nil {
			return nil, err
		}
		sess := stored.session
		applyUses(sess, s.touches.get(sess.ID))
		if !sess.Expired(now) {
			out = append(out, sess)
		}
	}
	return out, nil
}

// Touch records use of a session in memory; it reaches Redis at the next background write
// (every FlushInterval), Flush or Close, and meanwhile this node's reads see it. It never
// waits for Redis and ignores unknown sessions (the write skips them), sessions that had
// expired by at, and times earlier than those recorded.
func (s *Store) Touch(ctx context.Context, id string, at time.Time, active bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.touches.add(id, at, active)
	return nil
}

// PurgeExpired removes the sessions that have expired by now, from every index, and returns
// how many. It works in batches, so Redis is never blocked for long. Several nodes may purge
// at once; each session is removed once.
func (s *Store) PurgeExpired(ctx context.Context, now time.Time) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	if err := s.settle(ctx); err != nil {
		return 0, err
	}
	nowS, nowN := timeParts(now)
	total := 0
	for {
		res, err := scriptPurgeExpired.Run(ctx, s.rdb, []string{s.keys.allSessions()}, s.keys.global, nowS, nowN, purgeBatch).Int64Slice()
		if err != nil {
			return total, s.fail(ctx, "removing expired sessions", err)
		}
		if len(res) != 3 {
			return total, fmt.Errorf("redisstore: removing expired sessions: unexpected reply %v", res)
		}
		removed, dropped, looked := res[0], res[1], res[2]
		total += int(removed)
		if looked < purgeBatch || removed+dropped < looked {
			return total, nil
		}
	}
}
