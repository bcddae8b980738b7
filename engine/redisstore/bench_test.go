package redisstore

import (
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/redisstore/redistest"
)

// BenchmarkStore measures the store's calls on a local redis-server with appendfsync always.
func BenchmarkStore(b *testing.B) {
	srv := redistest.Start(b)
	s := openStore(b, srv, freshPrefix("bench"))
	if err := s.CreateAccount(ctx, newAccount("u")); err != nil {
		b.Fatal(err)
	}
	pool := make([]*engine.Session, 1000)
	for i := range pool {
		pool[i] = newSession("u")
		pool[i].Permanent = true
		if err := s.InsertSession(ctx, pool[i], engine.Caps{}, testNow); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("SessionByTokenHash", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := s.SessionByTokenHash(ctx, pool[i%len(pool)].TokenHash, testNow); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("SessionByTokenHash-parallel", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := s.SessionByTokenHash(ctx, pool[i%len(pool)].TokenHash, testNow); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	})
	b.Run("Touch", func(b *testing.B) {
		i := 0
		for b.Loop() {
			s.Touch(ctx, pool[i%len(pool)].ID, testNow.Add(time.Duration(i)), true)
			i++
		}
	})
	b.Run("InsertSession", func(b *testing.B) {
		for b.Loop() {
			if err := s.InsertSession(ctx, newSession("u"), engine.Caps{MaxSessions: 1 << 30}, testNow); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("InsertSession-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.InsertSession(ctx, newSession("u"), engine.Caps{MaxSessions: 1 << 30}, testNow); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
