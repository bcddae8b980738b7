package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/internal/syncbuf"
)

// fakeDisk is the free space and clock of a space guard under test.
type fakeDisk struct {
	free  atomic.Uint64
	reads atomic.Int64
	mu    sync.Mutex
	now   time.Time
}

func (d *fakeDisk) freeSpace(string) (uint64, bool, error) {
	d.reads.Add(1)
	return d.free.Load(), true, nil
}

func (d *fakeDisk) clock() time.Time { d.mu.Lock(); defer d.mu.Unlock(); return d.now }

// later moves the clock past the guard's interval, so that its next check reads the space.
func (d *fakeDisk) later() { d.mu.Lock(); d.now = d.now.Add(spaceCheckInterval); d.mu.Unlock() }

// TestDiskFullRefusesChanges checks the space guard in a store: under the reserve it refuses
// changes and last-use writes with ErrDiskFull (engine.ErrUnavailable) and leaves memory as it
// was, but for deletions down to half the reserve, logs that once, keeps serving reads and token checks, reports it to CheckWrites and
// the engine's CheckStore, takes changes again by itself once space is free (logged once),
// and every acknowledged change is there after a reopen.
func TestDiskFullRefusesChanges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	logs := &syncbuf.Buffer{}
	disk := &fakeDisk{now: testNow}
	plenty := uint64(1 << 40)
	disk.free.Store(plenty)
	s := openTest(t, dir, Options{FlushInterval: -1, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		freeSpace: disk.freeSpace, now: disk.clock})
	eng, err := engine.New(s, engine.Config{HousekeepingInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := s.CreateAccount(ctx, &engine.Account{Username: "u", CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	var acknowledged []string
	insert := func(id string) error {
		sess := hourSession(id, "u")
		err := s.InsertSession(ctx, &sess, engine.Caps{}, testNow)
		if err == nil {
			acknowledged = append(acknowledged, id)
		}
		return err
	}
	for i := range 10 {
		if err := insert(fmt.Sprintf("ses_before%d", i)); err != nil {
			t.Fatal(err)
		}
	}

	disk.free.Store(s.space.reserve - 1)
	disk.later()
	for i := range 5 {
		err := insert(fmt.Sprintf("ses_refused%d", i))
		if !errors.Is(err, ErrDiskFull) || !errors.Is(err, engine.ErrUnavailable) {
			t.Fatalf("insert with the disk nearly full: %v; want ErrDiskFull, engine.ErrUnavailable", err)
		}
		if _, err := s.SessionByID(ctx, fmt.Sprintf("ses_refused%d", i), testNow); !errors.Is(err, engine.ErrSessionNotFound) {
			t.Fatalf("a refused insert is in memory: %v", err)
		}
		disk.later() // each refusal after a new reading too
	}
	// A deletion may use half of the reserve: revoking a key does not wait for space.
	if _, err := s.DeleteSessions(ctx, []string{"ses_before0"}, testNow); err != nil {
		t.Errorf("delete with the disk under the reserve: %v; want it done", err)
	}
	acknowledged = acknowledged[1:]
	disk.free.Store(s.space.reserve/2 - 1)
	disk.later()
	if _, err := s.DeleteSessions(ctx, []string{"ses_before2"}, testNow); !errors.Is(err, ErrDiskFull) {
		t.Errorf("delete with the disk under half the reserve: %v; want ErrDiskFull", err)
	}
	if _, err := s.SessionByID(ctx, "ses_before2", testNow); err != nil {
		t.Errorf("a refused delete took effect in memory: %v", err)
	}
	disk.free.Store(s.space.reserve - 1)
	disk.later()
	h := hourSession("ses_before1", "u").TokenHash
	at := testNow.Add(time.Minute)
	if _, err := s.TouchByTokenHash(ctx, h, at, true); err != nil {
		t.Errorf("token check with the disk nearly full: %v", err)
	}
	if err := s.Flush(ctx); !errors.Is(err, ErrDiskFull) {
		t.Errorf("last-use write with the disk nearly full: %v; want ErrDiskFull", err)
	}
	if err := s.CheckWrites(ctx); !errors.Is(err, ErrDiskFull) {
		t.Errorf("CheckWrites with the disk nearly full: %v; want ErrDiskFull", err)
	}
	if err := eng.CheckStore(ctx); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("CheckStore with the disk nearly full: %v; want engine.ErrUnavailable", err)
	}
	if n := strings.Count(logs.String(), "the disk is nearly full"); n != 1 {
		t.Errorf("the refusal was logged %d times; want once:\n%s", n, logs)
	}

	disk.free.Store(plenty)
	disk.later()
	if err := insert("ses_after"); err != nil {
		t.Fatalf("insert once space is free again: %v", err)
	}
	if err := eng.CheckStore(ctx); err != nil {
		t.Errorf("CheckStore once space is free again: %v", err)
	}
	if err := s.Flush(ctx); err != nil { // the touch kept while refused
		t.Errorf("last-use write once space is free again: %v", err)
	}
	if n := strings.Count(logs.String(), "disk space is free again"); n != 1 {
		t.Errorf("the recovery was logged %d times; want once:\n%s", n, logs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir, Options{FlushInterval: -1})
	for _, id := range acknowledged {
		if _, err := s.SessionByID(ctx, id, testNow); err != nil {
			t.Errorf("acknowledged session %s after a reopen: %v", id, err)
		}
	}
	if got, _ := s.SessionByID(ctx, "ses_before1", at); got == nil || !got.LastActiveAt.Equal(at) {
		t.Errorf("the touch made while refused, written after: %+v; want last active at %v", got, at)
	}
	for _, id := range []string{"ses_refused0", "ses_before0"} {
		if _, err := s.SessionByID(ctx, id, testNow); !errors.Is(err, engine.ErrSessionNotFound) {
			t.Errorf("refused or deleted session %s after a reopen: %v; want not found", id, err)
		}
	}
}

// TestSpaceGuardReadsSeldom checks that the guard reads the free space once an interval or
// once spaceCheckBytes were written, not once a write; that a write that would cross the
// reserve is refused alone; and that it never refuses when the free space is not known.
func TestSpaceGuardReadsSeldom(t *testing.T) {
	disk := &fakeDisk{now: testNow}
	disk.free.Store(100 << 20)
	g := newSpaceGuard("dir", 10<<20, disk.freeSpace, disk.clock, quietLogger)
	for range 1000 {
		if err := g.allow(1000, false); err != nil { // 1 MB in all, under spaceCheckBytes
			t.Fatal(err)
		}
	}
	if n := disk.reads.Load(); n != 1 {
		t.Errorf("1,000 small writes in one interval read the free space %d times; want 1", n)
	}
	if err := g.allow(100<<10, false); err != nil {
		t.Fatal(err)
	}
	if n := disk.reads.Load(); n != 2 {
		t.Errorf("past spaceCheckBytes the free space was read %d times in all; want 2", n)
	}
	disk.later()
	if err := g.allow(1, false); err != nil || disk.reads.Load() != 3 {
		t.Errorf("after the interval: %v, %d reads; want nil, 3", err, disk.reads.Load())
	}
	if err := g.allow(95<<20, false); !errors.Is(err, ErrDiskFull) {
		t.Errorf("a write that would leave less than the reserve: %v; want ErrDiskFull", err)
	}
	if err := g.status(); err != nil {
		t.Errorf("after refusing one large write the guard refuses all: %v", err)
	}

	unknown := newSpaceGuard("dir", 10<<20, func(string) (uint64, bool, error) { return 0, false, nil }, disk.clock, quietLogger)
	if err := unknown.allow(1<<30, false); err != nil {
		t.Errorf("free space not known: %v; want no refusal", err)
	}
	logs := &syncbuf.Buffer{}
	failing := newSpaceGuard("dir", 10<<20, func(string) (uint64, bool, error) { return 0, false, errors.New("injected") },
		disk.clock, slog.New(slog.NewTextHandler(logs, nil)))
	for range 3 {
		disk.later()
		if err := failing.allow(1, false); err != nil {
			t.Errorf("free space unreadable: %v; want no refusal", err)
		}
	}
	if n := strings.Count(logs.String(), "cannot read the free disk space"); n != 1 {
		t.Errorf("an unreadable free space was logged %d times; want once", n)
	}
}

// TestSpaceReserve checks the reserve of the store's Badger options: the two memtable
// flushes, a level-0 compaction, one below it, and the slack.
func TestSpaceReserve(t *testing.T) {
	got := spaceReserve(badgerOptions("dir", nil, quietLogger))
	if want := uint64((2*8+5*8+10+2*11)<<20 + spaceSlack); got != want {
		t.Errorf("spaceReserve = %d MiB; want %d MiB", got>>20, want>>20)
	}
}

// TestDiskFullOpenAndClose checks the ends of a store's life on a nearly full disk: Open
// refuses, before Badger creates a file, when there is no room for what Badger writes at
// open; Close, with no room for Badger's memtable flush, leaves Badger as a crash would and
// says so, and a copy of the directory then holds every acknowledged change.
func TestDiskFullOpenAndClose(t *testing.T) {
	ctx := context.Background()
	disk := &fakeDisk{now: testNow}
	dir := t.TempDir()
	disk.free.Store(openReserve(badgerOptions(dir, nil, quietLogger)) - 1)
	_, err := Open(Options{Dir: dir, Logger: quietLogger, FlushInterval: -1, freeSpace: disk.freeSpace, now: disk.clock})
	if !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), "free some space") {
		t.Fatalf("Open on a full disk: %v; want ErrDiskFull saying to free space", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("Open refused for want of space left files: %v", entries)
	}

	// Between what Open needs and the reserve, a new store opens (its format mark written)
	// and refuses changes.
	low := t.TempDir()
	disk.free.Store(spaceReserve(badgerOptions(low, nil, quietLogger)) - 1)
	lowStore, err := Open(Options{Dir: low, Logger: quietLogger, FlushInterval: -1, freeSpace: disk.freeSpace, now: disk.clock})
	if err != nil {
		t.Fatalf("Open of a new store with room to open but under the reserve: %v", err)
	}
	if err := lowStore.CreateAccount(ctx, &engine.Account{Username: "u", CreatedAt: testNow}); !errors.Is(err, ErrDiskFull) {
		t.Errorf("a change in a store opened under the reserve: %v; want ErrDiskFull", err)
	}
	disk.free.Store(1 << 40)
	if err := lowStore.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(Options{Dir: dir, Logger: quietLogger, FlushInterval: -1, freeSpace: disk.freeSpace, now: disk.clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(ctx, &engine.Account{Username: "u", CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	sess := hourSession("ses_1", "u")
	if err := s.InsertSession(ctx, &sess, engine.Caps{}, testNow); err != nil {
		t.Fatal(err)
	}
	disk.free.Store(s.closeReserve - 1)
	if err := s.Close(); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Close with no room for Badger's flush: %v; want ErrDiskFull", err)
	}
	crashed := t.TempDir()
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	db := s.db
	t.Cleanup(func() { db.Close() }) // what the process's exit does
	s = openTest(t, crashed, Options{FlushInterval: -1})
	if _, err := s.SessionByID(ctx, "ses_1", testNow); err != nil {
		t.Errorf("an acknowledged session after a Close that left Badger open: %v", err)
	}
}
