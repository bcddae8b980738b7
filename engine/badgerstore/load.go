package badgerstore

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/memstore"
)

// load reads the whole store into memory, writing nothing: it may read a read-only open. It
// returns the repairs for repair to make once the store is open for writing: the format
// mark of a new or upgraded store, the deletion of leftovers that a crash can leave behind
// (sessions, last-use times and preferences of deleted accounts or sessions), which it
// skips, and the last-use files a crash left with an incomplete record at their end.
func (s *Store) load() ([]write, []tornFile, error) {
	start := time.Now()
	format, err := s.checkFormat()
	if err != nil {
		return nil, nil, err
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
		return nil, nil, err
	}
	var repairs []write
	if format != formatVersion {
		// A new store, or one of an older format: mark it before any last-use file is
		// written, which the older format would not read. The older format's last-use keys
		// are deleted once a snapshot holds their times.
		repairs = append(repairs, write{[]byte(keyFormat), []byte(formatVersion)})
	}
	for _, key := range orphans {
		repairs = append(repairs, write{key: key})
	}
	// The latest generation holds a snapshot, one entry per session then alive, and the log
	// written since: only the log counts towards the next snapshot. (Counting the snapshot
	// too started a new one, a rewrite of every session's times, at every restart.) This
	// open writes a segment of its own, after those of the latest generation.
	files := s.lastUse.files
	files.generation, files.segment = max(logScan.generation, 1), logScan.segment
	s.lastUse = lastUseLog{files: files, logged: max(logScan.entries-sessions, 0), snapshotFrom: -1,
		page: snapshotPage, minLog: minSnapshotLog}
	if logScan.generations > 1 || logScan.legacyKeys > 0 {
		// Leftovers of an unfinished snapshot, or the last-use keys of an older format.
		s.lastUse.startSnapshot()
		s.lastUse.legacy = logScan.legacyKeys > 0
	}
	for _, t := range logScan.torn {
		s.log.Warn("badgerstore: a last-use file ends in an incomplete record, written when the process stopped; the times in it are lost",
			"file", t.path, "keptBytes", t.size)
	}
	s.log.Info("badgerstore: loaded", "accounts", accounts, "sessions", sessions,
		"preferences", preferences, "lastUseEntries", logScan.total, "leftoversDeleted", len(orphans),
		"readOnly", s.db.Opts().ReadOnly, "took", time.Since(start))
	return repairs, logScan.torn, nil
}

// repair writes what load found to repair, and syncs it.
func (s *Store) repair(repairs []write, torn []tornFile) error {
	if err := s.lastUse.files.truncate(torn); err != nil {
		return fmt.Errorf("cutting the incomplete record off a last-use file: %w", err)
	}
	if len(repairs) == 0 {
		return nil
	}
	if _, err := s.journal.write(repairs); err != nil {
		return fmt.Errorf("marking the format or deleting leftovers of deleted records: %w", err)
	}
	return s.syncer.sync()
}

// lastUseScan describes the last-use log found at open.
type lastUseScan struct {
	generation, segment uint64 // the latest generation, and the segment after its last file
	generations         int    // how many generations there are
	entries             int    // entries in the latest generation
	total               int    // entries in all generations and legacy keys
	legacyKeys          int    // t/ keys of format 1 and u/ keys of format 2
	torn                []tornFile
}

// loadBatch is a run of decoded sessions on their way from the reader to the restorer.
type loadBatch struct {
	sessions []engine.Session
	touched  []memstore.Touched // last-use times from the log, applied after all sessions
	orphans  [][]byte           // t/ keys without a session, found while reading
}

const loadBatchSize = 1024

// releaseEvery is how many batches load restores between two calls of releaseTables: at a
// million sessions about 30 MB of tables are mapped between two calls, and the process
// peaks at 366-379 MB during load instead of 590-612 MB.
const releaseEvery = 128

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
		readErr <- readSessions(txn, s.lastUse.files, full, empty, done, scan)
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
	releaseTables := tableReleaser(s.db.Opts().Dir)
	batches := 0
	for batch := range full {
		if batches++; batches%releaseEvery == 0 {
			releaseTables()
		}
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

// errStopped ends readSessions early, when its consumer has stopped.
var errStopped = errors.New("stopped")

// batcher hands the batches a reader fills to the restorer.
type batcher struct {
	full, empty chan *loadBatch
	done        chan struct{} // closed when the restorer stops
	batch       *loadBatch    // being filled, or nil
}

// next returns the batch to fill, taking an empty one if needed.
func (b *batcher) next() (*loadBatch, error) {
	if b.batch == nil {
		select {
		case b.batch = <-b.empty:
		case <-b.done:
			return nil, errStopped
		}
	}
	return b.batch, nil
}

// send passes the batch being filled to the restorer.
func (b *batcher) send() error {
	select {
	case b.full <- b.batch:
		b.batch = nil
		return nil
	case <-b.done:
		return errStopped
	}
}

// addLastUses decodes a chunk of last-use times into the batch, and returns how many.
func (b *batcher) addLastUses(chunk []byte) (int, error) {
	batch, err := b.next()
	if err != nil {
		return 0, err
	}
	before := len(batch.touched)
	if batch.touched, err = decodeLastUses(chunk, batch.touched); err != nil {
		return 0, err
	}
	n := len(batch.touched) - before // before send: from then on the restorer owns the batch
	if len(batch.touched) >= 16*loadBatchSize {
		err = b.send()
	}
	return n, err
}

// readSessions reads and decodes the sessions and their format-1 t/ keys into batches, then
// the last-use times of format 2's u/ keys and of the log's files. It stops early when done
// is closed.
func readSessions(txn *badger.Txn, files *lastUseFiles, full, empty chan *loadBatch, done chan struct{}, scan *lastUseScan) error {
	b := &batcher{full: full, empty: empty, done: done}
	err := readSessionRecords(txn, b, scan)
	if err == nil {
		err = readLegacyLastUses(txn, b, scan)
	}
	if err == nil {
		err = readLastUseFiles(files, b, scan)
	}
	if err == nil && b.batch != nil {
		err = b.send()
	}
	if errors.Is(err, errStopped) {
		return nil
	}
	return err
}

// readSessionRecords reads the sessions, and format 1's t/ keys (both key ranges are sorted
// by session id, so one pass over each does).
func readSessionRecords(txn *badger.Txn, b *batcher, scan *lastUseScan) error {
	// Values are small and stored in the tree itself, so prefetching them only copies.
	sessionIt := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixSession)})
	defer sessionIt.Close()
	touchIt := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixTouch)})
	defer touchIt.Close()
	touchIt.Rewind()
	touchID := func() []byte { return touchIt.Item().Key()[len(prefixTouch):] }

	d := decoder{intern: make(map[string]string)}
	for sessionIt.Rewind(); sessionIt.Valid(); sessionIt.Next() {
		batch, err := b.next()
		if err != nil {
			return err
		}
		item := sessionIt.Item()
		id := item.Key()[len(prefixSession):]
		for touchIt.Valid() && bytes.Compare(touchID(), id) < 0 {
			batch.orphans = append(batch.orphans, touchIt.Item().KeyCopy(nil)) // its session is gone
			touchIt.Next()
		}
		batch.sessions = append(batch.sessions, engine.Session{})
		sess := &batch.sessions[len(batch.sessions)-1]
		err = item.Value(func(v []byte) error {
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
			scan.legacyKeys++
			touchIt.Next()
		}
		if len(batch.sessions) == loadBatchSize {
			if err := b.send(); err != nil {
				return err
			}
		}
	}
	for ; touchIt.Valid(); touchIt.Next() {
		batch, err := b.next()
		if err != nil {
			return err
		}
		batch.orphans = append(batch.orphans, touchIt.Item().KeyCopy(nil))
	}
	return nil
}

// readLegacyLastUses reads the last-use chunks that format 2 kept under u/ keys.
func readLegacyLastUses(txn *badger.Txn, b *batcher, scan *lastUseScan) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixLastUse)})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		err := item.Value(func(v []byte) error {
			n, err := b.addLastUses(v)
			scan.total += n
			return err
		})
		if errors.Is(err, errStopped) {
			return err
		}
		if err != nil {
			return fmt.Errorf("last-use times %q: %w", item.Key(), err)
		}
		scan.legacyKeys++
	}
	return nil
}

// readLastUseFiles reads the log's files, and notes its generations and where this open
// writes.
func readLastUseFiles(files *lastUseFiles, b *batcher, scan *lastUseScan) error {
	var latest uint64 // the generation of the last chunk read
	found, torn, err := files.read(func(generation uint64, chunk []byte) error {
		if generation != latest {
			latest, scan.entries = generation, 0
		}
		n, err := b.addLastUses(chunk)
		scan.entries += n
		scan.total += n
		return err
	})
	if err != nil {
		return err
	}
	scan.torn = torn
	for i, f := range found {
		if i == 0 || f.generation != found[i-1].generation {
			scan.generations++
		}
	}
	if len(found) > 0 {
		last := found[len(found)-1]
		scan.generation, scan.segment = last.generation, last.segment+1
		if latest != last.generation {
			scan.entries = 0 // no record of the latest generation is whole
		}
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

// checkFormat makes sure the directory holds a store of this format or of formats 1 and 2,
// which load upgrades. It returns the format found, or "" for a new store.
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
	case format != nil && !slices.Contains([]string{formatVersion, formatVersion2, formatVersion1}, string(format)):
		return "", fmt.Errorf("the store has format %q; this version of sessiond reads %q, %q and %q",
			format, formatVersion, formatVersion2, formatVersion1)
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
