package memstore_test

import (
	"crypto/rand"
	"fmt"
	"runtime"
	"testing"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/memstore"
)

// Benchmarks use sessions shaped like the engine's: a UUID-sized id, a random token hash,
// the default settings, spread over 1,000 accounts and 1,000 client addresses.
const (
	benchUsers     = 1000
	benchAddresses = 1000
)

// benchSession returns the i-th benchmark session, last used at now.
func benchSession(i int) *engine.Session {
	s := &engine.Session{
		ID:             fmt.Sprintf("%08x-%04x-4000-8000-%012x", i, i&0xffff, i),
		Username:       fmt.Sprintf("user%d", i%benchUsers),
		Origin:         engine.OriginCreateSession,
		CreatedAt:      now,
		LastAccessedAt: now,
		LastActiveAt:   now,
		ClientAddress:  fmt.Sprintf("10.0.%d.%d", (i%benchAddresses)/256, (i%benchAddresses)%256),
		Settings: engine.SessionSettings{
			DefaultAPI:                   "db",
			DefaultDebug:                 "max",
			DefaultDatabaseName:          "ctreeSQL",
			DefaultOwnerName:             "admin",
			DefaultBinaryFormat:          "hex",
			DefaultResponseOptions:       engine.ResponseOptions{BinaryFormat: "hex", DataFormat: "objects", NumberFormat: "number"},
			DefaultRetentionPolicy:       "autoPurge",
			DefaultRetentionUnit:         "week",
			DefaultRetentionPeriod:       4,
			IdleConnectionTimeoutSeconds: 1800,
			IdleCursorTimeoutSeconds:     600,
		},
	}
	_, _ = rand.Read(s.TokenHash[:])
	return s
}

// populate returns a store holding n live sessions, and their token hashes.
func populate(b *testing.B, n int) (*memstore.Store, []engine.TokenHash) {
	b.Helper()
	s := memstore.New(memstore.Options{})
	for u := range benchUsers {
		if err := s.CreateAccount(ctx, &engine.Account{Username: fmt.Sprintf("user%d", u)}); err != nil {
			b.Fatal(err)
		}
	}
	hashes := make([]engine.TokenHash, n)
	for i := range n {
		sess := benchSession(i)
		hashes[i] = sess.TokenHash
		if err := s.InsertSession(ctx, sess, engine.Caps{}, now); err != nil {
			b.Fatal(err)
		}
	}
	return s, hashes
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
			for u := range benchUsers {
				if err := s.CreateAccount(ctx, &engine.Account{Username: fmt.Sprintf("user%d", u)}); err != nil {
					b.Fatal(err)
				}
			}
			const n = 100_000
			ids := make([]string, n)
			for i := range n {
				sess := benchSession(i)
				ids[i] = sess.ID
				if err := s.InsertSession(ctx, sess, engine.Caps{}, now); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			at := now
			i := 0
			for b.Loop() {
				at = at.Add(1000) // a microsecond later each time
				if err := s.Touch(ctx, ids[i%n], at, i%2 == 0); err != nil {
					b.Fatal(err)
				}
				i++
				if journal && i%n == 0 {
					b.StopTimer() // the background writer's work, not Touch's
					s.DrainTouched()
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
