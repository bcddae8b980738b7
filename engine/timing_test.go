package engine_test

// BenchmarkLoginFailureTiming measures a failed createSession for an unknown user, a wrong
// password and a locked account with production hashing, on the in-memory store and on the
// product's Badger store: the three must cost the same, so timing cannot tell an attacker
// which usernames exist or are locked.

import (
	"context"
	"errors"
	"log/slog"
	"testing"

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
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) { benchmarkLoginFailures(b, st.open(b)) })
	}
}

func benchmarkLoginFailures(b *testing.B, store engine.Store) {
	ctx := context.Background()
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.Hash = engine.DefaultHashParams
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

	for _, bc := range []struct {
		name               string
		username, password string
	}{
		{"unknownUser", "nobody", "victim-password"},
		{"wrongPassword", "victim", "not-the-password"},
		// The right password: a locked account must not answer faster, or differently.
		{"lockedAccount", "locked", "locked-password"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := engine.CreateSessionRequest{Username: bc.username, Password: bc.password, Client: client}
			for b.Loop() {
				if _, err := e.CreateSession(ctx, req); !errors.Is(err, engine.ErrInvalidCredentials) {
					b.Fatalf("got %v, want ErrInvalidCredentials", err)
				}
			}
		})
	}
}
