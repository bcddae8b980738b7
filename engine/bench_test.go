package engine_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/memstore"
)

// populate inserts n live sessions of the admin directly into the store and returns their
// tokens: logging in a million times would only measure argon2.
func populate(b *testing.B, f *fixture, n int) []string {
	b.Helper()
	ctx := context.Background()
	now := f.clock.Now()
	tokens := make([]string, n)
	for i := range tokens {
		tok, err := engine.NewToken(rand.Reader, false)
		if err != nil {
			b.Fatal(err)
		}
		p, _ := engine.ParseToken(tok)
		s := &engine.Session{
			ID: fmt.Sprintf("ses_bench%09d", i), TokenHash: p.Hash, Username: "admin", Origin: engine.OriginCreateSession,
			Settings:  engine.SessionSettings{IdleConnectionTimeoutSeconds: 3600, DefaultAPI: "admin", DefaultDebug: "none"},
			CreatedAt: now, LastAccessedAt: now, LastActiveAt: now,
		}
		if err := f.e.Store().InsertSession(ctx, s, engine.Caps{}, now); err != nil {
			b.Fatal(err)
		}
		tokens[i] = tok
	}
	return tokens
}

func benchFixture(b *testing.B) *fixture {
	t := &testing.T{}
	clock := newFakeClock()
	cfg := testConfig(clock)
	e, err := engine.New(memstore.New(memstore.Options{}), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	if _, err := e.Bootstrap(context.Background(), "admin", adminPassword); err != nil {
		b.Fatal(err)
	}
	return &fixture{t: t, e: e, clock: clock, client: engine.Client{Address: "127.0.0.1"}}
}

// BenchmarkValidate measures checking a token (the per-request hot path) at two store sizes.
func BenchmarkValidate(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			f := benchFixture(b)
			tokens := populate(b, f, n)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := f.e.Validate(ctx, tokens[i%len(tokens)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTickle measures a TickleTime keep-alive.
func BenchmarkTickle(b *testing.B) {
	f := benchFixture(b)
	tokens := populate(b, f, 1000)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if ok, err := f.e.SetUserPreference(ctx, tokens[i%len(tokens)], engine.TickleLabel, "now"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkCreateSession measures a login with the test hashing parameters, so the figure is
// the server's own cost around argon2.
func BenchmarkCreateSession(b *testing.B) {
	f := benchFixture(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "admin", Password: adminPassword}); err != nil {
			b.Fatal(err)
		}
		f.clock.Advance(2 * time.Hour) // let sessions expire so caps never bind
	}
}

// BenchmarkLoginProductionHash measures one argon2id verification with the default parameters, the
// ceiling on logins per core.
func BenchmarkLoginProductionHash(b *testing.B) {
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.Hash = engine.DefaultHashParams
	e, err := engine.New(memstore.New(memstore.Options{}), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	if _, err := e.Bootstrap(ctx, "admin", adminPassword); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.CreateSession(ctx, engine.CreateSessionRequest{Username: "admin", Password: adminPassword}); err != nil {
			b.Fatal(err)
		}
		clock.Advance(2 * time.Hour)
	}
}

// BenchmarkParseToken measures the shape, checksum and hash check of a token.
func BenchmarkParseToken(b *testing.B) {
	token, err := engine.NewToken(rand.Reader, false)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := engine.ParseToken(token); err != nil {
			b.Fatal(err)
		}
	}
}
