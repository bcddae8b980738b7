package badgerstore

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/memstore"
)

// storedLastUses returns the latest times of each session in the last-use log on disk.
func storedLastUses(t *testing.T, db *badger.DB) map[string]memstore.Touched {
	t.Helper()
	latest := map[string]memstore.Touched{}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixLastUse)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var chunk []memstore.Touched
			err := it.Item().Value(func(v []byte) (err error) {
				chunk, err = decodeLastUses(v, nil)
				return err
			})
			if err != nil {
				return err
			}
			for _, u := range chunk {
				old := latest[u.ID]
				if u.LastAccessedAt.After(old.LastAccessedAt) {
					old.LastAccessedAt = u.LastAccessedAt
				}
				if u.LastActiveAt.After(old.LastActiveAt) {
					old.LastActiveAt = u.LastActiveAt
				}
				old.ID = u.ID
				latest[u.ID] = old
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return latest
}

// generations lists the generations of last-use chunks on disk.
func generations(t *testing.T, db *badger.DB) []uint64 {
	t.Helper()
	var gens []uint64
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixLastUse)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			g, _, err := parseLastUseKey(it.Item().Key())
			if err != nil {
				return err
			}
			if len(gens) == 0 || gens[len(gens)-1] != g {
				gens = append(gens, g)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return gens
}

// addSessions creates an account and n sessions s0…s(n-1) last used at testNow.
func addSessions(t *testing.T, s *Store, n int) []string {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateAccount(ctx, &engine.Account{Username: "u"}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range n {
		sess := &engine.Session{ID: "s" + string(rune('a'+i)), Username: "u", CreatedAt: testNow,
			LastAccessedAt: testNow, LastActiveAt: testNow, InactivitySeconds: 3600}
		sess.TokenHash[0], sess.TokenHash[1] = byte(i), 0x77
		if err := s.InsertSession(ctx, sess, engine.Caps{}, testNow); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sess.ID)
	}
	return ids
}

// touchAndRun uses the sessions ids at at, then does a background run of the last-use writer.
func touchAndRun(t *testing.T, s *Store, at time.Time, active bool, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := s.Touch(context.Background(), id, at, active); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.writeTouched(true); err != nil {
		t.Fatal(err)
	}
}

// checkTimes fails unless every session has the wanted last-use times.
func checkTimes(t *testing.T, s *Store, ids []string, accessed, active time.Time) {
	t.Helper()
	for _, id := range ids {
		sess, err := s.SessionByID(context.Background(), id, testNow)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if !sess.LastAccessedAt.Equal(accessed) || !sess.LastActiveAt.Equal(active) {
			t.Errorf("%s: last used %v, active %v; want %v, %v", id, sess.LastAccessedAt, sess.LastActiveAt, accessed, active)
		}
	}
}

// A snapshot replaces the older generations of the last-use log, and the latest times
// survive every stage of it: between its pages, after it, and after a close halfway.
func TestLastUseSnapshot(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{FlushInterval: -1})
	s.lastUse.page, s.lastUse.minLog, s.lastUse.pagesPerRun = 3, 1, 1
	ids := addSessions(t, s, 8)
	at := testNow
	touchAll := func(active bool) {
		at = at.Add(time.Second)
		touchAndRun(t, s, at, active, ids...)
	}
	touchAll(true) // 8 log entries: enough to start a snapshot at the next run
	if g := generations(t, s.db); !slices.Equal(g, []uint64{1}) {
		t.Fatalf("generations %v; want [1]", g)
	}
	touchAll(false) // generation 2: the log, then the first snapshot page
	if g := generations(t, s.db); !slices.Equal(g, []uint64{1, 2}) {
		t.Fatalf("generations during a snapshot %v; want [1 2]", g)
	}
	// Closing halfway leaves both generations; the next open reads both and starts over.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, Options{FlushInterval: -1})
	s.lastUse.page, s.lastUse.minLog, s.lastUse.pagesPerRun = 3, 1, 1
	checkTimes(t, s, ids, at, testNow.Add(time.Second))
	if s.lastUse.generation != 3 || s.lastUse.snapshotFrom != 0 {
		t.Fatalf("after open: generation %d, snapshot from %d; want a snapshot in generation 3",
			s.lastUse.generation, s.lastUse.snapshotFrom)
	}
	for range 3 { // 8 sessions in pages of 3
		touchAll(false)
	}
	if g := generations(t, s.db); !slices.Equal(g, []uint64{3}) {
		t.Fatalf("generations after the snapshot %v; want [3]", g)
	}
	latest := storedLastUses(t, s.db)
	for _, id := range ids {
		if !latest[id].LastAccessedAt.Equal(at) || !latest[id].LastActiveAt.Equal(testNow.Add(time.Second)) {
			t.Errorf("%s on disk: %+v", id, latest[id])
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, Options{FlushInterval: -1})
	checkTimes(t, s, ids, at, testNow.Add(time.Second))
}

// A restart does not start a snapshot: the snapshot a generation begins with does not count
// as log, so the log must grow as long as there are sessions again first.
func TestLastUseRestartKeepsSnapshot(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{FlushInterval: -1})
	s.lastUse.minLog = 1
	ids := addSessions(t, s, 8)
	at := testNow
	touch := func(ids ...string) {
		t.Helper()
		at = at.Add(time.Second)
		touchAndRun(t, s, at, false, ids...)
	}
	touch(ids...) // generation 1: 8 log entries, enough for a snapshot
	touch(ids[0]) // generation 2: 1 log entry and a snapshot of 8
	if g := generations(t, s.db); !slices.Equal(g, []uint64{2}) {
		t.Fatalf("generations after the snapshot %v; want [2]", g)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, Options{FlushInterval: -1})
	s.lastUse.minLog = 1
	if s.lastUse.logged != 1 {
		t.Errorf("after open the log counts %d entries; want 1 (the snapshot is not log)", s.lastUse.logged)
	}
	touch(ids[1])
	if g := generations(t, s.db); !slices.Equal(g, []uint64{2}) || s.lastUse.snapshotFrom >= 0 {
		t.Fatalf("generations %v, snapshot from %d after a restart; want [2] and no snapshot", g, s.lastUse.snapshotFrom)
	}
	checkTimes(t, s, ids[2:], testNow.Add(time.Second), testNow)
}

// A store of format 1, with last-use times under t/ keys, opens with those times, is marked
// format 2, and loses its t/ keys once a snapshot holds their times.
func TestFormat1Upgrade(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{FlushInterval: -1})
	ids := addSessions(t, s, 5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Rewrite it as format 1 would have left it: t/ keys with later times, no u/ keys.
	later, active := testNow.Add(time.Hour), testNow.Add(time.Minute)
	db, err := badger.Open(badgerOptions(dir, nil, quietLogger))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		if err := txn.Set([]byte(keyFormat), []byte(formatVersion1)); err != nil {
			return err
		}
		for _, id := range ids {
			if err := txn.Set(touchKey(id), encodeTouch(later, active)); err != nil {
				return err
			}
		}
		return txn.Set(touchKey("gone"), encodeTouch(later, later))
	})
	if err != nil {
		t.Fatal(err)
	}
	if g := generations(t, db); len(g) != 0 {
		t.Fatalf("generations %v in a format-1 store", g)
	}
	db.Close()

	s = openTest(t, dir, Options{FlushInterval: -1})
	checkTimes(t, s, ids, later, active)
	if s.lastUse.snapshotFrom != 0 {
		t.Fatal("no snapshot started after opening a store with t/ keys")
	}
	if err := s.writeTouched(true); err != nil { // one page holds all five
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, key := range rawKeys(t, dir) {
		if key[:2] == prefixTouch {
			t.Errorf("t/ key %q left after the snapshot", key)
		}
		if key == keyFormat {
			continue
		}
	}
	s = openTest(t, dir, Options{FlushInterval: -1})
	checkTimes(t, s, ids, later, active)
	var format []byte
	_ = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyFormat))
		if err == nil {
			format, err = item.ValueCopy(nil)
		}
		return err
	})
	if string(format) != formatVersion {
		t.Errorf("format after the upgrade %q; want %q", format, formatVersion)
	}
}

// A store of an unknown format is refused with a clear error.
func TestUnknownFormat(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := badger.Open(badgerOptions(dir, nil, quietLogger))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyFormat), []byte("sessiond-badgerstore-9")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := Open(Options{Dir: dir, Logger: quietLogger}); err == nil {
		s.Close()
		t.Fatal("Open of a store of format 9 succeeded")
	} else {
		t.Logf("format 9: %v", err)
	}
}
