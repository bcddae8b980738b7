package badgerstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/storetest"
)

// quietLogger drops everything; tests that need to see logs make their own.
var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// testFactory opens stores in temporary directories and remembers where, for Reopen.
type testFactory struct {
	mu   sync.Mutex
	dirs map[engine.Store]string
}

func (f *testFactory) open(t *testing.T, dir string) engine.Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, Logger: quietLogger})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	f.mu.Lock()
	f.dirs[s] = dir
	f.mu.Unlock()
	return s
}

// TestConformance runs the store conformance suite against Badger stores on disk.
func TestConformance(t *testing.T) {
	f := &testFactory{dirs: map[engine.Store]string{}}
	storetest.Run(t, storetest.Factory{
		Open: func(t *testing.T) engine.Store { return f.open(t, t.TempDir()) },
		Reopen: func(t *testing.T, old engine.Store) engine.Store {
			f.mu.Lock()
			dir := f.dirs[old]
			f.mu.Unlock()
			return f.open(t, dir)
		},
	})
}

var testNow = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// Opening with a key other than the store's fails with ErrWrongKey and harms nothing.
func TestWrongKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	other := bytes.Repeat([]byte{8}, 32)
	for _, tc := range []struct {
		name          string
		created, used []byte
	}{
		{"another key", key, other},
		{"another key length", key, other[:16]},
		{"no key for an encrypted store", key, nil},
		{"a key for a plain store", nil, key},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(Options{Dir: dir, EncryptionKey: tc.created, Logger: quietLogger})
			if err != nil {
				t.Fatal(err)
			}
			a := &engine.Account{Username: "kept", CreatedAt: testNow}
			if err := s.CreateAccount(context.Background(), a); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err := Open(Options{Dir: dir, EncryptionKey: tc.used, Logger: quietLogger}); !errors.Is(err, ErrWrongKey) {
				if err == nil {
					s.Close()
				}
				t.Fatalf("Open with the wrong key: %v; want ErrWrongKey", err)
			} else {
				t.Logf("error: %v", err)
			}
			s, err = Open(Options{Dir: dir, EncryptionKey: tc.created, Logger: quietLogger})
			if err != nil {
				t.Fatalf("Open with the right key after a wrong one: %v", err)
			}
			defer s.Close()
			if _, err := s.GetAccount(context.Background(), "kept"); err != nil {
				t.Errorf("GetAccount after a wrong key: %v", err)
			}
		})
	}
}

// A key that is not 16, 24 or 32 bytes is refused before anything is created.
func TestBadKeyLength(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	if _, err := Open(Options{Dir: dir, EncryptionKey: []byte("short")}); err == nil {
		t.Fatal("Open with a 5-byte key succeeded")
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the directory was created anyway: %v", err)
	}
}

// With a key, no file holds a known description or setting in clear (control: without).
func TestEncryptionAtRest(t *testing.T) {
	// Unrelated strings, so that compression cannot turn one into a reference to the other.
	const secret = "Quokka7Zephyr2Marmalade9Xylophone"
	const setting = "vt4Rn8LwQjCp1sKd6MfYb3Hg"
	const sessionID = "Wombat5Quasar8Tangerine1"
	for _, tc := range []struct {
		name      string
		key       []byte
		wantClear bool
	}{
		{"plain", nil, true},
		{"encrypted", bytes.Repeat([]byte{42}, 32), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			s, err := Open(Options{Dir: dir, EncryptionKey: tc.key, Logger: quietLogger})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.CreateAccount(ctx, &engine.Account{Username: "u", Description: secret, CreatedAt: testNow}); err != nil {
				t.Fatal(err)
			}
			sess := &engine.Session{ID: sessionID, Username: "u", CreatedAt: testNow, LastAccessedAt: testNow, LastActiveAt: testNow}
			sess.Settings.DefaultDatabaseName = setting
			if err := s.InsertSession(ctx, sess, engine.Caps{}, testNow); err != nil {
				t.Fatal(err)
			}
			// The session's id reaches the last-use files too.
			if err := s.Touch(ctx, sessionID, testNow.Add(time.Second), true); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			// Look while the store is open (write-ahead logs) and after Close (tables).
			for _, when := range []string{"open", "closed"} {
				if when == "closed" {
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
				}
				found := filesContaining(t, dir, secret, setting, sessionID)
				for _, marker := range []string{secret, setting, sessionID} {
					if clear := len(found[marker]) > 0; clear != tc.wantClear {
						t.Errorf("store %s: %q in clear in %v; want in clear: %v", when, marker, found[marker], tc.wantClear)
					}
				}
				if tc.wantClear && !slices.ContainsFunc(found[sessionID], isLastUseFile) {
					t.Errorf("store %s: the session id is in %v, in no last-use file", when, found[sessionID])
				}
			}
		})
	}
}

// isLastUseFile tells whether a file name found by filesContaining is a last-use file.
func isLastUseFile(name string) bool {
	_, err := fmt.Sscanf(name, "%016x-%016x.log", new(uint64), new(uint64))
	return err == nil
}

// filesContaining returns, for each of markers, the files under dir that contain it. It reads
// in chunks: Badger preallocates large log files.
func filesContaining(t *testing.T, dir string, markers ...string) map[string][]string {
	t.Helper()
	found := map[string][]string{}
	const chunk = 1 << 20
	buf := make([]byte, chunk+64)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		seen := map[string]bool{}
		carry := 0 // bytes kept from the previous chunk, so a marker across chunks is found
		for {
			n, err := io.ReadFull(f, buf[carry:carry+chunk])
			data := buf[:carry+n]
			for _, m := range markers {
				if !seen[m] && bytes.Contains(data, []byte(m)) {
					seen[m] = true
					found[m] = append(found[m], filepath.Base(path))
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil
			}
			if err != nil {
				return err
			}
			carry = copy(buf, data[len(data)-64:])
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// openTest opens a store in dir for a test and closes it at the end unless the test does.
func openTest(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	opts.Dir = dir
	if opts.Logger == nil {
		opts.Logger = quietLogger
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawKeys returns every key in the closed store in dir, as strings.
func rawKeys(t *testing.T, dir string) []string {
	t.Helper()
	db, err := badger.Open(badgerOptions(dir, nil, quietLogger))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var keys []string
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, string(it.Item().KeyCopy(nil)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// Leftovers of a crash during a large deletion are ignored and deleted at open.
func TestLeftoversRemoved(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openTest(t, dir, Options{})
	for _, name := range []string{"gone", "kept"} {
		if err := s.CreateAccount(ctx, &engine.Account{Username: name}); err != nil {
			t.Fatal(err)
		}
		sess := &engine.Session{ID: name + "-session", Username: name, LastAccessedAt: testNow}
		sess.TokenHash[0] = name[0]
		if err := s.InsertSession(ctx, sess, engine.Caps{}, testNow); err != nil {
			t.Fatal(err)
		}
		if err := s.Touch(ctx, sess.ID, testNow.Add(time.Second), true); err != nil {
			t.Fatal(err)
		}
		if err := s.SetPreference(ctx, name, "theme", "dark", 10); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Simulate the crash: the account key is gone, the rest is not; plus a stray t/ key.
	db, err := badger.Open(badgerOptions(dir, nil, quietLogger))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(accountKey("gone")); err != nil {
			return err
		}
		return txn.Set(touchKey("no-such-session"), encodeTouch(testNow, testNow))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	s = openTest(t, dir, Options{})
	if list, _ := s.ListSessions(ctx, nil, testNow); len(list) != 1 || list[0].ID != "kept-session" {
		t.Errorf("sessions after open: %v; want only kept-session", list)
	}
	if err := s.CreateAccount(ctx, &engine.Account{Username: "gone"}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.GetPreference(ctx, "gone", "theme"); ok {
		t.Error("a recreated account inherited a leftover preference")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{string(accountKey("gone")), string(accountKey("kept")), keyFormat,
		string(preferenceKey("kept", "theme")), string(sessionKey("kept-session"))}
	if keys := rawKeys(t, dir); !slices.Equal(keys, want) {
		t.Errorf("keys on disk: %q; want %q", keys, want)
	}
}

// A change too large for one Badger transaction is written completely in several.
func TestLargeBatch(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	const n = 60_000
	var writes []write
	for i := range n {
		writes = append(writes, write{sessionKey(fmt.Sprint("bulk-", i)), []byte("v")})
	}
	j := &journal{db: s.db, committed: &s.committed, space: s.space}
	before := s.committed.all.Load()
	if _, err := j.write(writes); err != nil {
		t.Fatal(err)
	}
	if txns := s.committed.all.Load() - before; txns < 2 {
		t.Fatalf("%d writes went into %d transaction(s); the test needs more than one", n, txns)
	}
	count := 0
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixSession + "bulk-")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			count++
		}
		return nil
	})
	if err != nil || count != n {
		t.Errorf("%d keys written, %v; want %d", count, err, n)
	}
}

// Open refuses another application's Badger database and a directory in use.
func TestForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	db, err := badger.Open(badgerOptions(dir, nil, quietLogger))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("other"), []byte("app")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	openRefused(t, dir, "another application's database")

	shared := t.TempDir()
	openTest(t, shared, Options{})
	openRefused(t, shared, "a directory in use")
}

// openRefused fails the test unless Open refuses dir, which holds what, and returns the error.
func openRefused(t *testing.T, dir, what string) error {
	t.Helper()
	s, err := Open(Options{Dir: dir, Logger: quietLogger})
	if err == nil {
		s.Close()
		t.Fatalf("Open of %s succeeded", what)
	}
	t.Logf("%s: %v", what, err)
	return err
}

// Touch updates reach the last-use files without Flush, within a few flush intervals.
func TestBackgroundFlush(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), Options{FlushInterval: 5 * time.Millisecond})
	if err := s.CreateAccount(ctx, &engine.Account{Username: "u"}); err != nil {
		t.Fatal(err)
	}
	sess := &engine.Session{ID: "s", Username: "u", LastAccessedAt: testNow}
	if err := s.InsertSession(ctx, sess, engine.Caps{}, testNow); err != nil {
		t.Fatal(err)
	}
	touched := testNow.Add(time.Minute)
	if err := s.Touch(ctx, "s", touched, false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := storedLastUses(t, s)["s"]
		if got.LastAccessedAt.Equal(touched) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s the last-use log holds %v; want %v", got.LastAccessedAt, touched)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A store whose tables earlier versions wrote with Snappy compression opens with every
// record, and the tables written since are uncompressed.
func TestReadsCompressedTables(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := badger.Open(badgerOptions(dir, nil, quietLogger).WithCompression(options.Snappy))
	if err != nil {
		t.Fatal(err)
	}
	account := &engine.Account{Username: "u", CreatedAt: testNow}
	var ids []string
	err = db.Update(func(txn *badger.Txn) error {
		if err := txn.Set([]byte(keyFormat), []byte(formatVersion)); err != nil {
			return err
		}
		if err := txn.Set(accountKey(account.Key()), encodeAccount(account)); err != nil {
			return err
		}
		for i := range 500 {
			sess := &engine.Session{ID: fmt.Sprintf("s%03d", i), Username: "u", CreatedAt: testNow, LastAccessedAt: testNow, LastActiveAt: testNow}
			sess.TokenHash[0], sess.TokenHash[1] = byte(i), byte(i>>8)
			ids = append(ids, sess.ID)
			if err := txn.Set(sessionKey(sess.ID), encodeSession(sess)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil { // writes the records into a table, compressed
		t.Fatal(err)
	}
	if db, err = badger.Open(badgerOptions(dir, nil, quietLogger)); err != nil {
		t.Fatal(err)
	}
	tables := db.Tables()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if len(tables) != 1 || tables[0].OnDiskSize >= tables[0].UncompressedSize {
		t.Fatalf("tables %+v; want one, compressed", tables)
	}
	for round := range 2 {
		s := openTest(t, dir, Options{})
		got, err := s.ListSessions(ctx, nil, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(ids) {
			t.Fatalf("round %d: %d sessions; want %d", round, len(got), len(ids))
		}
		if round == 0 {
			// More sessions, written into a new table by the close.
			for i := range 300 {
				sess := &engine.Session{ID: fmt.Sprintf("t%03d", i), Username: "u", CreatedAt: testNow, LastAccessedAt: testNow, LastActiveAt: testNow}
				sess.TokenHash[0], sess.TokenHash[1], sess.TokenHash[2] = byte(i), byte(i>>8), 1
				if err := s.InsertSession(ctx, sess, engine.Caps{}, testNow); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, sess.ID)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if db, err = badger.Open(badgerOptions(dir, nil, quietLogger)); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	plain := 0
	for _, table := range db.Tables() {
		if table.OnDiskSize >= table.UncompressedSize {
			plain++
		}
	}
	if plain == 0 {
		t.Errorf("tables %+v; want the one written since uncompressed", db.Tables())
	}
}

// A store closed cleanly loads from a read-only open (whose close costs nothing); a new one,
// and one a crash left with a write-ahead log, from a writable one. Both keep every record.
func TestLoadOpensReadOnlyWhenClean(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	readOnly := func() (*Store, bool) {
		t.Helper()
		var logs bytes.Buffer
		s, err := Open(Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil)), FlushInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.Contains(logs.String(), "readOnly=true"):
			return s, true
		case strings.Contains(logs.String(), "readOnly=false"):
			return s, false
		}
		t.Fatalf("no load line in %q", logs.String())
		return nil, false
	}
	s, ro := readOnly()
	if ro {
		t.Error("a new store loaded from a read-only open")
	}
	if err := s.CreateAccount(ctx, &engine.Account{Username: "u", CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	sess := &engine.Session{ID: "s1", Username: "u", CreatedAt: testNow, LastAccessedAt: testNow, LastActiveAt: testNow}
	if err := s.InsertSession(ctx, sess, engine.Caps{}, testNow); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, ro = readOnly()
	if !ro {
		t.Error("a store closed cleanly loaded from a writable open")
	}
	if _, err := s.SessionByID(ctx, "s1", testNow); err != nil {
		t.Fatalf("after a clean close: %v", err)
	}
	// A crash: the write-ahead log of the last change is left behind, with a torn entry.
	sess2 := &engine.Session{ID: "s2", Username: "u", CreatedAt: testNow, LastAccessedAt: testNow, LastActiveAt: testNow}
	sess2.TokenHash[0] = 1
	if err := s.InsertSession(ctx, sess2, engine.Caps{}, testNow); err != nil {
		t.Fatal(err)
	}
	wals, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	if err != nil || len(wals) != 1 {
		t.Fatalf("write-ahead logs %v, %v; want one", wals, err)
	}
	wal, err := os.ReadFile(wals[0])
	if err != nil {
		t.Fatal(err)
	}
	s.mem.Close() // what a crash leaves: no flush, no Badger close
	s.db.Close()
	if err := os.WriteFile(wals[0], append(wal, 1, 2, 3), 0o600); err != nil {
		t.Fatal(err)
	}
	s, ro = readOnly()
	defer s.Close()
	if ro {
		t.Error("a store with a write-ahead log to truncate loaded from a read-only open")
	}
	for _, id := range []string{"s1", "s2"} {
		if _, err := s.SessionByID(ctx, id, testNow); err != nil {
			t.Fatalf("after a crash, %s: %v", id, err)
		}
	}
}

// Open refuses a store that another process wrote to between the load and the reopen for
// writing: what was loaded would be stale.
func TestOpenRefusesChangeWhileLoading(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	if err := s.CreateAccount(context.Background(), &engine.Account{Username: "u"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	testHookBetweenOpens = func() {
		db, err := badger.Open(badgerOptions(dir, nil, quietLogger))
		if err != nil {
			t.Error(err)
			return
		}
		defer db.Close()
		intruder := &engine.Account{Username: "intruder"}
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set(accountKey(intruder.Key()), encodeAccount(intruder)) }); err != nil {
			t.Error(err)
		}
	}
	defer func() { testHookBetweenOpens = nil }()
	if err := openRefused(t, dir, "a store that changed while it was loading"); !strings.Contains(err.Error(), "changed while it was loading") {
		t.Fatalf("Open: %v; want the change reported", err)
	}
	testHookBetweenOpens = nil
	s = openTest(t, dir, Options{})
	for _, user := range []string{"u", "intruder"} {
		if _, err := s.GetAccount(context.Background(), user); err != nil {
			t.Errorf("after the refusal, the next open lacks account %q: %v", user, err)
		}
	}
}

// TestSyncCoversSwitchedMemtable checks that a sync writes out the log of a memtable Badger
// has switched away from, which Badger's own Sync leaves unsynced until it flushes that
// memtable: a change committed just before the switch must be on disk when it is
// acknowledged. It checks too that such a log is written out once, not at every sync.
func TestSyncCoversSwitchedMemtable(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{FlushInterval: -1})
	first, err := filepath.Glob(filepath.Join(dir, "*"+memtableLogExt))
	if err != nil || len(first) != 1 {
		t.Fatalf("memtable logs at open: %v %v, want one", first, err)
	}
	if _, err := s.journal.write([]write{{key: []byte("test/acknowledged"), value: []byte("yes")}}); err != nil {
		t.Fatal(err)
	}
	switchMemtable(t, s)
	var synced []string
	testHookSyncFile = func(path string) error { synced = append(synced, path); return nil }
	defer func() { testHookSyncFile = nil }()
	if err := s.syncer.sync(); err != nil {
		t.Fatal(err)
	}
	_, err = os.Stat(first[0])
	switch {
	case err == nil && !slices.Contains(synced, first[0]):
		t.Errorf("the first memtable's log %s was not synced; synced %v", first[0], synced)
	case errors.Is(err, fs.ErrNotExist):
		t.Logf("Badger flushed the first memtable before the sync (synced %v)", synced)
	case err != nil:
		t.Fatal(err)
	}
	synced = nil
	if _, err := s.journal.write([]write{{key: []byte("test/later"), value: []byte("yes")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.syncer.sync(); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(synced, first[0]) {
		t.Errorf("the first memtable's log was written out again by the next sync")
	}
}

// switchMemtable commits, without syncing, enough to make Badger switch memtables (8 MB
// memtables; values under a megabyte stay in the memtable's log).
func switchMemtable(t *testing.T, s *Store) {
	t.Helper()
	big := bytes.Repeat([]byte{'x'}, 512<<10)
	for i := range 24 {
		if _, err := s.journal.write([]write{{key: fmt.Appendf(nil, "test/filler%02d", i), value: big}}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSyncWritesOutCurrentLog checks that on Linux a sync writes out the log of the memtable
// being filled itself, and the directory once for each new log.
func TestSyncWritesOutCurrentLog(t *testing.T) {
	if !writeOutCurrentLog {
		t.Skip("Badger's Sync writes out the current log here")
	}
	dir := t.TempDir()
	var synced []string
	testHookSyncFile = func(path string) error { synced = append(synced, path); return nil }
	defer func() { testHookSyncFile = nil }()
	s := openTest(t, dir, Options{FlushInterval: -1})
	commitAndSync := func(key string) (dirSynced bool) {
		t.Helper()
		if _, err := s.journal.write([]write{{key: []byte(key), value: []byte("yes")}}); err != nil {
			t.Fatal(err)
		}
		if err := s.syncer.sync(); err != nil {
			t.Fatal(err)
		}
		current, err := filepath.Glob(filepath.Join(dir, "*"+memtableLogExt))
		if err != nil || len(current) == 0 {
			t.Fatalf("memtable logs: %v %v", current, err)
		}
		if newest := slices.Max(current); !slices.Contains(synced, newest) {
			t.Errorf("the current memtable's log %s was not written out; synced %v", newest, synced)
		}
		dirSynced = slices.Contains(synced, dir)
		synced = nil
		return dirSynced
	}
	if !commitAndSync("test/first") {
		t.Errorf("neither Open nor the first sync synced the directory, which holds the new log's name")
	}
	if commitAndSync("test/second") {
		t.Errorf("the directory was synced again with no new log in it")
	}
	switchMemtable(t, s)
	if !commitAndSync("test/after-switch") {
		t.Errorf("the directory was not synced after Badger created a new log")
	}
}

// TestValueLogThreshold checks that inValueLog says where Badger puts a value: below
// valueThreshold in the memtable's log, from it on in the value log, which only then a sync
// writes out.
func TestValueLogThreshold(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{FlushInterval: -1})
	var synced []string
	testHookSyncFile = func(path string) error { synced = append(synced, path); return nil }
	defer func() { testHookSyncFile = nil }()
	for _, tc := range []struct {
		size     int
		valueLog bool
	}{
		{valueThreshold - 1, false},
		{valueThreshold, true},
		{32, false},
	} {
		marker := fmt.Appendf(nil, "value-of-%d-bytes", tc.size)
		value := append(marker, bytes.Repeat([]byte{'x'}, tc.size-len(marker))...)
		if got := inValueLog(value); got != tc.valueLog {
			t.Errorf("inValueLog(%d bytes) = %v, want %v", tc.size, got, tc.valueLog)
		}
		if _, err := s.journal.write([]write{{key: fmt.Appendf(nil, "test/%d", tc.size), value: value}}); err != nil {
			t.Fatal(err)
		}
		for ext, want := range map[string]bool{valueLogExt: tc.valueLog, memtableLogExt: !tc.valueLog} {
			if found := filesContain(t, dir, ext, marker); found != want {
				t.Errorf("%d bytes: in Badger's *%s files: %v, want %v", tc.size, ext, found, want)
			}
		}
		synced = nil
		if err := s.syncer.sync(); err != nil {
			t.Fatal(err)
		}
		wroteValueLog := slices.ContainsFunc(synced, func(path string) bool { return strings.HasSuffix(path, valueLogExt) })
		if writeOutCurrentLog && wroteValueLog != tc.valueLog {
			t.Errorf("%d bytes: the sync wrote out the value log: %v, want %v (synced %v)", tc.size, wroteValueLog, tc.valueLog, synced)
		}
		if holder := fileContaining(t, dir, valueLogExt, marker); writeOutCurrentLog && tc.valueLog && !slices.Contains(synced, holder) {
			t.Errorf("%d bytes: the value log file holding the value, %s, was not written out (synced %v)", tc.size, holder, synced)
		}
	}
}

// TestSyncCoversSwitchedValueLog checks that a value written into a value log file just
// before Badger starts the next one is written out by the next sync: Badger's Sync writes
// out only the newest file.
func TestSyncCoversSwitchedValueLog(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{FlushInterval: -1})
	var synced []string
	testHookSyncFile = func(path string) error { synced = append(synced, path); return nil }
	defer func() { testHookSyncFile = nil }()
	newest := func() string {
		t.Helper()
		files, err := filepath.Glob(filepath.Join(dir, "*"+valueLogExt))
		if err != nil || len(files) == 0 {
			t.Fatalf("value log files: %v %v", files, err)
		}
		return slices.Max(files)
	}
	big := bytes.Repeat([]byte{'v'}, valueThreshold)
	first := newest()
	for i := 0; newest() == first; i++ {
		if i > 200 {
			t.Fatalf("Badger did not start a new value log file after %d values of %d bytes", i, len(big))
		}
		if _, err := s.journal.write([]write{{key: fmt.Appendf(nil, "test/big%03d", i), value: big}}); err != nil {
			t.Fatal(err)
		}
		synced = nil
		if err := s.syncer.sync(); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Contains(synced, first) {
		t.Errorf("the value log file %s, switched away from by the last write, was not written out; synced %v", first, synced)
	}
	if syncDirectories && !slices.Contains(synced, dir) {
		t.Errorf("the directory was not synced after Badger created a value log file")
	}
	if _, err := s.journal.write([]write{{key: []byte("test/after"), value: big}}); err != nil {
		t.Fatal(err)
	}
	synced = nil
	if err := s.syncer.sync(); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(synced, first) {
		t.Errorf("the value log file %s, switched away from, was written out again", first)
	}
}

// filesContain reports whether a file in dir whose name ends in ext contains b.
func filesContain(t *testing.T, dir, ext string, b []byte) bool {
	t.Helper()
	return fileContaining(t, dir, ext, b) != ""
}

// fileContaining returns the path of a file in dir whose name ends in ext and that contains
// b, or "".
func fileContaining(t *testing.T, dir, ext string, b []byte) string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*"+ext))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, b) {
			return path
		}
	}
	return ""
}

// TestDeleteAccountPartlyWritten checks that an account deletion whose account is written
// but whose sessions and preferences fail to be leaves memory as the next open will find the
// store: the account gone, and no write for it acknowledged only to be dropped at that open.
func TestDeleteAccountPartlyWritten(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// Fewer sessions than memstore removes a hold before the account, and more deletions
	// with the preferences than one transaction takes.
	s, ids := accountWithSessions(t, dir, "ses_partly", 4_000)
	for i := range 12_000 {
		if err := s.SetPreference(ctx, "u", fmt.Sprintf("label%05d", i), "v", 0); err != nil {
			t.Fatal(err)
		}
	}
	failSecondCommit(t)
	_, err := s.DeleteAccounts(ctx, []string{"u"})
	testHookCommit = nil
	if err == nil {
		t.Fatal("DeleteAccounts succeeded despite the failed write")
	}
	if _, err := s.GetAccount(ctx, "u"); !errors.Is(err, engine.ErrAccountNotFound) {
		t.Errorf("account after the partly written deletion: %v, want not found", err)
	}
	late := hourSession("ses_late", "u")
	acknowledged := s.InsertSession(ctx, &late, engine.Caps{}, testNow) == nil
	// A new account of the same name would inherit the leftovers at the next open.
	if err := s.CreateAccount(ctx, &engine.Account{Username: "u", CreatedAt: testNow}); !errors.Is(err, engine.ErrAccountExists) {
		t.Errorf("recreating the account before the leftovers are dropped: %v, want ErrAccountExists", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, Options{FlushInterval: -1})
	_, err = s.SessionByID(ctx, "ses_late", testNow)
	if acknowledged && err != nil {
		t.Errorf("a session stored after the partly written deletion was acknowledged and lost: %v", err)
	}
	if _, err := s.GetAccount(ctx, "u"); !errors.Is(err, engine.ErrAccountNotFound) {
		t.Errorf("account after reopening: %v, want not found", err)
	}
	if err := s.CreateAccount(ctx, &engine.Account{Username: "u", CreatedAt: testNow}); err != nil {
		t.Errorf("recreating the account after reopening: %v", err)
	}
	if _, err := s.SessionByID(ctx, ids[0], testNow); err == nil {
		t.Errorf("a session of the deleted account came back")
	}
}

// TestSyncFailureIsFinal checks that once writing a log out has failed no later change is
// acknowledged or made, even when writing out works again: the failed one may have lost pages
// a later one cannot see. A log that could not even be opened wrote nothing out, and is not
// final.
func TestSyncFailureIsFinal(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		final bool
	}{
		{"write-out failed", errors.New("injected: I/O error"), true},
		{"open failed", &syncNotStartedError{errors.New("injected: too many open files")}, false},
		{"directory write-out failed", errors.New("injected: I/O error"), true},
		{"directory open failed", &syncNotStartedError{errors.New("injected: too many open files")}, false},
		{"switched-away log write-out failed", errors.New("injected: I/O error"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			onlyDir := strings.HasPrefix(tc.name, "directory")
			if onlyDir && !syncDirectories {
				t.Skip("directories are not synced here")
			}
			ctx := context.Background()
			dir := t.TempDir()
			s := openTest(t, dir, Options{FlushInterval: -1})
			if err := s.CreateAccount(ctx, &engine.Account{Username: "before", CreatedAt: testNow}); err != nil {
				t.Fatal(err)
			}
			firstLog, err := filepath.Glob(filepath.Join(dir, "*"+memtableLogExt))
			if err != nil || len(firstLog) != 1 {
				t.Fatalf("memtable logs: %v %v, want one", firstLog, err)
			}
			switchMemtable(t, s) // a new memtable log: the next sync syncs the directory too
			if _, err := os.Stat(firstLog[0]); strings.HasPrefix(tc.name, "switched") && err != nil {
				t.Skipf("Badger flushed the first memtable already: %v", err)
			}
			testHookSyncFile = func(path string) error {
				switch {
				case onlyDir && path != dir, strings.HasPrefix(tc.name, "switched") && path != firstLog[0]:
					return nil
				}
				return tc.err
			}
			err = s.CreateAccount(ctx, &engine.Account{Username: "failed", CreatedAt: testNow})
			if err == nil {
				if _, statErr := os.Stat(firstLog[0]); strings.HasPrefix(tc.name, "switched") && statErr != nil {
					t.Skipf("Badger flushed the first memtable before the sync: %v", statErr)
				}
				t.Fatal("a change whose sync failed was acknowledged")
			}
			var synced []string
			testHookSyncFile = func(path string) error { synced = append(synced, path); return nil }
			err = s.CreateAccount(ctx, &engine.Account{Username: "after", CreatedAt: testNow})
			testHookSyncFile = nil
			if tc.final && err == nil {
				t.Error("a change was acknowledged after a failed write-out")
			}
			// A change refused after a final failure is not made either: answered with an
			// error, it must not take effect.
			if _, getErr := s.GetAccount(ctx, "after"); tc.final && getErr == nil {
				t.Error("a change refused after a failed write-out was made in memory")
			}
			if !tc.final && err != nil {
				t.Errorf("a change after a sync that wrote nothing out: %v", err)
			}
			if !tc.final && syncDirectories && !slices.Contains(synced, dir) {
				t.Errorf("the directory, not synced by the failed sync, was not synced by the next (synced %v)", synced)
			}
			if _, err := s.GetAccount(ctx, "before"); err != nil {
				t.Errorf("reads after a failed sync: %v", err)
			}
			// The engine's health check (engine.CheckStore) learns of it from Sync.
			if err := s.Sync(ctx); tc.final != (err != nil) {
				t.Errorf("Sync after the failure = %v; want an error: %v", err, tc.final)
			}
		})
	}
}

// hourSession is a session of username with the given id, started at testNow, that ends after
// an hour unused; its token hash is the id's.
func hourSession(id, username string) engine.Session {
	return engine.Session{ID: id, TokenHash: sha256.Sum256([]byte(id)), Username: username,
		CreatedAt: testNow, LastAccessedAt: testNow, LastActiveAt: testNow,
		Settings: engine.SessionSettings{IdleConnectionTimeoutSeconds: 3600}}
}

// TestSyncWaitsForChangesSeen checks Store.Sync (engine.Syncer): a caller that finds a session
// already deleted by a call still in its fsync does not return before that fsync is done.
func TestSyncWaitsForChangesSeen(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), Options{FlushInterval: -1})
	if err := s.CreateAccount(ctx, &engine.Account{Username: "u", CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	sess := hourSession("ses_1", "u")
	if err := s.InsertSession(ctx, &sess, engine.Caps{}, testNow); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	testHookSyncFile = func(string) error {
		once.Do(func() { close(entered); <-release })
		return nil
	}
	defer func() { testHookSyncFile = nil }()
	deleted := make(chan error)
	go func() {
		_, err := s.DeleteSessions(ctx, []string{sess.ID}, testNow)
		deleted <- err
	}()
	<-entered // the delete is in memory, its fsync not done
	if _, err := s.SessionByTokenHash(ctx, sess.TokenHash, testNow); !errors.Is(err, engine.ErrSessionNotFound) {
		t.Fatalf("lookup during the delete's fsync: %v, want not found", err)
	}
	synced := make(chan error)
	go func() { synced <- s.Sync(ctx) }()
	select {
	case err := <-synced:
		t.Fatalf("Sync returned (%v) while the delete it saw was not on disk", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
}

// TestDeleteSessionsFailingPartway checks that a delete of many sessions whose second step
// fails reports the sessions of the first step with the error, and that they stay deleted
// after a reopen while the rest stay.
func TestDeleteSessionsFailingPartway(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, ids := accountWithSessions(t, dir, "ses_partway", 10_000) // three steps of 4,096
	failSecondCommit(t)
	n, err := s.DeleteSessions(ctx, ids, testNow)
	testHookCommit = nil
	if err == nil || n != 4096 {
		t.Fatalf("DeleteSessions = %d, %v; want the first step's 4096 and the failure", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, Options{FlushInterval: -1})
	for i, id := range []string{ids[0], ids[4095], ids[4096], ids[len(ids)-1]} {
		_, err := s.SessionByID(ctx, id, testNow)
		if gone := errors.Is(err, engine.ErrSessionNotFound); gone != (i < 2) {
			t.Errorf("%s after reopening: %v; want gone = %v", id, err, i < 2)
		}
	}
}

// accountWithSessions opens a store in dir holding account u with n sessions, their ids
// named after prefix, and returns it with the ids.
func accountWithSessions(t *testing.T, dir, prefix string, n int) (*Store, []string) {
	t.Helper()
	s := openTest(t, dir, Options{FlushInterval: -1})
	if err := s.CreateAccount(context.Background(), &engine.Account{Username: "u", CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	sessions := make([]engine.Session, n)
	ids := make([]string, n)
	for i := range sessions {
		sessions[i] = hourSession(fmt.Sprintf("%s%06d", prefix, i), "u")
		ids[i] = sessions[i].ID
	}
	if err := s.ImportSessions(context.Background(), sessions); err != nil {
		t.Fatal(err)
	}
	return s, ids
}

// failSecondCommit makes the journal's second commit from now fail, until the test ends.
func failSecondCommit(t *testing.T) {
	commits := 0
	testHookCommit = func() error {
		if commits++; commits == 2 {
			return errors.New("injected write failure")
		}
		return nil
	}
	t.Cleanup(func() { testHookCommit = nil })
}
