package badgerstore

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/sessiond/sessiond/engine/memstore"
)

// The last-use log. Touch changes only memory; the background writer appends the times of
// the sessions touched since its last run to the log's files (lastusefile.go), in chunks of
// up to maxChunkEntries, and syncs them.
//
// At open, each session takes the latest of the times in its s/ record and in every chunk,
// so the order of chunks and duplicates do not matter. The log is kept short by snapshots:
// once a generation has logged entries for half as many sessions as there are, the writer
// starts a new generation, writes the current times of every session into it in one run
// (read from memory a page at a time), syncs, and only then deletes the older generations:
// so two snapshots are on disk together only if a run fails or the process stops in one.
// Every time in an older generation was drained from memory before the new generation
// began, so the snapshot, read from memory later, holds that time or a later one. A crash
// at any point leaves times that are at least those of the last completed write.

const (
	// snapshotPage is how many sessions' times a snapshot reads from memory at a time, each
	// page under the memstore's read lock, which holds token checks up meanwhile: at a
	// million sessions 64Ki took 0.7 ms, 16Ki takes about 0.2 (as a chunk of DrainTouched).
	snapshotPage = 16 << 10
	// minSnapshotLog is the fewest log entries that start a snapshot; below it a snapshot
	// would cost more than the log it removes.
	minSnapshotLog = 64 << 10
)

// lastUseLog is the writer's state. It is used under Store.flushMu.
type lastUseLog struct {
	files        *lastUseFiles // the generation and segment being written
	logged       int           // log entries written in this generation
	snapshotFrom int           // the next memstore.LastUses position of a snapshot, or -1
	// legacy is set while Badger holds last-use times of formats 1 and 2 (t/ and u/ keys),
	// to be deleted when the running snapshot completes, with the older generations.
	legacy  bool
	pending []memstore.Touched // drained but not yet written, after a failed write
	// drained and page are reused from run to run: at a million sessions a run drains
	// hundreds of thousands of entries (64 bytes each), and a new list each second made
	// most of the garbage the collector let the heap grow for.
	drained, pageBuf []memstore.Touched
	// page and minLog are snapshotPage and minSnapshotLog; tests make them smaller, and set
	// pagesPerRun to spread a snapshot over several runs (0: a whole snapshot per run).
	page, minLog, pagesPerRun int
}

// startSnapshot begins a new generation whose first pages will be a snapshot.
func (l *lastUseLog) startSnapshot() {
	l.files.startGeneration(l.files.generation + 1)
	l.logged, l.snapshotFrom = 0, 0
}

// writeTouched writes the last-use times of the sessions touched since the last call, and
// syncs them. With background set it also writes a snapshot, starting one when the log is
// long enough.
func (s *Store) writeTouched(background bool) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	l := &s.lastUse
	touched := s.mem.DrainTouched(append(l.drained[:0], l.pending...))
	l.pending = nil
	defer func() { l.drained = reuse(touched) }()
	if background && l.snapshotFrom < 0 && l.logged >= max(s.mem.SessionCount()/2, l.minLog) {
		l.startSnapshot()
	}
	snapshotting := background && l.snapshotFrom >= 0
	if len(touched) == 0 && !snapshotting {
		return nil
	}
	next, err := s.writeChunks(touched, snapshotting)
	if err != nil {
		if !errors.Is(err, ErrDiskFull) { // refused before anything was written: the segment is whole
			l.files.abandon()
		}
		l.pending = latestTouches(touched)
		return fmt.Errorf("badgerstore: write last-use times: %w", err)
	}
	l.logged += len(touched)
	if snapshotting {
		l.snapshotFrom = next
		if next < 0 {
			if err := s.dropObsolete(); err != nil {
				l.snapshotFrom = 0 // the snapshot is repeated before anything is deleted
				return err
			}
		}
	}
	return nil
}

// writeChunks writes touched to the current segment and, when snapshotting, the snapshot's
// pages after them (all that remain, or pagesPerRun), then syncs. It returns where the
// snapshot goes on, or -1 once it is complete.
func (s *Store) writeChunks(touched []memstore.Touched, snapshotting bool) (int, error) {
	l := &s.lastUse
	if err := s.space.allow(l.runBytes(touched, snapshotting, s.mem.SessionCount()), false); err != nil {
		return 0, err
	}
	if err := l.files.write(touched); err != nil {
		return 0, err
	}
	next := -1
	if snapshotting {
		page := l.pageBuf
		defer func() { clear(page[:cap(page)]); l.pageBuf = page[:0] }() // at most l.page entries; earlier pages' too
		next = l.snapshotFrom
		for pages := 0; next >= 0 && (l.pagesPerRun == 0 || pages < l.pagesPerRun); pages++ {
			page, next = s.mem.LastUses(next, l.page, page[:0])
			if err := l.files.write(page); err != nil {
				return 0, err
			}
		}
	}
	return next, l.files.sync()
}

// lastUseEntryBytes bounds what an entry of the log takes besides its session id: the id's
// length, flags and two times; snapshotEntryBytes what a snapshot's entry takes with its id.
const (
	lastUseEntryBytes  = 24
	snapshotEntryBytes = 64
)

// runBytes is about as many bytes as a run of writeChunks writes at most, for the space
// guard: the entries of touched and, when snapshotting, of the snapshot's pages this run, of
// sessions sessions.
func (l *lastUseLog) runBytes(touched []memstore.Touched, snapshotting bool, sessions int) uint64 {
	entries := len(touched)
	size := uint64(lastUseHeader)
	for i := range touched {
		size += uint64(len(touched[i].ID)) + lastUseEntryBytes
	}
	if snapshotting {
		pages := max(sessions-l.snapshotFrom, 0)
		if l.pagesPerRun > 0 {
			pages = min(pages, l.pagesPerRun*l.page)
		}
		entries += pages
		size += uint64(pages) * snapshotEntryBytes
	}
	return size + uint64(entries/maxChunkEntries+1)*(recordHeader+maxSealOverhead)
}

// reuse returns b emptied for the next run, without its references to session ids; a list
// a burst grew goes once it is mostly unused.
func reuse(b []memstore.Touched) []memstore.Touched {
	clear(b)
	if cap(b) > 4096 && len(b) < cap(b)/4 {
		return nil
	}
	return b[:0]
}

// dropObsolete completes a snapshot, which writeChunks synced: it deletes the older
// generations, and the last-use keys of formats 1 and 2 in Badger, whose times the snapshot
// now holds or exceeds.
func (s *Store) dropObsolete() error {
	l := &s.lastUse
	if err := l.files.dropBefore(l.files.generation); err != nil {
		return fmt.Errorf("badgerstore: delete old last-use times: %w", err)
	}
	if !l.legacy {
		return nil
	}
	var keys [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		for _, prefix := range []string{prefixLastUse, prefixTouch} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
			for it.Rewind(); it.Valid(); it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			it.Close()
		}
		return nil
	})
	if err == nil {
		writes := make([]write, len(keys))
		for i, key := range keys {
			writes[i].key = key
		}
		_, err = s.journal.write(writes)
	}
	if err == nil {
		err = s.syncer.sync()
	}
	if err != nil {
		return fmt.Errorf("badgerstore: delete the last-use keys of an older format: %w", err)
	}
	l.legacy = false
	return nil
}

// latestTouches keeps the last entry of each session: drained lists are in time order.
func latestTouches(touched []memstore.Touched) []memstore.Touched {
	index := make(map[string]int, len(touched))
	out := make([]memstore.Touched, 0, len(touched))
	for _, t := range touched {
		if i, ok := index[t.ID]; ok {
			out[i] = t
			continue
		}
		index[t.ID] = len(out)
		out = append(out, t)
	}
	return out
}
