package badgerstore

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/memstore"
)

// load reads the whole store into memory, writing nothing: it may read a read-only open. It
// returns the repairs for repair to write once the store is open for writing: the format
// mark of a new or upgraded store, and the deletion of leftovers that a crash can leave
// behind (sessions, last-use times and preferences of deleted accounts or sessions), which
// it skips.
func (s *Store) load() ([]write, error) {
	start := time.Now()
	format, err := s.checkFormat()
	if err != nil {
		return nil, err
	}
	var (
		orphans                         [][]byte
		accounts, sessions, preferences int
		logScan                         lastUseScan
	)
	err = s.db.View(func(txn *badger.Txn) error {
		err := scan(txn, prefixAccount, func(key, value []byte) error {
			a, err := decodeAccount(value)
			if err == nil {
				err = s.mem.RestoreAccount(a)
			}
			if err != nil {
				return fmt.Errorf("account %q: %w", key, err)
			}
			accounts++
			return nil
		})
		if err != nil {
			return err
		}
		err = scan(txn, prefixPreference, func(key, value []byte) error {
			userKey, label, err := parsePreferenceKey(key)
			if err != nil {
				return err
			}
			v, err := decodePreference(value)
			if err != nil {
				return fmt.Errorf("preference %q: %w", key, err)
			}
			switch err := s.mem.RestorePreference(userKey, label, v); {
			case errors.Is(err, engine.ErrAccountNotFound):
				orphans = append(orphans, bytes.Clone(key))
			case err != nil:
				return fmt.Errorf("preference %q: %w", key, err)
			default:
				preferences++
			}
			return nil
		})
		if err != nil {
			return err
		}
		s.mem.Reserve(s.sessionCountHint())
		sessions, orphans, err = s.loadSessions(txn, orphans, &logScan)
		return err
	})
	if err != nil {
		return nil, err
	}
	var repairs []write
	if format != formatVersion {
		// A new store, or one of format 1: mark it before any last-use chunk is written,
		// which format 1 would not read. Format 1's t/ keys are deleted once a snapshot
		// holds their times.
		repairs = append(repairs, write{[]byte(keyFormat), []byte(formatVersion)})
	}
	for _, key := range orphans {
		repairs = append(repairs, write{key: key})
	}
	// The latest generation holds a snapshot, one entry per session then alive, and the log
	// written since: only the log counts towards the next snapshot. (Counting the snapshot
	// too started a new one, a rewrite of every session's times, at every restart.)
	s.lastUse = lastUseLog{generation: max(logScan.generation, 1), sequence: logScan.sequence,
		logged: max(logScan.entries-sessions, 0), snapshotFrom: -1, page: snapshotPage, minLog: minSnapshotLog}
	if logScan.generations > 1 || logScan.touchKeys > 0 {
		s.lastUse.startSnapshot() // leftovers of an unfinished snapshot, or format-1 t/ keys
	}
	s.log.Info("badgerstore: loaded", "accounts", accounts, "sessions", sessions,
		"preferences", preferences, "lastUseEntries", logScan.total, "leftoversDeleted", len(orphans),
		"readOnly", s.db.Opts().ReadOnly, "took", time.Since(start))
	return repairs, nil
}

// repair writes what load found to repair through j, the store's journal, and syncs it.
func (s *Store) repair(j *journal, repairs []write) error {
	if len(repairs) == 0 {
		return nil
	}
	if err := j.write(repairs); err != nil {
		return fmt.Errorf("marking the format or deleting leftovers of deleted records: %w", err)
	}
	return s.syncer.sync()
}

// lastUseScan describes the last-use log found at open.
type lastUseScan struct {
	generation, sequence uint64 // the latest generation, and the sequence after its last chunk
	generations          int    // how many generations there are
	entries              int    // entries in the latest generation
	total                int    // entries in all generations
	touchKeys            int    // format-1 t/ keys of existing sessions
}

// loadBatch is a run of decoded sessions on their way from the reader to the restorer.
type loadBatch struct {
	sessions []engine.Session
	touched  []memstore.Touched // last-use times from the log, applied after all sessions
	orphans  [][]byte           // t/ keys without a session, found while reading
}

const loadBatchSize = 1024

// loadSessions restores the sessions, each with the later of its stored last-use times and
// those of its t/ key. Reading and decoding run on one goroutine and restoring into memory
// on another, so a restart uses two cores.
func (s *Store) loadSessions(txn *badger.Txn, orphans [][]byte, scan *lastUseScan) (int, [][]byte, error) {
	full := make(chan *loadBatch, 4)
	empty := make(chan *loadBatch, 6)
	for range cap(empty) {
		empty <- &loadBatch{sessions: make([]engine.Session, 0, loadBatchSize)}
	}
	done := make(chan struct{})
	defer func() {
		close(done)
		for range full { // the reader must stop before the transaction ends
		}
	}()
	readErr := make(chan error, 1)
	go func() {
		defer close(full)
		readErr <- readSessions(txn, full, empty, done, scan)
	}()

	loaded := 0
	rejected := func(sess *engine.Session, err error) {
		loaded--
		if errors.Is(err, engine.ErrAccountNotFound) {
			orphans = append(orphans, sessionKey(sess.ID), touchKey(sess.ID))
			return
		}
		s.log.Warn("badgerstore: skipping a session that cannot be loaded", "session", sess.ID, "err", err)
	}
	for batch := range full {
		orphans = append(orphans, batch.orphans...)
		if err := s.mem.RestoreSessions(batch.sessions, rejected); err != nil {
			return 0, nil, err
		}
		if err := s.mem.RestoreTouched(batch.touched); err != nil {
			return 0, nil, err
		}
		loaded += len(batch.sessions)
		batch.sessions, batch.touched, batch.orphans = batch.sessions[:0], batch.touched[:0], nil
		empty <- batch
	}
	if err := <-readErr; err != nil {
		return 0, nil, err
	}
	return loaded, orphans, nil
}

// readSessions reads and decodes the sessions and their format-1 t/ keys into batches (both
// key ranges are sorted by session id, so one pass over each does), then the last-use log.
// It stops early when done is closed.
func readSessions(txn *badger.Txn, full, empty chan *loadBatch, done chan struct{}, scan *lastUseScan) error {
	// Values are small and stored in the tree itself, so prefetching them only copies.
	sessionIt := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixSession)})
	defer sessionIt.Close()
	touchIt := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixTouch)})
	defer touchIt.Close()
	touchIt.Rewind()
	touchID := func() []byte { return touchIt.Item().Key()[len(prefixTouch):] }

	d := decoder{intern: make(map[string]string)}
	var batch *loadBatch
	send := func() bool {
		select {
		case full <- batch:
			batch = nil
			return true
		case <-done:
			return false
		}
	}
	for sessionIt.Rewind(); sessionIt.Valid(); sessionIt.Next() {
		if batch == nil {
			select {
			case batch = <-empty:
			case <-done:
				return nil
			}
		}
		item := sessionIt.Item()
		id := item.Key()[len(prefixSession):]
		for touchIt.Valid() && bytes.Compare(touchID(), id) < 0 {
			batch.orphans = append(batch.orphans, touchIt.Item().KeyCopy(nil)) // its session is gone
			touchIt.Next()
		}
		batch.sessions = append(batch.sessions, engine.Session{})
		sess := &batch.sessions[len(batch.sessions)-1]
		err := item.Value(func(v []byte) error {
			d.buf, d.err = v, nil
			return decodeSession(&d, sess)
		})
		if err != nil {
			return fmt.Errorf("session %q: %w", id, err)
		}
		sess.ID = string(id)
		if touchIt.Valid() && bytes.Equal(touchID(), id) {
			var accessed, active time.Time
			err := touchIt.Item().Value(func(v []byte) (err error) {
				accessed, active, err = decodeTouch(v)
				return err
			})
			if err != nil {
				return fmt.Errorf("last-use times of session %q: %w", id, err)
			}
			if accessed.After(sess.LastAccessedAt) {
				sess.LastAccessedAt = accessed
			}
			if active.After(sess.LastActiveAt) {
				sess.LastActiveAt = active
			}
			scan.touchKeys++
			touchIt.Next()
		}
		if len(batch.sessions) == loadBatchSize && !send() {
			return nil
		}
	}
	for ; touchIt.Valid(); touchIt.Next() {
		if batch == nil {
			select {
			case batch = <-empty:
			case <-done:
				return nil
			}
		}
		batch.orphans = append(batch.orphans, touchIt.Item().KeyCopy(nil))
	}

	logIt := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixLastUse)})
	defer logIt.Close()
	for logIt.Rewind(); logIt.Valid(); logIt.Next() {
		if batch == nil {
			select {
			case batch = <-empty:
			case <-done:
				return nil
			}
		}
		item := logIt.Item()
		generation, sequence, err := parseLastUseKey(item.Key())
		if err != nil {
			return err
		}
		if generation != scan.generation || scan.generations == 0 {
			scan.generation, scan.entries = generation, 0
			scan.generations++
		}
		scan.sequence = sequence + 1
		before := len(batch.touched)
		err = item.Value(func(v []byte) (err error) {
			batch.touched, err = decodeLastUses(v, batch.touched)
			return err
		})
		if err != nil {
			return fmt.Errorf("last-use times %q: %w", item.Key(), err)
		}
		scan.entries += len(batch.touched) - before
		scan.total += len(batch.touched) - before
		if len(batch.touched) >= 16*loadBatchSize && !send() {
			return nil
		}
	}
	if batch != nil {
		send()
	}
	return nil
}

// scan calls fn with each key and value under prefix. Both are valid only during the call.
func scan(txn *badger.Txn, prefix string, fn func(key, value []byte) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		if err := item.Value(func(v []byte) error { return fn(item.Key(), v) }); err != nil {
			return err
		}
	}
	return nil
}

// checkFormat makes sure the directory holds a store of this format or of format 1, which
// load upgrades. It returns the format found, or "" for a new store.
func (s *Store) checkFormat() (string, error) {
	var format []byte
	empty := false
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyFormat))
		if errors.Is(err, badger.ErrKeyNotFound) {
			it := txn.NewIterator(badger.IteratorOptions{})
			defer it.Close()
			it.Rewind()
			empty = !it.Valid()
			return nil
		}
		if err != nil {
			return err
		}
		format, err = item.ValueCopy(nil)
		return err
	})
	switch {
	case err != nil:
		return "", err
	case format != nil && string(format) != formatVersion && string(format) != formatVersion1:
		return "", fmt.Errorf("the store has format %q; this version of sessiond reads %q and %q",
			format, formatVersion, formatVersion1)
	case format == nil && !empty:
		return "", errors.New("the directory holds a Badger database that is not a sessiond store")
	}
	return string(format), nil
}

// sessionCountHint is about how many sessions the store holds, from the key counts of the
// tables that hold only session records: it never counts last-use times or other records,
// and misses those in the memtables and in mixed tables, so it errs low. memstore.Reserve
// sizes the indexes with it before loading.
func (s *Store) sessionCountHint() int {
	n := 0
	for _, t := range s.db.Tables() {
		if bytes.HasPrefix(t.Left, []byte(prefixSession)) && bytes.HasPrefix(t.Right, []byte(prefixSession)) {
			n += int(t.KeyCount)
		}
	}
	return n
}
