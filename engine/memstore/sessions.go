package memstore

import (
	"cmp"
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/sessiond/sessiond/engine"
)

var errSessionIdentity = errors.New("memstore: UpdateSession cannot change a session's id or account")

// InsertSession stores a copy of sess if its account exists and the caps allow it. Only live
// sessions count: when a count has reached its cap, the sessions that have expired by now
// and would make room are removed first (expiredAtCap: a cost in proportion to how many
// expired or to the size of the user's or address's group at its cap, never to how many
// sessions the store holds). An
// empty ClientAddress is not subject to MaxSessionsPerAddress. Besides the errors of
// engine.SessionStore it returns an error if the id or the token hash is already in use.
func (s *Store) InsertSession(ctx context.Context, sess *engine.Session, caps engine.Caps, now time.Time) error {
	if err := s.writable(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := s.checkNewSession(sess); err != nil {
		return err
	}
	nowN := packTime(now)
	userKey := sess.UserKey()
	expired := s.expiredAtCap(userKey, sess.ClientAddress, caps, nowN)
	if err := s.overCap(userKey, sess.ClientAddress, caps, expired); err != nil {
		if len(expired) > 0 {
			// Freeing the expired sessions is worth keeping even though sess is refused; a
			// journal failure here only postpones it to PurgeExpired.
			if s.deleteRecords(expired) != nil {
				s.repush(expired)
			}
		}
		return err
	}
	stored := normalSession(sess)
	if s.journal != nil {
		b := &Batch{Sessions: []*engine.Session{stored}, DeletedSessions: s.ids(expired)}
		if err := s.journal.Commit(b); err != nil {
			s.repush(expired)
			return err
		}
	}
	s.removeRecords(expired)
	return s.addRecord(stored) // cannot fail: checkNewSession passed under the same lock
}

// SessionByTokenHash returns a copy of the live session whose token hashes to h, or
// engine.ErrSessionNotFound.
func (s *Store) SessionByTokenHash(ctx context.Context, h engine.TokenHash, now time.Time) (*engine.Session, error) {
	nowN := packTime(now)
	if err := s.readable(ctx); err != nil {
		return nil, err
	}
	return s.copyOut(s.findToken(h), nowN)
}

// SessionByID returns a copy of the live session with that id, or engine.ErrSessionNotFound.
func (s *Store) SessionByID(ctx context.Context, id string, now time.Time) (*engine.Session, error) {
	nowN := packTime(now)
	if err := s.readable(ctx); err != nil {
		return nil, err
	}
	return s.copyOut(s.find(id), nowN)
}

// copyOut returns the session in slot n if it is live at now. It is called with the read
// lock held and releases it, building the result outside the lock.
func (s *Store) copyOut(n slot, now int64) (*engine.Session, error) {
	if n == 0 || !s.slabs.at(n).live(now) {
		s.mu.RUnlock()
		return nil, engine.ErrSessionNotFound
	}
	return s.unlockAndCopy(n, false), nil
}

// unlockAndCopy copies out the session in slot n, releasing the read lock (or with write, the
// write lock) once the record is copied and before it is converted.
func (s *Store) unlockAndCopy(n slot, write bool) *engine.Session {
	snapshot := *s.slabs.at(n)
	address := s.addrs.key(snapshot.addr)
	if write {
		s.mu.Unlock()
	} else {
		s.mu.RUnlock()
	}
	out := new(engine.Session)
	snapshot.fill(out, address)
	return out
}

// UpdateSession applies fn to a copy of the live session and stores the result. fn runs
// under the store's lock and must not call the store. It may change anything but the id and
// the account (an error otherwise), including the token hash and the client address.
func (s *Store) UpdateSession(ctx context.Context, id string, now time.Time, fn func(*engine.Session) error) (*engine.Session, error) {
	nowN := packTime(now)
	if err := s.writable(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	n := s.find(id)
	if n == 0 || !s.slabs.at(n).live(nowN) {
		return nil, engine.ErrSessionNotFound
	}
	r := s.slabs.at(n)
	updated := s.session(n)
	if err := fn(updated); err != nil {
		return nil, err
	}
	if updated.ID != id || updated.UserKey() != s.users.key(r.user) {
		return nil, errSessionIdentity
	}
	if other := s.findToken(updated.TokenHash); other != 0 && other != n {
		return nil, errDuplicateToken
	}
	stored := normalSession(updated)
	if err := s.commit(&Batch{Sessions: []*engine.Session{stored}}); err != nil {
		return nil, err
	}
	s.replaceRecord(n, stored)
	return s.session(n), nil
}

// DeleteSessions removes the sessions with these ids, expired or not, and returns how many
// of them were live at now. It removes them writeChunk ids at a time, each chunk under one
// hold of the write lock with the journal's write of its deletion, so that a mass revoke
// does not hold every token check up: 200,000 sessions at once held the lock for 260-330 ms.
// Another caller may see some of the sessions deleted and not yet the others. When it fails
// part of the way, the chunks before stay deleted and their live sessions are counted.
func (s *Store) DeleteSessions(ctx context.Context, ids []string, now time.Time) (int, error) {
	nowN := packTime(now)
	live := 0
	for {
		chunk := ids[:min(len(ids), writeChunk)]
		n, err := s.deleteSome(ctx, chunk, nowN)
		live += n
		if ids = ids[len(chunk):]; err != nil || len(ids) == 0 {
			return live, err
		}
		runtime.Gosched() // on one processor, a token check waiting for the lock runs first
	}
}

// deleteSome removes the sessions with these ids under one hold of the write lock, and
// returns how many of them were live.
func (s *Store) deleteSome(ctx context.Context, ids []string, nowN int64) (int, error) {
	if err := s.writable(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	var doomed []slot
	seen := make(map[slot]bool, len(ids))
	live := 0
	for _, id := range ids {
		n := s.find(id)
		if n == 0 || seen[n] {
			continue
		}
		seen[n] = true
		doomed = append(doomed, n)
		if s.slabs.at(n).live(nowN) {
			live++
		}
	}
	if len(doomed) == 0 {
		return 0, nil
	}
	if err := s.deleteRecords(doomed); err != nil {
		return 0, err
	}
	return live, nil
}

// ListSessions returns copies of the live sessions of these accounts (of all accounts when
// userKeys is empty), sorted by creation time, then id.
func (s *Store) ListSessions(ctx context.Context, userKeys []string, now time.Time) ([]*engine.Session, error) {
	nowN := packTime(now)
	out := make([]*engine.Session, 0)
	var err error
	if len(userKeys) == 0 {
		out, err = s.listAll(ctx, nowN, out)
	} else {
		out, err = s.listUsers(ctx, nowN, userKeys, out)
	}
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b *engine.Session) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// listUsers appends the live sessions of the accounts of userKeys to out, as listAll does:
// listChunk sessions under one hold of the read lock.
func (s *Store) listUsers(ctx context.Context, nowN int64, userKeys []string, out []*engine.Session) ([]*engine.Session, error) {
	var c copies
	for i, key := range userKeys {
		if slices.Contains(userKeys[:i], key) {
			continue
		}
		if err := s.readable(ctx); err != nil {
			return nil, err
		}
		// The members' order changes as sessions leave (a removal moves the last one into
		// its place), so the listing goes through the slots they had at the start; a slot
		// since taken by another account's session is skipped.
		members := slices.Clone(s.users.members(key))
		s.mu.RUnlock()
		err := inChunks(ctx, s, members, func(chunk []slot) {
			for _, n := range chunk {
				if r := s.slabs.at(n); r.id != "" && s.users.key(r.user) == key && r.live(nowN) {
					c.add(s, r)
				}
			}
		}, func() { out = c.appendTo(out) })
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// inChunks calls hold on items listChunk at a time, each call under one hold of the read
// lock, and then letGo, if not nil, once it is let go of; a goroutine waiting for the lock
// (a token check, on one processor) runs before the next hold.
func inChunks[T any](ctx context.Context, s *Store, items []T, hold func(chunk []T), letGo func()) error {
	for len(items) > 0 {
		chunk := items[:min(len(items), listChunk)]
		items = items[len(chunk):]
		if err := s.readable(ctx); err != nil {
			return err
		}
		hold(chunk)
		s.mu.RUnlock()
		if letGo != nil {
			letGo()
		}
		runtime.Gosched()
	}
	return nil
}

// listAll appends every live session to out, going through the slots listChunk at a time:
// it copies their records under the read lock and makes the sessions from the copies after
// letting go of it. Holding it throughout, copying a million sessions out took 1.4-1.9 s,
// during which no token check could touch its session. A session that lives through the
// whole listing is listed once; one created or deleted meanwhile may be or not, as if the
// listing had come a moment earlier or later.
func (s *Store) listAll(ctx context.Context, nowN int64, out []*engine.Session) ([]*engine.Session, error) {
	var c copies
	for from := slot(1); ; {
		if err := s.readable(ctx); err != nil {
			return nil, err
		}
		end := s.slabs.used
		to := min(from+listChunk, end)
		for n := from; n < to; n++ {
			if r := s.slabs.at(n); r.id != "" && r.live(nowN) {
				c.add(s, r)
			}
		}
		s.mu.RUnlock()
		out = c.appendTo(out)
		if to >= end {
			return out, nil
		}
		from = to
		runtime.Gosched() // on one processor, a token check waiting for it runs first
	}
}

// copies are records copied under the read lock, with their addresses, to be made into
// sessions after letting go of it.
type copies struct {
	recs  []record
	addrs []string
}

// add copies the record r; the read lock is held.
func (c *copies) add(s *Store, r *record) {
	c.recs = append(c.recs, *r)
	c.addrs = append(c.addrs, s.addrs.key(r.addr))
}

// appendTo appends the sessions of the copies to out and empties c.
func (c *copies) appendTo(out []*engine.Session) []*engine.Session {
	for i := range c.recs {
		sess := new(engine.Session)
		c.recs[i].fill(sess, c.addrs[i])
		out = append(out, sess)
	}
	c.recs, c.addrs = c.recs[:0], c.addrs[:0]
	return out
}

// listChunk is how many slots listAll goes through under one hold of the read lock.
const listChunk = 1024

// Touch moves the session's LastAccessedAt (and LastActiveAt when active) forward to at. It
// ignores unknown sessions, sessions that have expired by at (use cannot revive them) and
// times earlier than those recorded.
func (s *Store) Touch(ctx context.Context, id string, at time.Time, active bool) error {
	atN := packTime(at)
	if err := s.writable(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if n := s.find(id); n != 0 && s.slabs.at(n).live(atN) {
		s.touch(n, atN, active)
	}
	return nil
}

// TouchByTokenHash touches the live session whose token hashes to h and returns a copy of it
// (engine.TokenToucher).
func (s *Store) TouchByTokenHash(ctx context.Context, h engine.TokenHash, at time.Time, active bool) (*engine.Session, error) {
	atN := packTime(at)
	if err := s.writable(ctx); err != nil {
		return nil, err
	}
	n := s.touchToken(h, atN, active)
	if n == 0 {
		s.mu.Unlock()
		return nil, engine.ErrSessionNotFound
	}
	return s.unlockAndCopy(n, true), nil
}

// TouchToken touches the live session whose token hashes to h, without copying it out
// (engine.TokenToucher).
func (s *Store) TouchToken(ctx context.Context, h engine.TokenHash, at time.Time, active bool) error {
	atN := packTime(at)
	if err := s.writable(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if s.touchToken(h, atN, active) == 0 {
		return engine.ErrSessionNotFound
	}
	return nil
}

// touchToken touches the session live at atN whose token hashes to h, and returns its slot,
// or 0 if there is none. The write lock is held.
func (s *Store) touchToken(h engine.TokenHash, atN int64, active bool) slot {
	n := s.findToken(h)
	if n == 0 || !s.slabs.at(n).live(atN) {
		return 0
	}
	s.touch(n, atN, active)
	return n
}

// touch records a use at atN of the live session in slot n. The write lock is held.
func (s *Store) touch(n slot, atN int64, active bool) {
	r := s.slabs.at(n)
	changed := false
	if atN > r.lastAccessedAt {
		r.lastAccessedAt = atN
		changed = true
	}
	if active && atN > r.lastActiveAt {
		r.lastActiveAt = atN
		changed = true
	}
	if !changed {
		return
	}
	// The expiry can only move later, so the heap entry stays a valid lower bound.
	r.touchExpiry(atN)
	if s.journal != nil && !r.touched {
		r.touched = true
		s.touched = append(s.touched, n)
	}
}

// PurgeExpired removes the sessions that have expired by now and returns how many; on an
// error, how many it removed before (it removes them writeChunk at a time).
func (s *Store) PurgeExpired(ctx context.Context, now time.Time) (int, error) {
	nowN := packTime(now)
	total := 0
	for {
		n, err := s.purgeSome(ctx, nowN)
		total += n
		if err != nil || n < writeChunk {
			return total, err
		}
		runtime.Gosched() // on one processor, a token check waiting for the lock runs first
	}
}

// purgeSome removes up to writeChunk expired sessions under one hold of the write lock, and
// returns how many.
func (s *Store) purgeSome(ctx context.Context, nowN int64) (int, error) {
	if err := s.writable(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	expired := s.popExpired(nowN, writeChunk)
	if len(expired) == 0 {
		return 0, nil
	}
	if err := s.deleteRecords(expired); err != nil {
		s.repush(expired)
		return 0, err
	}
	return len(expired), nil
}

// writeChunk is how many sessions DeleteSessions and PurgeExpired remove under one hold of
// the write lock: sessions made together expire together, and a million of them removed at
// once, with the journal's write of their deletion, would hold every token check up for
// seconds (4,096 take about 5 ms).
const writeChunk = 4096

// session returns a new engine.Session for the record in slot n.
func (s *Store) session(n slot) *engine.Session {
	r := s.slabs.at(n)
	out := new(engine.Session)
	r.fill(out, s.addrs.key(r.addr))
	return out
}

// checkNewSession checks that sess may be added: its account exists and its id and token
// hash are free.
func (s *Store) checkNewSession(sess *engine.Session) error {
	if _, ok := s.accounts[sess.UserKey()]; !ok {
		return engine.ErrAccountNotFound
	}
	if sess.ID == "" {
		return errNoID
	}
	if s.find(sess.ID) != 0 {
		return errDuplicateID
	}
	if s.findToken(sess.TokenHash) != 0 {
		return errDuplicateToken
	}
	return nil
}

// expiredAtCap takes out of the expiry heap the expired sessions that a new session of
// userKey from address needs gone to fit under the caps it is at (a count that has reached
// its cap counts expired sessions too), and returns them, none if no cap is reached, still
// indexed otherwise (as popExpired does): as many of the first due as put the store under
// MaxSessions, and every expired session of the user and of the address when theirs are
// reached. It does not go through every expired session, which could be a million of
// them after a mass expiry, under the lock every token check takes: PurgeExpired takes
// those, a chunk at a time.
func (s *Store) expiredAtCap(userKey, address string, caps engine.Caps, now int64) []slot {
	var expired []slot
	if n := s.sessions.len(); caps.MaxSessions > 0 && n >= caps.MaxSessions {
		expired = s.popExpired(now, n-caps.MaxSessions+1)
	}
	if caps.MaxSessionsPerAddress > 0 && address != "" {
		if members := s.addrs.members(address); len(members) >= caps.MaxSessionsPerAddress {
			expired = s.popExpiredOf(members, now, expired)
		}
	}
	if caps.MaxSessionsPerUser > 0 {
		if members := s.users.members(userKey); len(members) >= caps.MaxSessionsPerUser {
			expired = s.popExpiredOf(members, now, expired)
		}
	}
	return expired
}

// popExpiredOf takes the expired sessions among members out of the expiry heap and appends
// them to expired; those taken out already (by popExpired) are not in the heap. A stored
// expiry still ahead of now proves a member live (it is a lower bound); only one already
// passed is read exactly, with expiry(), which keeps what it computes for a record whose
// expiry was behind, so that inserts refused again at the same cap do not compute it again.
func (s *Store) popExpiredOf(members []slot, now int64, expired []slot) []slot {
	for _, n := range members {
		if r := s.slabs.at(n); r.heapIndex >= 0 && r.expiresAt <= now && r.expiry() <= now {
			s.heapRemove(int(r.heapIndex))
			expired = append(expired, n)
		}
	}
	return expired
}

// overCap returns the *engine.LimitError of the first cap a new session would exceed, given
// that expired (from expiredAtCap) are about to go. Every session it counts otherwise is
// live: a group at its cap has had all its expired sessions taken, and at MaxSessions
// either enough were taken to make room or all the expired ones were.
func (s *Store) overCap(userKey, address string, caps engine.Caps, expired []slot) error {
	if caps.MaxSessions > 0 && s.sessions.len()-len(expired) >= caps.MaxSessions {
		return &engine.LimitError{Limit: engine.LimitMaxSessions, Max: caps.MaxSessions}
	}
	if caps.MaxSessionsPerAddress > 0 && address != "" {
		g := s.addrs.numbers[address]
		live := len(s.addrs.members(address))
		for _, n := range expired {
			if s.slabs.at(n).addr == g {
				live--
			}
		}
		if live >= caps.MaxSessionsPerAddress {
			return &engine.LimitError{Limit: engine.LimitMaxSessionsPerAddress, Max: caps.MaxSessionsPerAddress}
		}
	}
	if caps.MaxSessionsPerUser > 0 {
		g := s.users.numbers[userKey]
		live := len(s.users.members(userKey))
		for _, n := range expired {
			if s.slabs.at(n).user == g {
				live--
			}
		}
		if live >= caps.MaxSessionsPerUser {
			return &engine.LimitError{Limit: engine.LimitMaxSessionsPerUser, Max: caps.MaxSessionsPerUser}
		}
	}
	return nil
}

// addRecord indexes a new record for sess, whose account exists. It returns errNoID,
// errDuplicateID or errDuplicateToken, adding nothing, if the id is empty or the id or token
// hash is taken.
func (s *Store) addRecord(sess *engine.Session) error {
	if sess.ID == "" {
		return errNoID // an empty id marks a free slot
	}
	n := s.slabs.alloc()
	r := s.slabs.at(n)
	r.id, r.tokenHash = sess.ID, sess.TokenHash
	if !s.sessions.put(&s.slabs, n) {
		s.slabs.release(n)
		return errDuplicateID
	}
	if !s.byToken.put(&s.slabs, n) {
		s.sessions.del(&s.slabs, n)
		s.slabs.release(n)
		return errDuplicateToken
	}
	r.heapIndex = -1
	r.setFields(sess, &s.profiles)
	r.user, r.userPos = s.users.join(sess.UserKey(), n)
	s.joinAddr(n, sess.ClientAddress)
	if r.expiresAt != never {
		s.heapPush(n)
	}
	return nil
}

// replaceRecord updates the record in slot n to sess, which has the same id and account.
func (s *Store) replaceRecord(n slot, sess *engine.Session) {
	r := s.slabs.at(n)
	if sess.TokenHash != r.tokenHash {
		s.byToken.del(&s.slabs, n)
		r.tokenHash = sess.TokenHash
		s.byToken.put(&s.slabs, n) // free: UpdateSession checked
	}
	if sess.ClientAddress != s.addrs.key(r.addr) {
		s.leaveAddr(n)
		s.joinAddr(n, sess.ClientAddress)
	}
	r.setFields(sess, &s.profiles)
	switch {
	case r.expiresAt == never:
		// A stale heap entry, if any, is dropped when it surfaces.
	case r.heapIndex < 0:
		s.heapPush(n)
	case r.expiresAt < s.expiry[r.heapIndex].at:
		s.heapLower(r, r.expiresAt)
	}
}

// deleteRecords journals the deletion of the sessions in slots ns and then removes them from
// memory; when the journal fails it removes nothing. The write lock is held.
func (s *Store) deleteRecords(ns []slot) error {
	if err := s.commit(&Batch{DeletedSessions: s.ids(ns)}); err != nil {
		return err
	}
	s.removeRecords(ns)
	return nil
}

func (s *Store) removeRecords(ns []slot) {
	for _, n := range ns {
		s.removeRecord(n)
	}
}

func (s *Store) removeRecord(n slot) {
	r := s.slabs.at(n)
	s.sessions.del(&s.slabs, n)
	s.byToken.del(&s.slabs, n)
	if moved := s.users.leave(r.user, r.userPos); moved != 0 {
		s.slabs.at(moved).userPos = r.userPos
	}
	s.leaveAddr(n)
	if r.heapIndex >= 0 {
		s.heapRemove(int(r.heapIndex))
	}
	s.slabs.release(n)
}

// joinAddr adds the session in slot n to the group of address; an empty address is no group.
func (s *Store) joinAddr(n slot, address string) {
	r := s.slabs.at(n)
	r.addr, r.addrPos = 0, 0
	if address != "" {
		r.addr, r.addrPos = s.addrs.join(address, n)
	}
}

func (s *Store) leaveAddr(n slot) {
	r := s.slabs.at(n)
	if r.addr == 0 {
		return
	}
	if moved := s.addrs.leave(r.addr, r.addrPos); moved != 0 {
		s.slabs.at(moved).addrPos = r.addrPos
	}
	r.addr = 0
}

// findToken returns the slot of the session whose token hashes to h, live or not, or 0.
func (s *Store) findToken(h engine.TokenHash) slot { return s.byToken.get(&s.slabs, h) }

// find returns the slot of the session with that id, live or not, or 0.
func (s *Store) find(id string) slot { return s.sessions.get(&s.slabs, id) }

// ids returns the ids of the sessions in ns, nil if there are none.
func (s *Store) ids(ns []slot) []string {
	if len(ns) == 0 {
		return nil
	}
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = s.slabs.at(n).id
	}
	return out
}
