package engine_test

// BenchmarkLoginFailureTiming measures a failed createSession for an unknown user, a wrong
// password and a locked account with production hashing, on the in-memory store and on the
// product's Badger store: the three must cost the same, so timing cannot tell an attacker
// which usernames exist or are locked. It reports the mean of each and their spread in
// percent of the fastest.

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/badgerstore"
	"github.com/sessiond/sessiond/engine/memstore"
)

func BenchmarkLoginFailureTiming(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) engine.Store
	}{
		{"memstore", func(*testing.B) engine.Store { return memstore.New(memstore.Options{}) }},
		{"badgerstore", func(b *testing.B) engine.Store {
			s, err := badgerstore.Open(badgerstore.Options{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
	}
	// With production hashing the figures are what an attacker sees; with the tests' cheap
	// hashing what remains is everything around the hash, where a difference would show.
	for _, hash := range []struct {
		name   string
		params *engine.HashParams
	}{{"argon2-production", &engine.DefaultHashParams}, {"argon2-cheap", nil}} {
		for _, st := range stores {
			b.Run(hash.name+"/"+st.name, func(b *testing.B) { benchmarkLoginFailures(b, st.open(b), hash.params) })
		}
	}
}

func benchmarkLoginFailures(b *testing.B, store engine.Store, hash *engine.HashParams) {
	ctx := context.Background()
	clock := newFakeClock()
	cfg := testConfig(clock)
	if hash != nil {
		cfg.Hash = *hash
	}
	cfg.LoginFailuresPerAddress = -1 // throttling would answer before hashing
	e, err := engine.New(store, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	if _, err := e.Bootstrap(ctx, "admin", adminPassword); err != nil {
		b.Fatal(err)
	}
	client := engine.Client{Address: "127.0.0.1"}
	admin, err := e.CreateSession(ctx, engine.CreateSessionRequest{Username: "admin", Password: adminPassword, Client: client})
	if err != nil {
		b.Fatal(err)
	}
	// victim never locks, so every iteration is a plain wrong password; locked locks at its
	// first failure for a year.
	for _, req := range []engine.CreateAccountRequest{
		{Username: "victim", Password: "victim-password", LockoutAfter: ptr(0)},
		{Username: "locked", Password: "locked-password", LockoutAfter: ptr(1), LockoutWaitMinutes: ptr(525600)},
	} {
		if _, err := e.CreateAccount(ctx, admin.AuthToken, req); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := e.CreateSession(ctx, engine.CreateSessionRequest{Username: "locked", Password: "guess", Client: client}); !errors.Is(err, engine.ErrInvalidCredentials) {
		b.Fatalf("locking: %v", err)
	}

	// The three cases run interleaved in one loop, so a change in machine load between them
	// cannot pass for a difference between them.
	cases := []struct {
		name string
		req  engine.CreateSessionRequest
	}{
		{"unknown-user", engine.CreateSessionRequest{Username: "nobody", Password: "victim-password", Client: client}},
		{"wrong-password", engine.CreateSessionRequest{Username: "victim", Password: "not-the-password", Client: client}},
		// The right password: a locked account must not answer faster, or differently.
		{"locked-account", engine.CreateSessionRequest{Username: "locked", Password: "locked-password", Client: client}},
	}
	samples := make([][]time.Duration, len(cases))
	for b.Loop() {
		for i, c := range cases {
			start := time.Now()
			if _, err := e.CreateSession(ctx, c.req); !errors.Is(err, engine.ErrInvalidCredentials) {
				b.Fatalf("%s: got %v, want ErrInvalidCredentials", c.name, err)
			}
			samples[i] = append(samples[i], time.Since(start))
		}
	}
	// Medians: one slow sample (another process taking the CPU) must not decide.
	medians := make([]time.Duration, len(cases))
	for i, c := range cases {
		slices.Sort(samples[i])
		medians[i] = samples[i][len(samples[i])/2]
		b.ReportMetric(float64(medians[i].Nanoseconds())/1e3, "µs-median/"+c.name)
	}
	lo, hi := slices.Min(medians), slices.Max(medians)
	b.ReportMetric(100*float64(hi-lo)/float64(lo), "%spread")
}
