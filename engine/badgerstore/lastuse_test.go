package badgerstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/memstore"
)

// storedLastUses returns the latest times of each session in the last-use files of s.
func storedLastUses(t *testing.T, s *Store) map[string]memstore.Touched {
	t.Helper()
	latest := map[string]memstore.Touched{}
	_, _, err := s.lastUse.files.read(func(_ uint64, chunk []byte) error {
		entries, err := decodeLastUses(chunk, nil)
		for _, u := range entries {
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
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return latest
}

// generations lists the generations of the last-use files in the store in dir.
func generations(t *testing.T, dir string) []uint64 {
	t.Helper()
	files, err := listLastUseFiles(filepath.Join(dir, lastUseDirName))
	if err != nil {
		t.Fatal(err)
	}
	var gens []uint64
	for _, f := range files {
		if len(gens) == 0 || gens[len(gens)-1] != f.generation {
			gens = append(gens, f.generation)
		}
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
	if g := generations(t, dir); !slices.Equal(g, []uint64{1}) {
		t.Fatalf("generations %v; want [1]", g)
	}
	touchAll(false) // generation 2: the log, then the first snapshot page
	if g := generations(t, dir); !slices.Equal(g, []uint64{1, 2}) {
		t.Fatalf("generations during a snapshot %v; want [1 2]", g)
	}
	// Closing halfway leaves both generations; the next open reads both and starts over.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, Options{FlushInterval: -1})
	s.lastUse.page, s.lastUse.minLog, s.lastUse.pagesPerRun = 3, 1, 1
	checkTimes(t, s, ids, at, testNow.Add(time.Second))
	if s.lastUse.files.generation != 3 || s.lastUse.snapshotFrom != 0 {
		t.Fatalf("after open: generation %d, snapshot from %d; want a snapshot in generation 3",
			s.lastUse.files.generation, s.lastUse.snapshotFrom)
	}
	for range 3 { // 8 sessions in pages of 3
		touchAll(false)
	}
	if g := generations(t, dir); !slices.Equal(g, []uint64{3}) {
		t.Fatalf("generations after the snapshot %v; want [3]", g)
	}
	latest := storedLastUses(t, s)
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
	if g := generations(t, dir); !slices.Equal(g, []uint64{2}) {
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
	if g := generations(t, dir); !slices.Equal(g, []uint64{2}) || s.lastUse.snapshotFrom >= 0 {
		t.Fatalf("generations %v, snapshot from %d after a restart; want [2] and no snapshot", g, s.lastUse.snapshotFrom)
	}
	checkTimes(t, s, ids[2:], testNow.Add(time.Second), testNow)
}

// A store of format 1 (last-use times under t/ keys) or 2 (under u/ keys) opens with those
// times, is marked with the current format, and loses those keys once a snapshot in the
// last-use files holds their times; a crash before that snapshot loses none of them.
func TestLegacyFormatUpgrade(t *testing.T) {
	later, active := testNow.Add(time.Hour), testNow.Add(time.Minute)
	for _, tc := range []struct {
		format string
		// legacy writes the last-use times of ids as that format did.
		legacy func(txn *badger.Txn, ids []string) error
	}{
		{formatVersion1, func(txn *badger.Txn, ids []string) error {
			for _, id := range append(ids, "gone") {
				if err := txn.Set(touchKey(id), encodeTouch(later, active)); err != nil {
					return err
				}
			}
			return nil
		}},
		{formatVersion2, func(txn *badger.Txn, ids []string) error {
			var chunk []memstore.Touched
			for _, id := range append(ids, "gone") {
				chunk = append(chunk, memstore.Touched{ID: id, LastAccessedAt: later, LastActiveAt: active})
			}
			// Two generations, the older with earlier times, as an unfinished snapshot left them.
			older := appendLastUses(nil, []memstore.Touched{{ID: ids[0], LastAccessedAt: testNow}})
			if err := txn.Set(lastUseKey(1, 0), older); err != nil {
				return err
			}
			return txn.Set(lastUseKey(2, 0), appendLastUses(nil, chunk))
		}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir, Options{FlushInterval: -1})
			ids := addSessions(t, s, 5)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// Rewrite it as the older format would have left it, without last-use files.
			if err := os.RemoveAll(filepath.Join(dir, lastUseDirName)); err != nil {
				t.Fatal(err)
			}
			db, err := badger.Open(badgerOptions(dir, nil, quietLogger))
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(txn *badger.Txn) error {
				if err := txn.Set([]byte(keyFormat), []byte(tc.format)); err != nil {
					return err
				}
				return tc.legacy(txn, ids)
			})
			db.Close()
			if err != nil {
				t.Fatal(err)
			}

			s = openTest(t, dir, Options{FlushInterval: -1})
			checkTimes(t, s, ids, later, active)
			if s.lastUse.snapshotFrom != 0 || !s.lastUse.legacy {
				t.Fatal("no snapshot started after opening a store with last-use keys")
			}
			// A crash before the snapshot: the store is marked with the current format and
			// still holds the older keys, and one newer time is in a last-use file. The next
			// open reads both, and starts the snapshot again.
			newer := later.Add(30 * time.Second) // before the inactivity clock (an hour from active) ends
			if err := s.Touch(context.Background(), ids[0], newer, false); err != nil {
				t.Fatal(err)
			}
			if err := s.writeTouched(false); err != nil {
				t.Fatal(err)
			}
			// A crash as far as the last-use times go: nothing more is flushed or closed in
			// them. Badger itself is closed, so that this process can open it again.
			s.mem.Close()
			s.db.Close()
			s = openTest(t, dir, Options{FlushInterval: -1})
			checkTimes(t, s, ids[:1], newer, active)
			checkTimes(t, s, ids[1:], later, active)
			if s.lastUse.snapshotFrom != 0 || !s.lastUse.legacy {
				t.Fatal("no snapshot started again after a crash before the first one")
			}
			if err := s.writeTouched(true); err != nil { // one page holds all five
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			for _, key := range rawKeys(t, dir) {
				if key[:2] == prefixTouch || key[:2] == prefixLastUse {
					t.Errorf("key %q left after the snapshot", key)
				}
			}
			s = openTest(t, dir, Options{FlushInterval: -1})
			checkTimes(t, s, ids[:1], newer, active)
			checkTimes(t, s, ids[1:], later, active)
			if s.lastUse.snapshotFrom >= 0 || s.lastUse.legacy {
				t.Error("a snapshot started again at the open after the upgrade")
			}
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
		})
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
	openRefused(t, dir, "a store of format 9")
}

// A last-use file that a crash left with an incomplete record, a record that fails its
// checksum, or a tail of zeros (a file system can leave blocks allocated but unwritten), or
// without its header, is read up to its last whole record, reported, and cut back there at
// open.
func TestLastUseTornRecord(t *testing.T) {
	for _, tail := range []struct {
		name  string
		bytes []byte
	}{
		{"incomplete record", append([]byte{100, 0, 0, 0, 1, 2, 3, 4}, make([]byte, 10)...)}, // claims 100 bytes, has 10
		{"zeros", make([]byte, 4096)},
		{"wrong checksum", append([]byte{10, 0, 0, 0, 1, 2, 3, 4}, make([]byte, 10)...)}, // whole, CRC wrong
	} {
		t.Run(tail.name, func(t *testing.T) { testLastUseTornRecord(t, tail.bytes) })
	}
}

func testLastUseTornRecord(t *testing.T, tail []byte) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{FlushInterval: -1})
	ids := addSessions(t, s, 3)
	at := testNow.Add(time.Minute)
	touchAndRun(t, s, at, true, ids...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := listLastUseFiles(filepath.Join(dir, lastUseDirName))
	if err != nil || len(files) != 1 {
		t.Fatalf("last-use files %v, %v; want one", files, err)
	}
	whole, err := os.Stat(files[0].path)
	if err != nil {
		t.Fatal(err)
	}
	// The tail, and two segments created just before a crash: empty, and zeros.
	f, err := os.OpenFile(files[0].path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(tail); err != nil {
		t.Fatal(err)
	}
	f.Close()
	empty := filepath.Join(dir, lastUseDirName, lastUseFileName(files[0].generation, files[0].segment+1))
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	zeros := filepath.Join(dir, lastUseDirName, lastUseFileName(files[0].generation, files[0].segment+2))
	if err := os.WriteFile(zeros, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}

	var logged bytes.Buffer
	s = openTest(t, dir, Options{FlushInterval: -1, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	checkTimes(t, s, ids, at, at)
	if !strings.Contains(logged.String(), "incomplete record") {
		t.Errorf("nothing logged about the incomplete record; log:\n%s", logged.String())
	}
	if st, err := os.Stat(files[0].path); err != nil || st.Size() != whole.Size() {
		t.Errorf("torn file after open: %v, %v; want %d bytes", st, err, whole.Size())
	}
	for _, path := range []string{empty, zeros} {
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s, without a header, is still there: %v", filepath.Base(path), err)
		}
	}
	later := at.Add(time.Minute)
	touchAndRun(t, s, later, false, ids[0])
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	logged.Reset()
	s = openTest(t, dir, Options{FlushInterval: -1, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	checkTimes(t, s, ids[:1], later, at)
	checkTimes(t, s, ids[1:], at, at)
	if strings.Contains(logged.String(), "incomplete record") {
		t.Errorf("the incomplete record is reported again after it was cut off; log:\n%s", logged.String())
	}
}

// After a failed run of the last-use writer (a write to a segment that fails, or a segment
// that cannot be created) the times are kept in memory and written by the next run, to a new
// segment under the next name.
func TestLastUseWriteFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		// fail makes the next run fail.
		fail func(t *testing.T, dir string, s *Store, ids []string)
	}{
		{"write to a failing segment", func(t *testing.T, _ string, s *Store, ids []string) {
			touchAndRun(t, s, testNow.Add(time.Second), true, ids...) // creates segment 0
			s.lastUse.files.f.Close()
		}},
		{"segment name taken", func(t *testing.T, dir string, s *Store, _ []string) {
			taken := filepath.Join(dir, lastUseDirName, lastUseFileName(s.lastUse.files.generation, s.lastUse.files.segment))
			if err := os.MkdirAll(filepath.Dir(taken), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(taken, []byte(lastUseMagic+"\x00"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir, Options{FlushInterval: -1})
			ids := addSessions(t, s, 2)
			tc.fail(t, dir, s, ids)
			failedSegment := s.lastUse.files.segment
			at := testNow.Add(time.Minute)
			for _, id := range ids {
				if err := s.Touch(context.Background(), id, at, true); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.writeTouched(true); err == nil {
				t.Fatal("the failing run succeeded")
			}
			if err := s.writeTouched(true); err != nil {
				t.Fatalf("the run after a failure: %v", err)
			}
			if s.lastUse.files.segment != failedSegment+1 {
				t.Errorf("the run after a failure wrote segment %d; want %d", s.lastUse.files.segment, failedSegment+1)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, dir, Options{FlushInterval: -1})
			checkTimes(t, s, ids, at, at)
		})
	}
}

// No file content makes the last-use file reader panic, and it reports a file torn exactly
// where its whole records end.
func FuzzLastUseFile(f *testing.F) {
	dir := f.TempDir()
	w, err := newLastUseFiles(dir, nil)
	if err != nil {
		f.Fatal(err)
	}
	if err := w.write([]memstore.Touched{{ID: "a", LastAccessedAt: testNow}, {ID: "b"}}); err != nil {
		f.Fatal(err)
	}
	if err := w.close(); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(filepath.Join(w.dir, lastUseFileName(0, 0)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-3])
	f.Add([]byte(lastUseMagic))
	f.Fuzz(func(t *testing.T, content []byte) {
		r, err := newLastUseFiles(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(r.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(r.dir, lastUseFileName(1, 0)), content, 0o600); err != nil {
			t.Fatal(err)
		}
		whole := int64(lastUseHeader) // the header and the records read
		_, torn, err := r.read(func(_ uint64, chunk []byte) error {
			whole += recordHeader + int64(len(chunk))
			_, err := decodeLastUses(chunk, nil)
			return err
		})
		switch {
		case err != nil:
		case len(torn) == 0 && whole != int64(len(content)):
			t.Errorf("read to the end, but the records take %d of %d bytes", whole, len(content))
		case len(torn) == 1 && torn[0].size != 0 && torn[0].size != whole:
			t.Errorf("torn at %d, but the header and whole records take %d", torn[0].size, whole)
		}
	})
}

// A snapshot starts once the log holds entries for half as many sessions as there are.
func TestLastUseSnapshotAtHalf(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{FlushInterval: -1})
	s.lastUse.minLog = 1
	ids := addSessions(t, s, 8)
	touchAndRun(t, s, testNow.Add(time.Second), false, ids[:3]...)
	touchAndRun(t, s, testNow.Add(2*time.Second), false) // 3 of 8 logged: not yet
	if g := generations(t, dir); !slices.Equal(g, []uint64{1}) {
		t.Fatalf("generations %v with 3 of 8 sessions logged; want [1]", g)
	}
	touchAndRun(t, s, testNow.Add(3*time.Second), false, ids[3])
	touchAndRun(t, s, testNow.Add(4*time.Second), false) // 4 of 8: a snapshot replaces the log
	if g := generations(t, dir); !slices.Equal(g, []uint64{2}) {
		t.Fatalf("generations %v with 4 of 8 sessions logged; want [2]", g)
	}
}

// A load whose last-use log fills several batches (more than 16,384 entries each) gives
// every session its logged times, while the restorer works on the batches the reader sent.
func TestLoadManyLastUses(t *testing.T) {
	const n = 40_000
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, Options{FlushInterval: -1})
	if err := s.CreateAccount(ctx, &engine.Account{Username: "u", CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	sessions := make([]engine.Session, n)
	for i := range sessions {
		sessions[i] = hourSession(fmt.Sprintf("ses_many%06d", i), "u")
	}
	if err := s.ImportSessions(ctx, sessions); err != nil {
		t.Fatal(err)
	}
	used := func(i int) time.Time { return testNow.Add(time.Duration(i%600) * time.Second) }
	for i := range sessions {
		if err := s.Touch(ctx, sessions[i].ID, used(i), i%2 == 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, Options{FlushInterval: -1})
	for i := range sessions {
		got, err := s.SessionByID(ctx, sessions[i].ID, testNow)
		if err != nil {
			t.Fatalf("%s: %v", sessions[i].ID, err)
		}
		active := testNow
		if i%2 == 0 {
			active = used(i)
		}
		if !got.LastAccessedAt.Equal(used(i)) || !got.LastActiveAt.Equal(active) {
			t.Fatalf("%s: last used %v, active %v; want %v, %v", got.ID, got.LastAccessedAt, got.LastActiveAt, used(i), active)
		}
	}
}

// lastUseKey names one chunk of the legacy format 2's last-use times; keys sort by generation, then
// sequence.
func lastUseKey(generation, sequence uint64) []byte {
	k := make([]byte, 0, len(prefixLastUse)+16)
	k = append(k, prefixLastUse...)
	k = binary.BigEndian.AppendUint64(k, generation)
	return binary.BigEndian.AppendUint64(k, sequence)
}

// TestLastUseLongIDs checks that entries too long to fit maxChunkEntries in one record are
// written in smaller records, which load reads back whole, with and without encryption.
func TestLastUseLongIDs(t *testing.T) {
	for _, key := range [][]byte{nil, bytes.Repeat([]byte{7}, 32)} {
		l, err := newLastUseFiles(t.TempDir(), key)
		if err != nil {
			t.Fatal(err)
		}
		touched := make([]memstore.Touched, maxChunkEntries)
		for i := range touched {
			touched[i] = memstore.Touched{ID: fmt.Sprintf("%04d%s", i, strings.Repeat("x", 3000)), LastAccessedAt: testNow}
		}
		if err := l.write(touched); err != nil {
			t.Fatal(err)
		}
		if err := l.close(); err != nil {
			t.Fatal(err)
		}
		var got []memstore.Touched
		records := 0
		_, torn, err := l.read(func(_ uint64, chunk []byte) error {
			records++
			got, err = decodeLastUses(chunk, got)
			return err
		})
		if err != nil || len(torn) != 0 {
			t.Fatalf("encrypted %v: read: %v, torn %v", key != nil, err, torn)
		}
		if len(got) != len(touched) || records < 2 {
			t.Fatalf("encrypted %v: read %d entries in %d records, want %d in several", key != nil, len(got), records, len(touched))
		}
		for i := range got {
			if got[i].ID != touched[i].ID || !got[i].LastAccessedAt.Equal(testNow) {
				t.Fatalf("encrypted %v: entry %d is %.10q at %v", key != nil, i, got[i].ID, got[i].LastAccessedAt)
			}
		}
	}
}
