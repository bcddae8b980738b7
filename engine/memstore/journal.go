package memstore

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/sessiond/sessiond/engine"
)

// Journal makes changes durable for a persistent store built on a Store.
type Journal interface {
	// Commit writes b, all of it or nothing where it can. The Store calls it with its write
	// lock held, before it changes memory, and applies b only if Commit returns nil;
	// otherwise it returns Commit's error and memory is unchanged, with one exception: an
	// *AccountsDeletedError. Commit must not call the Store, and must not modify b
	// or keep it after returning.
	Commit(b *Batch) error
}

// AccountsDeletedError is the error of a Commit that wrote the deletion of some of a batch's
// DeletedAccounts but failed to write the rest of the batch (a journal that cannot write a
// large batch at once writes the account deletions first, and drops what is left of those
// accounts when it next loads). The Store then forgets the accounts in Keys, with their
// sessions and preferences, as the next load will, and returns the error: a write for one of
// them afterwards would be acknowledged and then dropped. Until the next load it also refuses
// to create an account of one of those names, which would otherwise inherit the leftovers.
type AccountsDeletedError struct {
	Keys []string // canonical usernames whose deletion is written
	Err  error    // why the rest was not
}

func (e *AccountsDeletedError) Error() string {
	return fmt.Sprintf("memstore: accounts %q deleted, but not everything they held: %v", e.Keys, e.Err)
}

func (e *AccountsDeletedError) Unwrap() error { return e.Err }

// Batch is one change: the records to write and the keys to delete. Records are the complete
// new versions, as the Store will give them back.
type Batch struct {
	Accounts           []*engine.Account
	DeletedAccounts    []string // canonical usernames
	Sessions           []*engine.Session
	DeletedSessions    []string // session ids
	Preferences        []Preference
	DeletedPreferences []PreferenceKey
}

// Preference is one stored preference value.
type Preference struct {
	UserKey, Label, Value string
}

// PreferenceKey names one preference.
type PreferenceKey struct {
	UserKey, Label string
}

// Touched is the state of a session's clocks after Touch changed them.
type Touched struct {
	ID             string
	LastAccessedAt time.Time
	LastActiveAt   time.Time
}

// DrainTouched appends to dst the sessions that Touch changed since the last call and still
// exist, with their current last-use times, forgets them, and returns the extended dst. Only
// a Store with a Journal keeps track; without one it appends nothing. It works after Close,
// for a last flush. A caller that drains often reuses dst: at a million sessions a drain
// can list hundreds of thousands.
//
// It lists drainChunk sessions at a time under the store's lock and lets go of it between
// them, so that token checks are not held up for the whole drain. Sessions first touched
// during a drain wait for the next. A session whose slot was freed and reused since the
// last drain, and touched again between two chunks, may be listed twice, the later entry
// with the later times.
func (s *Store) DrainTouched(dst []Touched) []Touched {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	done, end := 0, -1
	for {
		s.mu.Lock()
		if end < 0 {
			end = len(s.touched)
		}
		next := min(done+drainChunk, end)
		dst = slices.Grow(dst, next-done)
		for _, n := range s.touched[done:next] {
			// A session deleted since has a zeroed record, and one reusing its slot has
			// an entry of its own: the flag lists it at the first of them it finds set.
			r := s.slabs.at(n)
			if !r.touched {
				continue
			}
			r.touched = false
			dst = append(dst, Touched{
				ID:             r.id,
				LastAccessedAt: unpackTime(r.lastAccessedAt),
				LastActiveAt:   unpackTime(r.lastActiveAt),
			})
		}
		done = next
		if done == end {
			s.touched = s.touched[:copy(s.touched, s.touched[end:])] // touched meanwhile
			if cap(s.touched) > 4096 && len(s.touched) < cap(s.touched)/4 {
				// A burst is over: give its memory back.
				s.touched = append([]slot(nil), s.touched...)
			}
			s.mu.Unlock()
			return dst
		}
		s.mu.Unlock()
		runtime.Gosched() // a token check waiting for the lock gets it before the next chunk
	}
}

// drainChunk is how many touched sessions DrainTouched lists under one hold of the store's
// lock. At a million sessions each costs about 90 ns (its record is rarely in a cache):
// 120,000 listed under one hold, as every second under load, kept token checks waiting 11 ms.
const drainChunk = 4096

// RestoreAccount adds an account read back from storage, without journaling it. It is meant
// for loading a persistent store before it is used.
func (s *Store) RestoreAccount(a *engine.Account) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	key := a.Key()
	if _, ok := s.accounts[key]; ok {
		return fmt.Errorf("memstore: restore account %q: %w", key, engine.ErrAccountExists)
	}
	s.putAccount(key, normalAccount(a))
	return nil
}

// RestoreSessions adds sessions read back from storage, without journaling them or
// checking caps; expired ones are kept until PurgeExpired. Their accounts must have been
// restored first. A session that cannot be added is passed to rejected with the reason:
// engine.ErrAccountNotFound for a session whose account is gone (a persistent store should
// then delete it), or a duplicate id or token hash. rejected runs under the store's lock.
func (s *Store) RestoreSessions(sessions []engine.Session, rejected func(sess *engine.Session, err error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.warmIndexes(sessions)
	for i := range sessions {
		sess := &sessions[i]
		err := engine.ErrAccountNotFound
		if _, ok := s.accounts[sess.UserKey()]; ok {
			err = s.addRecord(sess) // checks the id and token hash as it indexes them
		}
		if err != nil {
			rejected(sess, fmt.Errorf("memstore: restore session %s: %w", sess.ID, err))
		}
	}
	return nil
}

// warmIndexes reads the index places where sessions will go, before they are added. In a
// large store each is a cache miss; read in a loop of their own, many are in flight at once,
// where adding the sessions one by one waits for each in turn. The caller holds the lock.
func (s *Store) warmIndexes(sessions []engine.Session) {
	s.sessions.reserve(s.sessions.len() + len(sessions)) // no resize moves the table meanwhile
	s.byToken.reserve(s.byToken.len() + len(sessions))
	var sink uint32
	for i := range sessions {
		sink += s.sessions.place(sessions[i].ID) + s.byToken.place(sessions[i].TokenHash)
	}
	s.warmSink = sink
}

// RestorePreference adds a preference read back from storage, without journaling it or
// checking the limit. It returns ErrAccountNotFound if the account has not been restored.
func (s *Store) RestorePreference(userKey, label, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, ok := s.accounts[userKey]; !ok {
		return fmt.Errorf("memstore: restore preference of %q: %w", userKey, engine.ErrAccountNotFound)
	}
	s.putPreference(userKey, label, value)
	return nil
}

var (
	errNoID           = errors.New("memstore: a session needs an id")
	errDuplicateID    = errors.New("memstore: a session with this id exists")
	errDuplicateToken = errors.New("memstore: a session with this token hash exists")
)

// RestoreTouched moves the last-use times of the listed sessions forward to the given ones,
// as Touch would, but without checking expiry and without listing them for DrainTouched.
// Sessions that do not exist are ignored, and times earlier than the recorded ones change
// nothing. It is meant for a persistent store that keeps last-use times apart from its
// session records, to apply them after RestoreSessions; the ids are not kept.
func (s *Store) RestoreTouched(touched []Touched) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	slots := s.findAll(touched)
	for i := range touched {
		n := slots[i]
		if n == 0 {
			continue
		}
		r := s.slabs.at(n)
		t := &touched[i]
		accessed, active := packTime(t.LastAccessedAt), packTime(t.LastActiveAt)
		changed := false
		if accessed > r.lastAccessedAt {
			r.lastAccessedAt, changed = accessed, true
		}
		if active > r.lastActiveAt {
			r.lastActiveAt, changed = active, true
		}
		if changed {
			// The expiry can only move later, so the heap entry stays a valid lower bound.
			r.refreshExpiry()
		}
	}
	return nil
}

// findAll returns the slots of the listed sessions (0 for those that do not exist). Lookups
// in a large store are cache misses; a long list is split over the cores. The caller holds
// the lock, which keeps the indexes still while the lookups run.
func (s *Store) findAll(touched []Touched) []slot {
	slots := make([]slot, len(touched))
	const minPart = 4096
	parts := min(runtime.GOMAXPROCS(0), len(touched)/minPart)
	if parts <= 1 {
		s.findRange(touched, slots)
		return slots
	}
	var wg sync.WaitGroup
	size := (len(touched) + parts - 1) / parts
	for start := 0; start < len(touched); start += size {
		end := min(start+size, len(touched))
		wg.Go(func() { s.findRange(touched[start:end], slots[start:end]) })
	}
	wg.Wait()
	return slots
}

// findRange sets slots[i] to the slot of touched[i]. It tries the slot after the previous
// one found before the index: lists often follow slot order, and that slot is then a read
// of the next record instead of two cache misses. A snapshot of last-use times lists the
// sessions in slot order, and load gives sessions their slots in the order of their ids, so
// after a restart the snapshot written before it mostly follows slot order again.
func (s *Store) findRange(touched []Touched, slots []slot) {
	next := slot(0)
	for i := range touched {
		id := touched[i].ID
		if next != 0 && next < s.slabs.used && id != "" && s.slabs.at(next).id == id { // a free slot's id is ""
			slots[i], next = next, next+1
			continue
		}
		n := s.find(id)
		slots[i] = n
		if n != 0 {
			next = n + 1
		}
	}
}

// LastUses appends to dst the current last-use times of up to limit sessions, expired ones
// included, starting at position from, and returns them with the position to continue from,
// or -1 after the last session. Positions are slots: a walk from 0 to -1 lists every session
// that existed throughout, each once; a session added or removed meanwhile may or may not be
// listed. A persistent store uses it to write a snapshot of all last-use times in pieces.
func (s *Store) LastUses(from, limit int, dst []Touched) ([]Touched, int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	from = max(from, 1) // slot 0 is never used
	end := int(s.slabs.used)
	n := from
	for ; n < end && limit > 0; n++ {
		r := s.slabs.at(slot(n))
		if r.id == "" { // a free slot
			continue
		}
		dst = append(dst, Touched{
			ID:             r.id,
			LastAccessedAt: unpackTime(r.lastAccessedAt),
			LastActiveAt:   unpackTime(r.lastActiveAt),
		})
		limit--
	}
	if n >= end {
		return dst, -1
	}
	return dst, n
}

// SessionCount returns how many sessions the store holds, expired ones included.
func (s *Store) SessionCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sessions.len()
}
