package badgerstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/engine"
)

// TestDamagedTableRefused checks that a byte flipped in a table of a store on disk stops
// Open with an error naming the file and saying to restore a backup, instead of serving
// records with garbled strings; encrypted too.
func TestDamagedTableRefused(t *testing.T) {
	for _, key := range [][]byte{nil, benchKey} {
		t.Run(fmt.Sprintf("encrypted=%v", key != nil), func(t *testing.T) { testDamagedTableRefused(t, key) })
	}
}

func testDamagedTableRefused(t *testing.T, key []byte) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, Options{FlushInterval: -1, EncryptionKey: key})
	if err := s.CreateAccount(ctx, &engine.Account{Username: "u", CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		sess := hourSession(fmt.Sprintf("ses_%03d", i), "u")
		sess.Settings.DefaultRetentionPolicy = "autoPurge"
		if err := s.InsertSession(ctx, &sess, engine.Caps{}, testNow); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil { // Close flushes the memtable into a table
		t.Fatal(err)
	}
	tables, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil || len(tables) == 0 {
		t.Fatalf("tables: %v %v", tables, err)
	}
	table := tables[0]
	data, err := os.ReadFile(table)
	if err != nil {
		t.Fatal(err)
	}
	at := 100 // in the first block, with encryption too
	if key == nil {
		table = fileContaining(t, dir, ".sst", []byte("autoPurge"))
		if data, err = os.ReadFile(table); err != nil {
			t.Fatal(err)
		}
		at = strings.Index(string(data), "autoPurge") + 4 // "autoPurge" would read "autourge"
	}
	data[at] ^= 0x40
	if err := os.WriteFile(table, data, 0o644); err != nil {
		t.Fatal(err)
	}

	got, err := Open(Options{Dir: dir, Logger: quietLogger, FlushInterval: -1, EncryptionKey: key})
	if err == nil {
		defer got.Close()
		sess, _ := got.SessionByID(ctx, "ses_000", testNow)
		t.Fatalf("Open of a store with a damaged table succeeded; a session reads %+v", sess)
	}
	t.Logf("Open: %v", err)
	for _, want := range []string{filepath.Base(table), "damaged", "backup"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open of a damaged store: %v; want it to say %q", err, want)
		}
	}
}
