package memstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/sessiond/sessiond/engine"
)

// ErrClosed is returned by every method of a closed Store. It wraps engine.ErrUnavailable.
var ErrClosed = fmt.Errorf("%w: the store is closed", engine.ErrUnavailable)

// Options configure a Store. The zero value is a plain in-memory store.
type Options struct {
	// Journal, when set, receives every change before it is applied, and the store remembers
	// which sessions Touch changed until DrainTouched collects them.
	Journal Journal
}

// Store is an in-memory engine.Store. It is safe for concurrent use.
type Store struct {
	mu      sync.RWMutex
	closed  bool
	journal Journal

	accounts map[string]*engine.Account // by canonical username
	// deletedOnDisk holds the accounts whose deletion a journal wrote only in part
	// (AccountsDeletedError): their names are not taken again before the next load.
	deletedOnDisk map[string]struct{}
	admins        int // accounts with the admin role
	prefs         map[string]map[string]string

	slabs    slabs
	sessions index[string]           // by id
	byToken  index[engine.TokenHash] // by token hash
	users    groupSet                // by canonical username
	addrs    groupSet                // by client address
	expiry   []dueEntry
	// warmSink keeps the reads of warmIndexes from being optimised away.
	warmSink uint32
	touched  []slot // waiting for DrainTouched; only with a journal
	profiles profileCache
	drainMu  sync.Mutex // one DrainTouched at a time: it lets go of mu between chunks
}

var _ engine.Store = (*Store)(nil)

// New returns an empty Store.
func New(opts Options) *Store {
	return &Store{
		journal:       opts.Journal,
		accounts:      make(map[string]*engine.Account),
		deletedOnDisk: make(map[string]struct{}),
		prefs:         make(map[string]map[string]string),
		sessions:      newIndex(idDigest(maphash.MakeSeed()), func(r *record) string { return r.id }),
		byToken:       newIndex(tokenDigest, func(r *record) engine.TokenHash { return r.tokenHash }),
		users:         newGroupSet(),
		addrs:         newGroupSet(),
	}
}

// idDigest hashes session ids with a seed of the store's own.
func idDigest(seed maphash.Seed) func(string) uint64 {
	return func(id string) uint64 { return maphash.String(seed, id) }
}

// tokenDigest is the first 64 bits of a token hash, which is already a SHA-256.
func tokenDigest(h engine.TokenHash) uint64 { return binary.LittleEndian.Uint64(h[:8]) }

// Reserve makes room for about n sessions in an empty store, so that loading them does not
// grow the indexes step by step (rehashing them a dozen times for a million). It is a hint
// for persistent stores at open: fewer or more sessions may follow. It does nothing once the
// store has held a session.
func (s *Store) Reserve(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 || s.slabs.used != 0 || s.closed {
		return
	}
	n = min(n, 1<<26)
	s.sessions.reserve(n)
	s.byToken.reserve(n)
	s.expiry = make([]dueEntry, 0, n) // not prefaulted: n is a hint, and the heap fills from the front
	s.slabs.chunks = make([]*[chunkSize]record, 0, n/chunkSize+1)
}

// Flush does nothing: a Store has no storage of its own. Persistent stores built on it
// collect pending Touch updates with DrainTouched.
func (s *Store) Flush(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return ctx.Err()
}

// Close makes the store unusable: every later call returns ErrClosed, except DrainTouched,
// so that a persistent store can still write the last Touch updates. Close waits for calls in
// progress and may be called more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// readable takes the read lock and checks the store is open. On success the caller must
// RUnlock.
func (s *Store) readable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// writable takes the write lock and checks the store is open. On success the caller must
// Unlock.
func (s *Store) writable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// commit hands b to the journal, if there is one. The write lock must be held.
func (s *Store) commit(b *Batch) error {
	if s.journal == nil {
		return nil
	}
	return s.journal.Commit(b)
}
