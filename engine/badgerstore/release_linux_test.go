package badgerstore

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// tableRSS returns the resident kilobytes of the process's mappings of the tables in dir,
// from /proc/self/smaps.
func tableRSS(t *testing.T, dir string) int {
	t.Helper()
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	total, inTable := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":"):
			// A mapping's first line: "start-end perms offset dev inode [path]".
			_, path := mapsLine([]byte(sc.Text()))
			inTable = filepath.Ext(path) == ".sst" && filepath.Dir(path) == dir
		case inTable && len(fields) == 3 && fields[0] == "Rss:":
			kb, err := strconv.Atoi(fields[1])
			if err != nil {
				t.Fatal(err)
			}
			total += kb
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}

// releaseTables takes the pages of a store's tables out of the process's resident set, and
// the tables read the same afterwards; the store's path has a space, as /proc/self/maps
// shows it.
func TestReleaseTables(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store dir")
	prepare(t, dir, nil, 50_000)
	db, err := badger.Open(badgerOptions(dir, nil, quietLogger).WithReadOnly(true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// contents returns a digest of every key and value.
	contents := func() (int, uint64) {
		n, sum := 0, uint64(0)
		err := db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				n++
				err := it.Item().Value(func(v []byte) error {
					for _, b := range bytes.Join([][]byte{it.Item().Key(), v}, nil) {
						sum = sum*31 + uint64(b)
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return n, sum
	}
	n, sum := contents()
	before := tableRSS(t, dir)
	if before < 1024 {
		t.Fatalf("%d kB of tables resident after reading %d records; the test needs more", before, n)
	}
	tableReleaser(dir)()
	if after := tableRSS(t, dir); after > before/10 {
		t.Errorf("%d kB of tables resident after releaseTables; before: %d kB", after, before)
	}
	if n2, sum2 := contents(); n2 != n || sum2 != sum {
		t.Errorf("after releaseTables the store reads %d records (digest %x); before %d (%x)", n2, sum2, n, sum)
	}
}
