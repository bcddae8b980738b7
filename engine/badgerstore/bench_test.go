package badgerstore

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/ristretto/v2/z"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/memstore"
	"github.com/sessiond/sessiond/engine/storetest"
)

var benchKey = bytes.Repeat([]byte{0x5e}, 32)

// benchSession returns the i-th benchmark session (storetest.BenchSession).
func benchSession(i int) *engine.Session { return storetest.BenchSession(i, testNow) }

// prepare creates a store in dir with the benchmark accounts, n sessions and a snapshot of
// their last-use times, and returns the sessions' token hashes. It writes them with Badger's StreamWriter, straight into the
// bottom level, so the store looks like one that has been compacted (InsertSession's fsync
// per session would take minutes, and a plain bulk write would leave compaction running
// during the benchmark).
func prepare(b testing.TB, dir string, key []byte, n int) []engine.TokenHash {
	b.Helper()
	db, err := badger.Open(badgerOptions(dir, key, quietLogger))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	sw := db.NewStreamWriter()
	if err := sw.Prepare(); err != nil {
		b.Fatal(err)
	}
	buf := z.NewBuffer(32<<20, "badgerstore.prepare")
	defer buf.Release()
	entries := 0
	add := func(k, v []byte) { // in key order
		badger.KVToBuffer(&pb.KV{Key: k, Value: v, Version: 1}, buf)
		if entries++; entries%100_000 == 0 {
			if err := sw.Write(buf); err != nil {
				b.Fatal(err)
			}
			buf.Reset()
		}
	}
	accounts := storetest.BenchAccounts(testNow)
	slices.SortFunc(accounts, func(x, y *engine.Account) int { return strings.Compare(x.Key(), y.Key()) })
	for _, a := range accounts {
		add(accountKey(a.Key()), encodeAccount(a))
	}
	add([]byte(keyFormat), []byte(formatVersion))
	hashes := make([]engine.TokenHash, n)
	for i := range n { // ids are in key order
		sess := benchSession(i)
		hashes[i] = sess.TokenHash
		add(sessionKey(sess.ID), encodeSession(sess))
	}
	if err := sw.Write(buf); err != nil {
		b.Fatal(err)
	}
	if err := sw.Flush(); err != nil {
		b.Fatal(err)
	}
	// A snapshot of every session's last-use times, as a store in use has.
	files, err := newLastUseFiles(dir, key)
	if err != nil {
		b.Fatal(err)
	}
	files.generation = 1
	page := make([]memstore.Touched, 0, 64<<10)
	for i := range n {
		used := testNow.Add(time.Duration(i) * time.Millisecond)
		page = append(page, memstore.Touched{ID: benchSession(i).ID, LastAccessedAt: used, LastActiveAt: used})
		if len(page) == cap(page) || i == n-1 {
			if err := files.write(page); err != nil {
				b.Fatal(err)
			}
			page = page[:0]
		}
	}
	if err := files.close(); err != nil {
		b.Fatal(err)
	}
	return hashes
}

// BenchmarkOpen measures a restart: opening a store of 1,000,000 sessions and loading it
// into memory. It reports the heap the store then holds and the CPU time the open used.
func BenchmarkOpen(b *testing.B) {
	for _, encrypted := range []bool{false, true} {
		b.Run(fmt.Sprintf("sessions=1000000/encrypted=%v", encrypted), func(b *testing.B) {
			var key []byte
			if encrypted {
				key = benchKey
			}
			dir := b.TempDir()
			prepare(b, dir, key, 1_000_000)
			var heap float64
			var cpu time.Duration
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				cpuBefore := cpuTime()
				s, err := Open(Options{Dir: dir, EncryptionKey: key, Logger: quietLogger, FlushInterval: -1})
				if err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - cpuBefore
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&after)
				heap = float64(after.HeapAlloc - before.HeapAlloc)
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(heap/1e6, "heap-MB")
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op") // all cores together
		})
	}
}

// BenchmarkSessionByTokenHash measures the per-request lookup, served from memory.
func BenchmarkSessionByTokenHash(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		var (
			s      *Store
			hashes []engine.TokenHash
		)
		dir := b.TempDir() // the parent's: it outlives the sub-benchmarks
		open := func(b *testing.B) {
			if s != nil {
				return
			}
			hashes = prepare(b, dir, nil, n)
			var err error
			if s, err = Open(Options{Dir: dir, Logger: quietLogger}); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			open(b)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := s.SessionByTokenHash(context.Background(), hashes[i%n], testNow); err != nil {
					b.Fatal(err)
				}
				i += 7919
			}
		})
		b.Run(fmt.Sprintf("sessions=%d/parallel", n), func(b *testing.B) {
			open(b)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := s.SessionByTokenHash(context.Background(), hashes[i%n], testNow); err != nil {
						b.Error(err)
						return
					}
					i += 7919
				}
			})
		})
		if s != nil {
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkInsertSession measures a durable insert (written and fsynced before it returns),
// one at a time and from many goroutines sharing fsyncs.
func BenchmarkInsertSession(b *testing.B) {
	caps := engine.Caps{MaxSessions: 10_000_000, MaxSessionsPerAddress: 1_000_000, MaxSessionsPerUser: 1_000_000}
	for _, parallel := range []int{1, 16} {
		b.Run(fmt.Sprintf("goroutines=%d", parallel), func(b *testing.B) {
			dir := b.TempDir()
			prepare(b, dir, nil, 0)
			s, err := Open(Options{Dir: dir, Logger: quietLogger})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(parallel)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.InsertSession(context.Background(), benchSession(int(next.Add(1))), caps, testNow); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkTouch measures Touch (memory only), and Flush writing what it touched, per
// touched session.
func BenchmarkTouch(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	prepare(b, dir, nil, n)
	s, err := Open(Options{Dir: dir, Logger: quietLogger, FlushInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = benchSession(i).ID
	}
	at := testNow
	b.Run("touch", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			at = at.Add(time.Microsecond)
			if err := s.Touch(ctx, ids[i%n], at, i%2 == 0); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.StopTimer()
		if err := s.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("flush-per-session", func(b *testing.B) {
		const batch = 10_000
		b.ReportAllocs() // the writer reuses its lists from flush to flush
		i := 0
		for b.Loop() {
			at = at.Add(time.Microsecond)
			if err := s.Touch(ctx, ids[i%n], at, true); err != nil {
				b.Fatal(err)
			}
			i++
			if i%batch == 0 {
				if err := s.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkDecodeSession decodes session records as load does (one decoder that interns
// repeated strings), sessions like the other benchmarks': varied users and addresses, the
// same settings.
func BenchmarkDecodeSession(b *testing.B) {
	now := time.Now()
	records := make([][]byte, 1024)
	for i := range records {
		records[i] = encodeSession(storetest.BenchSession(i, now))
	}
	d := decoder{intern: make(map[string]string)}
	var s engine.Session
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d.buf, d.err = records[i%len(records)], nil
		if err := decodeSession(&d, &s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeLastUses decodes a full chunk of last-use times, as load reads them from
// the log's files.
func BenchmarkDecodeLastUses(b *testing.B) {
	now := time.Now()
	touched := make([]memstore.Touched, maxChunkEntries)
	for i := range touched {
		s := storetest.BenchSession(i, now)
		at := now.Add(time.Duration(i) * time.Millisecond)
		touched[i] = memstore.Touched{ID: s.ID, LastAccessedAt: at, LastActiveAt: at}
	}
	chunk := appendLastUses(nil, touched)
	var dst []memstore.Touched
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = decodeLastUses(chunk, dst[:0]); err != nil || len(dst) != len(touched) {
			b.Fatal(err, len(dst))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(touched)), "ns/entry")
}
