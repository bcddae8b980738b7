package badgerstore

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"

	"github.com/sessiond/sessiond/engine/memstore"
)

// write is one key to set, or to delete when value is nil.
type write struct {
	key, value []byte
}

// journal writes the memstore's change batches to Badger. It runs under the memstore's lock,
// so batches reach Badger in the order memory applies them.
type journal struct {
	db        *badger.DB
	committed *commits
	space     *spaceGuard // asked before each transaction commits
}

// commits counts what has been committed to Badger, so that groupSync knows what a sync
// covers.
type commits struct {
	all      atomic.Uint64 // transactions and write batches
	valueLog atomic.Uint64 // those of them with a value in Badger's value log
}

// add counts one committed transaction or write batch; valueLog says whether a value of it
// went to Badger's value log (inValueLog).
func (c *commits) add(valueLog bool) {
	if valueLog {
		c.valueLog.Add(1) // before all: a sync that counts this commit sees it
	}
	c.all.Add(1)
}

// valueThreshold is the value size from which Badger keeps a value in its value log instead
// of in the memtable's log and the tables (badger.Options.ValueThreshold, here Badger's
// largest). Sessions, accounts and preferences are far smaller, so the value log stays
// empty and a sync need not write it out.
const valueThreshold = 1 << 20

// inValueLog reports whether Badger writes value to its value log.
func inValueLog(value []byte) bool { return len(value) >= valueThreshold }

// Commit writes b in one transaction when it fits (always, except for deletions of
// thousands of sessions at once). Otherwise it commits in several transactions, deleted
// accounts first: once an account's deletion is on disk its leftover sessions and
// preferences are dropped at the next open, so a crash half way cannot resurrect anything of
// a deleted account.
func (j *journal) Commit(b *memstore.Batch) error {
	writes := make([]write, 0, len(b.DeletedAccounts)+len(b.Accounts)+len(b.Sessions)+
		len(b.DeletedSessions)+len(b.Preferences)+len(b.DeletedPreferences))
	for _, key := range b.DeletedAccounts {
		writes = append(writes, write{key: accountKey(key)})
	}
	for _, a := range b.Accounts {
		writes = append(writes, write{accountKey(a.Key()), encodeAccount(a)})
	}
	for _, s := range b.Sessions {
		writes = append(writes, write{sessionKey(s.ID), encodeSession(s)})
	}
	for _, p := range b.Preferences {
		writes = append(writes, write{preferenceKey(p.UserKey, p.Label), encodePreference(p.Value)})
	}
	for _, id := range b.DeletedSessions {
		// Their last-use times stay in the log until the next snapshot drops them; load
		// ignores times of sessions that do not exist.
		writes = append(writes, write{key: sessionKey(id)})
	}
	for _, p := range b.DeletedPreferences {
		writes = append(writes, write{key: preferenceKey(p.UserKey, p.Label)})
	}
	done, err := j.write(writes)
	switch {
	case err == nil:
		return nil
	case done > 0 && len(b.DeletedAccounts) > 0:
		// The account deletions come first: those written are final.
		return &memstore.AccountsDeletedError{Keys: b.DeletedAccounts[:min(done, len(b.DeletedAccounts))],
			Err: fmt.Errorf("badgerstore: write: %w", err)}
	default:
		return fmt.Errorf("badgerstore: write: %w", err)
	}
}

// maxConflictRetries bounds retries of a transaction that lost a conflict. Transactions here
// only write, so Badger has no reads to find in conflict; the retry is a safety net.
const maxConflictRetries = 8

// write commits writes in as few transactions as Badger allows. done counts the writes
// committed, also when a later transaction failed.
func (j *journal) write(writes []write) (done int, err error) {
	for done < len(writes) {
		n, err := j.writeSome(writes[done:])
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// writeSome commits the longest prefix of writes that fits in one transaction and returns
// its length.
func (j *journal) writeSome(writes []write) (int, error) {
	for attempt := 0; ; attempt++ {
		txn := j.db.NewTransaction(true)
		n := 0
		valueLog := false
		size := uint64(walTxnOverhead) // what the transaction adds to Badger's log
		deletes := true                // the transaction only deletes
		for _, w := range writes {
			var err error
			deletes = deletes && w.value == nil
			if w.value == nil {
				err = txn.Delete(w.key)
			} else {
				err = txn.Set(w.key, w.value)
				valueLog = valueLog || inValueLog(w.value)
			}
			if errors.Is(err, badger.ErrTxnTooBig) && n > 0 {
				break
			}
			if err != nil {
				txn.Discard()
				return 0, err
			}
			n++
			size += uint64(len(w.key) + len(w.value) + walEntryOverhead)
		}
		if err := j.space.allow(size, deletes); err != nil {
			txn.Discard()
			return 0, err
		}
		if testHookCommit != nil {
			if err := testHookCommit(); err != nil {
				txn.Discard()
				return 0, err
			}
		}
		err := txn.Commit()
		if errors.Is(err, badger.ErrConflict) && attempt < maxConflictRetries {
			continue
		}
		if err != nil {
			return 0, err
		}
		j.committed.add(valueLog)
		return n, nil
	}
}

// testHookCommit, when set by a test, runs before each transaction commits; an error fails
// the commit.
var testHookCommit func() error

// groupSync makes committed transactions durable with as few fsyncs as possible: a caller
// whose transaction was covered by a sync that started after it committed returns at once,
// so concurrent writers share one fsync.
//
// A committed transaction is in the write-ahead log of a memtable (a .mem file), and its
// values of valueThreshold or more in Badger's value log (.vlog files). Badger's own Sync
// writes out the log of the memtable being filled and the newest value log file, always both:
// each is an fsync, and each fsync asks the disk to flush its cache even when nothing was
// written. So on Linux (writeOutCurrentLog) sync writes out the logs itself, and the value log
// only when a value went there since the last sync; a durable write took 105-119 µs instead
// of 135-140 (go test -bench InsertSession ./engine/badgerstore).
//
// Badger switches logs: a new memtable when one is full, a new value log file when one passes
// its size. A transaction that committed into the previous one, just before the switch, is in
// that file, which Badger's Sync no longer writes out: a machine that stops before the file
// is written out otherwise (a memtable's log is deleted once its memtable is flushed into a
// synced table) would lose an acknowledged change. So sync writes out each file Badger has
// switched away from, once, and the directory when a new file appears in it (Badger does not
// sync the directory after creating one).
//
// A failed fsync is final: every later sync fails with its error. After a failed fsync the
// kernel may have dropped the pages it could not write and marked them clean, so a later
// fsync that succeeds proves nothing about the changes committed before it. Failing to open
// a file (out of descriptors, say) writes nothing out and is not final.
type groupSync struct {
	db             *badger.DB
	dir            string
	committed      *commits
	mu             sync.Mutex
	synced         uint64      // committed.all covered by the last successful sync; under mu
	valueLogSynced uint64      // committed.valueLog covered by it; under mu
	failed         error       // the first failed fsync; under mu
	broken         atomic.Bool // failed is set: read without mu, which a sync holds through its fsync
	memtableLogs   logFiles
	valueLogs      logFiles
}

// sync returns once everything committed before the call is on stable storage.
func (g *groupSync) sync() error {
	target := g.committed.all.Load()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failed != nil {
		return g.failed
	}
	if g.synced >= target {
		return nil
	}
	target = g.committed.all.Load() // everything committed by now is covered too
	valueLog := g.committed.valueLog.Load()
	var err error
	if !writeOutCurrentLog {
		err = g.db.Sync()
	}
	if err == nil {
		err = g.syncLogs(valueLog > g.valueLogSynced)
	}
	var notStarted *syncNotStartedError
	switch {
	case errors.As(err, &notStarted):
		return fmt.Errorf("badgerstore: sync: %w", err)
	case err != nil:
		g.failed = fmt.Errorf("badgerstore: sync failed; no change is acknowledged any more until the server restarts: %w", err)
		g.broken.Store(true)
		return g.failed
	}
	g.synced, g.valueLogSynced = target, valueLog
	return nil
}

// syncDirectories: a directory's names are made durable by an fsync of the directory, except
// on Windows, where a directory cannot be synced that way (Badger's own syncDir does nothing
// there).
const syncDirectories = runtime.GOOS != "windows"

// File name extensions of Badger's logs (badger's memFileExt and vlog's): the name before
// it is the file's number, which grows.
const (
	memtableLogExt = ".mem"
	valueLogExt    = ".vlog"
)

// logFiles follows one kind of Badger's log files in a directory, for groupSync.
type logFiles struct {
	ext    string
	done   map[uint64]struct{} // files switched away from and written out
	newest uint64              // the newest file whose name the directory was synced with
}

// syncLogs writes out the memtable logs in g.dir not written out yet, and the value log files
// too if valueLog, then the directory if the newest of either is new. g.mu is held.
func (g *groupSync) syncLogs(valueLog bool) error {
	entries, err := os.ReadDir(g.dir)
	if err != nil {
		return &syncNotStartedError{err}
	}
	memtableNewest, err := g.memtableLogs.sync(g.dir, entries)
	if err != nil {
		return err
	}
	valueNewest := g.valueLogs.newest
	if valueLog {
		if valueNewest, err = g.valueLogs.sync(g.dir, entries); err != nil {
			return err
		}
	}
	if !syncDirectories {
		return nil
	}
	if memtableNewest != g.memtableLogs.newest || valueNewest != g.valueLogs.newest {
		if err := syncFile(g.dir, (*os.File).Sync); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return &syncNotStartedError{err}
			}
			return err
		}
		g.memtableLogs.newest, g.valueLogs.newest = memtableNewest, valueNewest
	}
	return nil
}

// sync writes out the files of l's kind among entries of dir not written out yet, and returns
// the newest one's number. The newest is the file Badger writes to: it is written out on every
// call (unless Badger's Sync just did, !writeOutCurrentLog). Any other is one Badger switched
// away from, which takes no more writes, so it is written out once. A file that Badger deletes
// meanwhile needs nothing: a memtable's log is deleted once its memtable is in a table, which
// Badger synced first.
func (l *logFiles) sync(dir string, entries []os.DirEntry) (newest uint64, err error) {
	files := make(map[uint64]string) // number → file name
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), l.ext); ok {
			if fid, err := strconv.ParseUint(name, 10, 64); err == nil {
				files[fid] = e.Name()
				newest = max(newest, fid)
			}
		}
	}
	if len(files) == 0 {
		return 0, &syncNotStartedError{fmt.Errorf("no Badger log (*%s) in %s", l.ext, dir)}
	}
	if l.done == nil {
		l.done = make(map[uint64]struct{})
	}
	maps.DeleteFunc(l.done, func(fid uint64, _ struct{}) bool { _, ok := files[fid]; return !ok })
	for fid, name := range files {
		if _, done := l.done[fid]; done || fid == newest {
			continue
		}
		if err := syncFile(filepath.Join(dir, name), datasync); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, err
		}
		l.done[fid] = struct{}{}
	}
	if writeOutCurrentLog {
		if err := syncFile(filepath.Join(dir, files[newest]), datasync); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, err
		}
	}
	return newest, nil
}

// syncNotStartedError is a sync that failed before writing anything out.
type syncNotStartedError struct{ err error }

func (e *syncNotStartedError) Error() string { return e.err.Error() }
func (e *syncNotStartedError) Unwrap() error { return e.err }

// syncFile writes out the file at path with write: datasync for a log's data, or
// (*os.File).Sync for a directory's names (only fsync promises those). Failing to open it is
// a *syncNotStartedError.
func syncFile(path string, write func(*os.File) error) error {
	f, err := os.Open(path)
	if err == nil && testHookSyncFile != nil {
		if hookErr := testHookSyncFile(path); hookErr != nil {
			_ = f.Close()
			return hookErr
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return &syncNotStartedError{err}
	}
	return errors.Join(write(f), f.Close())
}

// testHookSyncFile, when set by a test, sees each file syncFile opened before it is written
// out; an error stands for the write-out's (a *syncNotStartedError for the open's).
var testHookSyncFile func(path string) error
