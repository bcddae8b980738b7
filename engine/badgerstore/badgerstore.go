package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/y"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/memstore"
)

// ErrWrongKey is returned by Open when Options.EncryptionKey is not the key the store was
// created with (or a key is given for a store created without one, or the reverse).
var ErrWrongKey = errors.New("badgerstore: wrong encryption key")

// DefaultFlushInterval is how often Touch updates are written when Options.FlushInterval is 0.
const DefaultFlushInterval = time.Second

// Options configure Open.
type Options struct {
	// Dir is the directory of the store; it is created if needed. One process at a time may
	// use it.
	Dir string
	// EncryptionKey, when set, encrypts everything on disk with AES; it must be 16, 24 or 32
	// bytes (AES-128, -192, -256) and the same key at every open.
	EncryptionKey []byte
	// Logger receives the store's and Badger's warnings and errors (default slog.Default()).
	Logger *slog.Logger
	// FlushInterval is how often Touch updates are written in the background (default
	// DefaultFlushInterval). A negative value turns the background writer off; Flush and
	// Close still write them.
	FlushInterval time.Duration

	// freeSpace and now, when set by a test, stand for the free space of Dir's file system
	// and the clock of the space guard.
	freeSpace freeSpaceFunc
	now       func() time.Time
}

// Store is the engine.Store kept on disk with Badger. Everything is also held in memory (a
// memstore.Store) and served from there; every change is written through to Badger and
// synced before the method returns. It is safe for concurrent use.
type Store struct {
	mem     *memstore.Store
	db      *badger.DB
	journal *journal // writes the memstore's changes, and repairs
	syncer  *groupSync
	space   *spaceGuard // refuses writes while the disk is nearly full
	// closeReserve is the free space under which Close leaves Badger open (see Close).
	closeReserve uint64
	log          *slog.Logger
	committed    commits // what groupSync has to cover

	// life is held shared by calls that write to Badger and exclusively by Close, so Close
	// waits for them and they never touch a closed database.
	life   sync.RWMutex
	closed bool

	flushMu sync.Mutex // one write of last-use times at a time
	lastUse lastUseLog // under flushMu

	stop      chan struct{}
	flusher   sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var _ engine.Store = (*Store)(nil)

// ValidKeyLength reports whether n bytes make an encryption key: AES-128, -192 or -256.
func ValidKeyLength(n int) bool { return n == 16 || n == 24 || n == 32 }

// Open opens (or creates) the store in opts.Dir and loads it into memory. It fails with
// ErrWrongKey if the encryption key does not match.
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("badgerstore: Options.Dir is empty")
	}
	if n := len(opts.EncryptionKey); n != 0 && !ValidKeyLength(n) {
		return nil, fmt.Errorf("badgerstore: the encryption key is %d bytes; it must be 16, 24 or 32", n)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	interval := opts.FlushInterval
	if interval == 0 {
		interval = DefaultFlushInterval
	}

	// Badger writes through memory mappings, where a full disk is SIGBUS, not an error: do
	// not open it without room for what it writes at open (spaceguard.go).
	bopts := badgerOptions(opts.Dir, opts.EncryptionKey, logger)
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("badgerstore: %w", err)
	}
	space := newSpaceGuard(opts.Dir, spaceReserve(bopts), opts.freeSpace, opts.now, logger)
	if err := space.short(openReserve(bopts), "open"); err != nil {
		return nil, fmt.Errorf("badgerstore: %w; free some space", err)
	}

	// Load with compactions off: at open Badger often finds a level over its target size and
	// would rewrite tens of megabytes on the second core while load needs both. The load
	// reads a read-only open where it can: that creates no files, so closing it is free,
	// where closing a writable one took 120-160 ms of every restart. A new directory, or one
	// whose write-ahead log a crash left to truncate, is loaded from a writable open. Either
	// way the database is then reopened with compactions, and the repairs load found are
	// written there.
	db, err := openForLoad(opts.Dir, opts.EncryptionKey, logger)
	switch {
	case errors.Is(err, badger.ErrEncryptionKeyMismatch) && len(opts.EncryptionKey) == 0:
		// Badger tells a damaged KEYREGISTRY file by the same error as a missing key.
		return nil, fmt.Errorf("%w: the store in %s is encrypted and no key was given (or its KEYREGISTRY file is damaged: then restore a backup)", ErrWrongKey, opts.Dir)
	case errors.Is(err, badger.ErrEncryptionKeyMismatch):
		return nil, fmt.Errorf("%w: the store in %s was created with another key, or without encryption (or its KEYREGISTRY file is damaged: then restore a backup)", ErrWrongKey, opts.Dir)
	case err != nil && strings.Contains(err.Error(), "Cannot acquire directory lock"):
		return nil, fmt.Errorf("badgerstore: %s is in use by another process: %w", opts.Dir, err)
	case err != nil && strings.Contains(err.Error(), y.ErrChecksumMismatch.Error()):
		return nil, damagedError(opts.Dir, err)
	case err != nil:
		return nil, fmt.Errorf("badgerstore: open %s: %w", opts.Dir, err)
	}

	files, err := newLastUseFiles(opts.Dir, opts.EncryptionKey)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("badgerstore: open %s: %w", opts.Dir, err), db.Close())
	}
	s := &Store{db: db, log: logger, stop: make(chan struct{}), space: space, closeReserve: closeReserve(bopts)}
	// The journal asks the space guard once load's repairs are written: Open checked the
	// room for them (openReserve), and refusing them would refuse the start, not a change.
	s.journal = &journal{db: db, committed: &s.committed}
	s.mem = memstore.New(memstore.Options{Journal: s.journal})
	s.syncer = &groupSync{db: db, dir: opts.Dir, committed: &s.committed,
		memtableLogs: logFiles{ext: memtableLogExt}, valueLogs: logFiles{ext: valueLogExt}}
	s.lastUse.files = files
	repairs, torn, err := s.load()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("badgerstore: load %s: %w", opts.Dir, err), db.Close())
	}
	loaded := db.MaxVersion()
	if err := db.Close(); err != nil {
		return nil, fmt.Errorf("badgerstore: open %s: %w", opts.Dir, err)
	}
	if testHookBetweenOpens != nil {
		testHookBetweenOpens()
	}
	if db, err = badger.Open(badgerOptions(opts.Dir, opts.EncryptionKey, logger)); err != nil {
		return nil, fmt.Errorf("badgerstore: reopen %s: %w", opts.Dir, err)
	}
	s.db, s.journal.db, s.syncer.db = db, db, db
	if db.MaxVersion() != loaded {
		// Another process wrote between the two opens: what was loaded is stale.
		return nil, errors.Join(fmt.Errorf("badgerstore: %s changed while it was loading; is another process using it?", opts.Dir), db.Close())
	}
	if err := s.repair(repairs, torn); err != nil {
		return nil, errors.Join(fmt.Errorf("badgerstore: load %s: %w", opts.Dir, err), db.Close())
	}
	s.journal.space = s.space
	_ = s.space.status() // logs now if the disk is already nearly full
	if interval > 0 {
		s.flusher.Add(1)
		go s.flushEvery(interval)
	}
	return s, nil
}

// damagedTable finds the table file named in Badger's checksum error.
var damagedTable = regexp.MustCompile(`[^\s:"']+\.sst`)

// damagedError is Open's error for a table whose checksum does not match: what is damaged
// and what to do.
func damagedError(dir string, err error) error {
	what := "a table"
	if name := damagedTable.FindString(err.Error()); name != "" {
		what = "the table " + filepath.Join(dir, filepath.Base(name))
	}
	return fmt.Errorf("badgerstore: %s of the store in %s is damaged (its checksum does not match): "+
		"restore the directory from a backup (see Backups in the README), or move it away to start empty: %w",
		what, dir, err)
}

// testHookBetweenOpens, when set by a test, runs between the load's open and the reopen for
// writing: where another process writing to the directory would make what was loaded stale.
var testHookBetweenOpens func()

// openForLoad opens dir for load, compactions off: read-only when it holds a store that
// was closed cleanly, writable otherwise.
//
// It verifies the checksum of every block of every table as it opens them (OnTableRead), so
// that a damaged table stops the start instead of serving records with garbled strings. Load
// reads every block anyway, but the check reads each table once more first (its pages, and
// with encryption its blocks decrypted once more): at a million sessions BenchmarkOpen took
// 1.33-1.54 s instead of 1.15-1.23 (encrypted 1.66-1.77 instead of 1.28-1.49), peak memory
// unchanged. It does not verify at every block read (OnBlockRead) instead:
// Badger's iterators stop at a block that fails, as if the table ended there, so load would
// miss the rest of the table without an error. The reopen for writing does not verify again
// (the tables were read a moment before; MaxVersion shows if another process wrote), and the
// tables Badger writes after are verified at the next start.
func openForLoad(dir string, key []byte, logger *slog.Logger) (*badger.DB, error) {
	opts := badgerOptions(dir, key, logger).WithNumCompactors(0).WithCompactL0OnClose(false).
		WithChecksumVerificationMode(options.OnTableRead)
	if db, err := badger.Open(opts.WithReadOnly(true)); err == nil {
		return db, nil
	} else if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
		return nil, err
	}
	return badger.Open(opts)
}

// badgerOptions is a small-memory profile: about 11 MB of Badger's own memory instead of the
// ~85 MB of badger.DefaultOptions. The store serves reads from memory, so Badger's caches
// only help compaction and open.
func badgerOptions(dir string, key []byte, logger *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		WithLogger(badgerLogger{logger}).
		WithSyncWrites(false). // synced explicitly, once per acknowledged change (groupSync)
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		// Blocks are not compressed: a compressed block is decoded into a new Go allocation
		// when it is read, a restart reads every block, and sessions compress only about 2.4
		// to 1. At 1,000,000 sessions, load takes 1.65-1.72 s instead of 1.77-2.2 s and
		// the process 310-327 MB from the system instead of 376-380 MB, for 247 MB on disk
		// instead of 102 MB. Tables written compressed by earlier versions stay readable (the
		// manifest records each table's compression) and are rewritten plain by compaction.
		WithCompression(options.None).
		WithBlockCacheSize(8 << 20). // needed by encryption
		WithIndexCacheSize(4 << 20). // needed by encryption
		WithValueLogFileSize(64 << 20).
		WithValueThreshold(valueThreshold).
		WithNumCompactors(2).
		// Close compacts level 0 into the levels below, so that the next Open reads fewer
		// overlapping tables and its first memtable flush does not set off a compaction of
		// everything a bulk import (sessiond bench --populate) or a previous run left in L0.
		WithCompactL0OnClose(true).
		WithMetricsEnabled(false).
		WithEncryptionKey(key)
}

// Flush writes pending Touch updates and syncs them to disk.
func (s *Store) Flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return memstore.ErrClosed
	}
	return s.writeTouched(false)
}

// Close writes pending Touch updates and closes the database. Calls in progress finish
// first; later calls fail with memstore.ErrClosed. Close may be called more than once.
//
// When the disk has too little free space for Badger's Close (closeReserve: it writes its
// memtable to a table and compacts level 0, through memory mappings, where a full disk
// kills the process), Close leaves Badger as a crash would and returns an error wrapping
// ErrDiskFull: every acknowledged change is in Badger's synced log, and the next Open
// recovers it. The directory stays locked until the process exits.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.flusher.Wait()
		s.life.Lock()
		defer s.life.Unlock()
		s.closed = true
		errs := []error{s.mem.Close(), s.writeTouched(false), s.lastUse.files.close()}
		if err := s.space.short(s.closeReserve, "close"); err != nil {
			s.log.Error("badgerstore: too little free disk space to close Badger; leaving it as after a crash: the next start recovers every acknowledged change from its synced log", "err", err)
			errs = append(errs, fmt.Errorf("badgerstore: Badger not closed: %w", err))
		} else {
			errs = append(errs, s.db.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// flushEvery writes Touch updates every interval until Close. Between two runs they are
// only in memory, and may be lost in a crash (see the package documentation).
func (s *Store) flushEvery(interval time.Duration) {
	defer s.flusher.Done()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	refused := false // a run was refused for space since the last that was written
	for {
		select {
		case <-s.stop:
			return
		case <-ticker.C:
		}
		s.life.RLock()
		var err error
		if !s.closed {
			err = s.writeTouched(true)
		}
		s.life.RUnlock()
		switch {
		case err == nil:
			refused = false
		case !errors.Is(err, ErrDiskFull):
			s.log.Warn("badgerstore: writing last-use times failed; will retry", "err", err)
		case !refused && s.space.status() == nil:
			// The guard logs a disk under the reserve; this run alone (a snapshot of every
			// session) would have taken it there.
			s.log.Warn("badgerstore: last-use times not written, for want of disk space for this run; they are kept in memory and written when there is room", "err", err)
			refused = true
		}
	}
}

// change runs a memstore change and waits until it is on disk, also when it failed: one made
// in steps (a delete of many sessions) may have made some before it failed, and those are
// seen and reported. A failed change that wrote nothing costs no sync. Once a sync has
// failed it changes nothing: the change could not be acknowledged, and made in memory and
// Badger's log regardless it would take effect now and perhaps after a restart.
func (s *Store) change(fn func() error) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.syncer.broken.Load() {
		return s.syncer.sync() // the failure
	}
	err := fn()
	if serr := s.syncer.sync(); err == nil {
		err = serr
	}
	return err
}

// CheckWrites returns the error a change would fail with now for want of disk space (one
// wrapping ErrDiskFull), or nil (engine.WriteChecker): Engine.CheckStore, and so /health,
// report it.
func (s *Store) CheckWrites(ctx context.Context) error { return s.space.status() }

// Sync returns once every change made before the call, by any caller, is on disk
// (engine.Syncer): a change is seen in memory before its sync is done.
func (s *Store) Sync(ctx context.Context) error {
	s.life.RLock()
	defer s.life.RUnlock()
	return s.syncer.sync()
}

// CreateAccount stores a new account. It returns engine.ErrAccountExists if the key is taken.
func (s *Store) CreateAccount(ctx context.Context, a *engine.Account) error {
	return s.change(func() error { return s.mem.CreateAccount(ctx, a) })
}

// GetAccount returns engine.ErrAccountNotFound if there is no such account.
func (s *Store) GetAccount(ctx context.Context, userKey string) (*engine.Account, error) {
	return s.mem.GetAccount(ctx, userKey)
}

// CountAccounts returns how many accounts the store holds, and how many are admins.
func (s *Store) CountAccounts(ctx context.Context) (accounts, admins int, err error) {
	return s.mem.CountAccounts(ctx)
}

// UpdateAccount atomically applies fn to the account and stores the result; see
// memstore.Store.UpdateAccount.
func (s *Store) UpdateAccount(ctx context.Context, userKey string, fn func(*engine.Account) error) (*engine.Account, error) {
	var updated *engine.Account
	err := s.change(func() (err error) {
		updated, err = s.mem.UpdateAccount(ctx, userKey, fn)
		return err
	})
	if err != nil {
		return nil, err
	}
	return updated, nil
}

// DeleteAccounts removes the accounts with their sessions and preferences; see
// engine.AccountStore.
func (s *Store) DeleteAccounts(ctx context.Context, userKeys []string) ([]string, error) {
	var removed []string
	err := s.change(func() (err error) {
		removed, err = s.mem.DeleteAccounts(ctx, userKeys)
		return err
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

// ListAccounts returns the accounts whose key starts with any of prefixes, sorted by key.
func (s *Store) ListAccounts(ctx context.Context, prefixes []string) ([]*engine.Account, error) {
	return s.mem.ListAccounts(ctx, prefixes)
}

// InsertSession checks the caps and stores the session; see memstore.Store.InsertSession.
func (s *Store) InsertSession(ctx context.Context, sess *engine.Session, caps engine.Caps, now time.Time) error {
	return s.change(func() error { return s.mem.InsertSession(ctx, sess, caps, now) })
}

// SessionByTokenHash returns the live session whose token hashes to h, from memory.
func (s *Store) SessionByTokenHash(ctx context.Context, h engine.TokenHash, now time.Time) (*engine.Session, error) {
	return s.mem.SessionByTokenHash(ctx, h, now)
}

// SessionByID returns the live session with that id, from memory.
func (s *Store) SessionByID(ctx context.Context, id string, now time.Time) (*engine.Session, error) {
	return s.mem.SessionByID(ctx, id, now)
}

// UpdateSession atomically applies fn to the live session and stores the result; see
// memstore.Store.UpdateSession.
func (s *Store) UpdateSession(ctx context.Context, id string, now time.Time, fn func(*engine.Session) error) (*engine.Session, error) {
	var updated *engine.Session
	err := s.change(func() (err error) {
		updated, err = s.mem.UpdateSession(ctx, id, now, fn)
		return err
	})
	if err != nil {
		return nil, err
	}
	return updated, nil
}

// DeleteSessions removes the sessions and returns how many live ones it removed, also when
// it fails part of the way (engine.Store).
func (s *Store) DeleteSessions(ctx context.Context, ids []string, now time.Time) (int, error) {
	var n int
	err := s.change(func() (err error) {
		n, err = s.mem.DeleteSessions(ctx, ids, now)
		return err
	})
	return n, err // with an error, those removed before it
}

// ListSessions returns the live sessions of these accounts (all when none), sorted by
// creation time then id.
func (s *Store) ListSessions(ctx context.Context, userKeys []string, now time.Time) ([]*engine.Session, error) {
	return s.mem.ListSessions(ctx, userKeys, now)
}

// Touch records use of a session in memory; it reaches the disk at the next background
// write, Flush or Close.
func (s *Store) Touch(ctx context.Context, id string, at time.Time, active bool) error {
	return s.mem.Touch(ctx, id, at, active)
}

// TouchByTokenHash touches the session with that token hash in memory and returns it
// (engine.TokenToucher); like Touch it leaves the write to the background writer.
func (s *Store) TouchByTokenHash(ctx context.Context, h engine.TokenHash, at time.Time, active bool) (*engine.Session, error) {
	return s.mem.TouchByTokenHash(ctx, h, at, active)
}

// TouchToken touches the session with that token hash in memory (engine.TokenToucher).
func (s *Store) TouchToken(ctx context.Context, h engine.TokenHash, at time.Time, active bool) error {
	return s.mem.TouchToken(ctx, h, at, active)
}

// PurgeExpired removes expired sessions, from disk too, and returns how many: on an error
// too, since the memstore removes them a chunk at a time (the next purge takes the rest).
func (s *Store) PurgeExpired(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.change(func() (err error) {
		n, err = s.mem.PurgeExpired(ctx, now)
		return err
	})
	return n, err
}

// SetPreference stores value under label for the user; see engine.PreferenceStore.
func (s *Store) SetPreference(ctx context.Context, userKey, label, value string, maxPerUser int) error {
	return s.change(func() error { return s.mem.SetPreference(ctx, userKey, label, value, maxPerUser) })
}

// GetPreference returns the value and true, or "" and false.
func (s *Store) GetPreference(ctx context.Context, userKey, label string) (string, bool, error) {
	return s.mem.GetPreference(ctx, userKey, label)
}

// badgerLogger routes Badger's warnings and errors to slog and drops its chatter.
type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) Errorf(format string, args ...any) {
	l.log.Error("badger: "+strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "badger")
}

func (l badgerLogger) Warningf(format string, args ...any) {
	l.log.Warn("badger: "+strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "badger")
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}
