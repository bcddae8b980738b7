package badgerstore

import (
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sessiond/sessiond/engine"
)

// ErrDiskFull is the error of a change refused because the disk of the store is nearly full
// (spaceGuard). It wraps engine.ErrUnavailable: the change was not made, and may be made
// again once space is free, which the store notices by itself.
var ErrDiskFull = fmt.Errorf("%w: the disk of the store is nearly full", engine.ErrUnavailable)

// Badger writes its memtables' logs (.mem files, created sparse) and its tables through
// memory mappings, so a disk that has no room left for a page it writes does not fail a
// write call: the process gets SIGBUS and dies. spaceGuard keeps it from getting there: every
// write of the store (a change's transaction, a bulk import, the last-use log) first asks it,
// and it refuses, before anything touches the disk, while the free space of the store's file
// system is under a reserve kept for what Badger writes on its own (spaceReserve). Reads and
// token checks never ask it. The free space is read (statfs) at most every
// spaceCheckInterval, or after spaceCheckBytes of writes, so a write pays a clock read and an
// uncontended lock, not a system call. While it refuses, the store serves everything from
// memory, Engine.CheckStore (and so /health) reports the refusal, and the guard reads the
// free space again at the next write, probe or last-use flush after the interval: the store
// takes changes again by itself once space is freed. The refusal and the recovery are each
// logged once.
//
// Where statfs is unknown (freeSpace says so) or fails, the guard never refuses.
type spaceGuard struct {
	dir     string
	reserve uint64
	free    freeSpaceFunc
	now     func() time.Time
	log     *slog.Logger

	mu         sync.Mutex
	checkedAt  time.Time // the last read of the free space; zero: none yet
	left       uint64    // the free space then (MaxUint64: unknown), less what was allowed since
	sinceCheck uint64    // bytes allowed since
	refusal    error     // set while the free space is under the reserve
	statFailed bool      // the last read failed (logged once)
}

// freeSpaceFunc returns the bytes that may still be written on the file system of dir, and
// whether it knows them.
type freeSpaceFunc func(dir string) (free uint64, known bool, err error)

const (
	// spaceCheckInterval is how long a reading of the free space is trusted; it is also how
	// soon after space is freed changes are taken again.
	spaceCheckInterval = 250 * time.Millisecond
	// spaceCheckBytes is how much may be written on one reading. Badger's own writes are
	// not counted here (the reserve is for them), so the reading is renewed at least this
	// often in bytes as well as in time.
	spaceCheckBytes = 1 << 20
	// spaceSlack is the part of the reserve for what the guard does not count: spaceCheckBytes
	// written on a stale reading, and as much again when Badger flushes them to a table;
	// pages, the MANIFEST, DISCARD and the directories.
	spaceSlack = 4 << 20
	// walEntryOverhead is what Badger's write-ahead log adds to a key and value: the entry's
	// header, the version appended to the key and a checksum; walTxnOverhead the entry that
	// ends a transaction.
	walEntryOverhead = 40
	walTxnOverhead   = 64
)

// spaceReserve is the free space the store keeps for Badger's background writes, from its
// options (with badgerOptions' 8 MB memtables about 92 MiB). It covers:
//
//   - flushes: each of NumMemtables memtables (the one waiting to be flushed, and the one
//     being filled, which Close flushes) becomes a level-0 table of about MemTableSize;
//   - a compaction of level 0 (as Badger starts at NumLevelZeroTables tables, and as Close
//     runs with CompactL0OnClose): its output is as large as its input, the level-0 tables and
//     the base level they overlap (at most BaseLevelSize by Badger's level targets), and the
//     input is deleted only once the output is written;
//   - meanwhile, on the second compactor, a compaction of one base-level table with the
//     LevelSizeMultiplier tables it overlaps below;
//   - spaceSlack.
//
// It cannot cover what it cannot foresee: a compaction of a deeper level (tables double in
// size from level to level, and at a million sessions one can rewrite tens of megabytes),
// more than NumLevelZeroTables tables waiting in level 0 when compactions lag behind a burst
// of writes, or another process filling the disk between two readings. The value log is
// not counted: sessiond's records never go there (valueThreshold).
func spaceReserve(opts badger.Options) uint64 {
	flushes := int64(opts.NumMemtables) * opts.MemTableSize
	level0 := int64(opts.NumLevelZeroTables)*opts.MemTableSize + opts.BaseLevelSize
	below := opts.BaseTableSize * int64(opts.LevelSizeMultiplier+1)
	return uint64(flushes + level0 + below + spaceSlack)
}

// openReserve is the free space Open needs before it opens Badger at all: Badger flushes
// the memtables a crash left in its logs into tables (NumMemtables of MemTableSize), and
// creates a new memtable log. Under it Open fails before Badger touches the disk; between it
// and spaceReserve the store opens and refuses changes.
func openReserve(opts badger.Options) uint64 {
	return uint64(int64(opts.NumMemtables)*opts.MemTableSize + spaceSlack)
}

// closeReserve is the free space Badger's Close needs: it flushes the memtable being filled
// to a table and (CompactL0OnClose) compacts level 0 into the base level.
func closeReserve(opts badger.Options) uint64 {
	return uint64(opts.MemTableSize+int64(opts.NumLevelZeroTables)*opts.MemTableSize+opts.BaseLevelSize) + spaceSlack
}

// short reads the free space now and returns an error wrapping ErrDiskFull if it is known to
// be under need, for what to do: "open" or "close".
func (g *spaceGuard) short(need uint64, what string) error {
	free, known, err := g.free(g.dir)
	if err != nil || !known || free >= need {
		return nil
	}
	return fmt.Errorf("%w: %s has %d MiB free; Badger needs about %d MiB to %s the store",
		ErrDiskFull, g.dir, free>>20, need>>20, what)
}

func newSpaceGuard(dir string, reserve uint64, free freeSpaceFunc, now func() time.Time, log *slog.Logger) *spaceGuard {
	if free == nil {
		free = freeSpace
	}
	if now == nil {
		now = time.Now
	}
	return &spaceGuard{dir: dir, reserve: reserve, free: free, now: now, log: log}
}

// allow returns nil if n more bytes may be written (always for a nil guard), and counts
// them; otherwise an error wrapping ErrDiskFull. A write that only deletes (deletes: a logout, a revocation, an
// account dropped) may use half of the reserve: revoking a leaked API key must not wait for
// someone to free space, and a deletion adds a few dozen bytes to the log (a revocation of
// 200,000 sessions about 12 MB), which leaves Badger's own writes the other half.
func (g *spaceGuard) allow(n uint64, deletes bool) error {
	if g == nil {
		return nil // no guard yet: Open's repairs
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if now.Sub(g.checkedAt) >= spaceCheckInterval || g.sinceCheck+n > spaceCheckBytes {
		g.check(now)
	}
	floor := g.reserve
	if deletes {
		floor = g.reserve / 2
	}
	if g.left < floor || g.left-floor < n {
		if g.refusal != nil {
			return g.refusal
		}
		return fmt.Errorf("%w: writing %d KiB would leave less than the %d MiB the store keeps free in %s",
			ErrDiskFull, n>>10, floor>>20, g.dir)
	}
	g.left -= n
	g.sinceCheck += n
	return nil
}

// status returns the refusal a change would get now, or nil.
func (g *spaceGuard) status() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now := g.now(); now.Sub(g.checkedAt) >= spaceCheckInterval {
		g.check(now)
	}
	return g.refusal
}

// check reads the free space and logs a change of state. g.mu is held.
func (g *spaceGuard) check(now time.Time) {
	g.checkedAt, g.sinceCheck = now, 0
	free, known, err := g.free(g.dir)
	switch {
	case err != nil && !g.statFailed:
		g.log.Warn("badgerstore: cannot read the free disk space; writes are not checked against it until it can",
			"dir", g.dir, "err", err)
		g.statFailed = true
	case err == nil:
		g.statFailed = false
	}
	if err != nil || !known {
		free = math.MaxUint64
	}
	if free < g.reserve {
		if g.refusal == nil {
			g.log.Error("badgerstore: the disk is nearly full: changes are refused (storeUnavailable) until more space is free, but for deletions (logouts, revocations) while half the reserve is left; reads and token checks go on",
				"dir", g.dir, "freeMiB", free>>20, "reserveMiB", g.reserve>>20)
		}
		g.refusal = fmt.Errorf("%w: %s has %d MiB free, under the %d MiB the store keeps for Badger's own writes; free some space (a running store then takes changes again by itself)",
			ErrDiskFull, g.dir, free>>20, g.reserve>>20)
		g.left = free
		return
	}
	if g.refusal != nil {
		g.log.Info("badgerstore: disk space is free again: changes are accepted",
			"dir", g.dir, "freeMiB", free>>20, "reserveMiB", g.reserve>>20)
		g.refusal = nil
	}
	g.left = free
}
