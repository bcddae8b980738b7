package memstore_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/memstore"
	"github.com/sessiond/sessiond/engine/storetest"
)

// benchSession returns the i-th benchmark session (storetest.BenchSession), last used at now.
func benchSession(i int) *engine.Session { return storetest.BenchSession(i, now) }

// populate returns a store holding n live sessions, and their token hashes.
func populate(b *testing.B, n int) (*memstore.Store, []engine.TokenHash) {
	b.Helper()
	s := memstore.New(memstore.Options{})
	return s, storetest.Populate(b, s, n, now)
}

// populated caches the stores of BenchmarkSessionByTokenHash across its runs.
var populated = map[int]struct {
	store  *memstore.Store
	hashes []engine.TokenHash
}{}

// BenchmarkSessionByTokenHash measures the per-request lookup, alone and from every core.
func BenchmarkSessionByTokenHash(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		get := func(b *testing.B) (*memstore.Store, []engine.TokenHash) {
			p, ok := populated[n]
			if !ok {
				p.store, p.hashes = populate(b, n)
				populated[n] = p
			}
			return p.store, p.hashes
		}
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			s, hashes := get(b)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := s.SessionByTokenHash(ctx, hashes[i%n], now); err != nil {
					b.Fatal(err)
				}
				i += 7919 // a prime stride: no cache-friendly order
			}
		})
		b.Run(fmt.Sprintf("sessions=%d/parallel", n), func(b *testing.B) {
			s, hashes := get(b)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := s.SessionByTokenHash(ctx, hashes[i%n], now); err != nil {
						b.Error(err)
						return
					}
					i += 7919
				}
			})
		})
		delete(populated, n)
	}
}

// BenchmarkInsertSession measures InsertSession with all three caps set, into a store that
// already holds 100,000 sessions.
func BenchmarkInsertSession(b *testing.B) {
	s, _ := populate(b, 100_000)
	caps := engine.Caps{MaxSessions: 10_000_000, MaxSessionsPerAddress: 1_000_000, MaxSessionsPerUser: 1_000_000}
	sessions := make([]*engine.Session, 0, 1<<16)
	for i := range cap(sessions) {
		sessions = append(sessions, benchSession(100_000+i))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(sessions) { // keep the store's size steady
			b.StopTimer()
			ids := make([]string, len(sessions))
			for j, sess := range sessions {
				ids[j] = sess.ID
			}
			if _, err := s.DeleteSessions(ctx, ids, now); err != nil {
				b.Fatal(err)
			}
			i = 0
			b.StartTimer()
		}
		if err := s.InsertSession(ctx, sessions[i], caps, now); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkTouch measures Touch of a session among 100,000, each call a later time.
func BenchmarkTouch(b *testing.B) {
	for _, journal := range []bool{false, true} {
		b.Run(fmt.Sprintf("tracked=%v", journal), func(b *testing.B) {
			opts := memstore.Options{}
			if journal {
				opts.Journal = &recorder{}
			}
			s := memstore.New(opts)
			const n = 100_000
			storetest.Populate(b, s, n, now)
			ids := make([]string, n)
			for i := range ids {
				ids[i] = benchSession(i).ID
			}
			b.ReportAllocs()
			at := now
			i := 0
			var drained []memstore.Touched
			for b.Loop() {
				at = at.Add(1000) // a microsecond later each time
				if err := s.Touch(ctx, ids[i%n], at, i%2 == 0); err != nil {
					b.Fatal(err)
				}
				i++
				if journal && i%n == 0 {
					b.StopTimer() // the background writer's work, not Touch's
					drained = s.DrainTouched(drained[:0])
					b.StartTimer()
				}
			}
		})
	}
}

// BenchmarkMemoryPerSession reports the heap held per session with 1,000,000 sessions.
func BenchmarkMemoryPerSession(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s, hashes := populate(b, n)
		hashes = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/session")
		runtime.KeepAlive(s)
		runtime.KeepAlive(hashes)
	}
}

// BenchmarkRestoreSessions measures what a persistent store's load spends in memory: a
// million sessions restored in batches of 1,024 into a store sized for them.
func BenchmarkRestoreSessions(b *testing.B) {
	const n, batch = 1_000_000, 1024
	sessions := make([]engine.Session, n)
	for i := range sessions {
		sessions[i] = *benchSession(i)
	}
	rejected := func(sess *engine.Session, err error) { b.Fatalf("session %s rejected: %v", sess.ID, err) }
	for b.Loop() {
		s := memstore.New(memstore.Options{})
		for _, a := range storetest.BenchAccounts(now) {
			if err := s.RestoreAccount(a); err != nil {
				b.Fatal(err)
			}
		}
		s.Reserve(n)
		for start := 0; start < n; start += batch {
			if err := s.RestoreSessions(sessions[start:min(start+batch, n)], rejected); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/session")
}

// BenchmarkRestoreTouched measures applying last-use times at load, a million sessions in
// lists of 16,384 (a load batch): in the order the sessions were restored, as a snapshot
// written since the last start lists them, and shuffled, as the log lists them.
func BenchmarkRestoreTouched(b *testing.B) {
	const n, batch = 1_000_000, 16 << 10
	s, _ := populate(b, n)
	ordered := make([]memstore.Touched, n)
	for i := range ordered {
		sess := benchSession(i)
		ordered[i] = memstore.Touched{ID: sess.ID, LastAccessedAt: now.Add(time.Second), LastActiveAt: now.Add(time.Second)}
	}
	shuffled := slices.Clone(ordered)
	rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, bc := range []struct {
		name    string
		touched []memstore.Touched
	}{{"ordered", ordered}, {"shuffled", shuffled}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				for start := 0; start < n; start += batch {
					if err := s.RestoreTouched(bc.touched[start:min(start+batch, n)]); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
		})
	}
}
