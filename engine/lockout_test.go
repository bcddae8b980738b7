package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/memstore"
)

// gatedStore holds every account update back until its gate opens, to show which replies wait
// for the store.
type gatedStore struct {
	engine.Store
	gate chan struct{}
}

func (s *gatedStore) UpdateAccount(ctx context.Context, key string, fn func(*engine.Account) error) (*engine.Account, error) {
	<-s.gate
	return s.Store.UpdateAccount(ctx, key, fn)
}

// TestWrongPasswordRepliesBeforeCounting checks that a wrong password is answered without
// waiting for its failure count to be written, and that the count lands afterwards.
func TestWrongPasswordRepliesBeforeCounting(t *testing.T) {
	ctx := context.Background()
	store := &gatedStore{Store: memstore.New(memstore.Options{}), gate: make(chan struct{})}
	close(store.gate) // open while the fixture logs in and creates bob
	f := newFixtureOn(t, store, nil)
	f.createUser("bob")
	store.gate = make(chan struct{})

	answered := make(chan error, 1)
	go func() {
		_, err := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "bob", Password: "wrong", Client: f.client})
		answered <- err
	}()
	select {
	case err := <-answered:
		if !errors.Is(err, engine.ErrInvalidCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a wrong password waited for its failure count to be written")
	}
	close(store.gate)
	accts, err := f.e.DescribeAccounts(ctx, f.admin, []string{"bob"})
	if err != nil || len(accts) != 1 || accts[0].FailedAttempts != 1 {
		t.Fatalf("describe after one failure: %+v %v", accts, err)
	}
}

// TestLockoutExactUnderConcurrency checks that N concurrent wrong passwords lock an account
// whose limit is N, so the right password is refused at once afterwards.
func TestLockoutExactUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	const limit = 8
	f := newFixture(t, func(c *engine.Config) { c.LoginFailuresPerAddress = -1 })
	if _, err := f.e.CreateAccount(ctx, f.admin, engine.CreateAccountRequest{
		Username: "carol", Password: "carol-pw", LockoutAfter: ptr(limit), LockoutWaitMinutes: ptr(10),
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range limit {
		wg.Go(func() {
			if _, err := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "carol", Password: "guess", Client: f.client}); !errors.Is(err, engine.ErrInvalidCredentials) {
				t.Errorf("wrong password: %v", err)
			}
		})
	}
	wg.Wait()
	if _, err := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "carol", Password: "carol-pw", Client: f.client}); !errors.Is(err, engine.ErrInvalidCredentials) {
		t.Fatalf("right password right after %d failures: %v, want locked", limit, err)
	}
	f.clock.Advance(10 * time.Minute)
	f.login("carol", "carol-pw")
}

// TestCloseWritesPendingFailures checks that Close returns only after failure counts still
// being written are in the store.
func TestCloseWritesPendingFailures(t *testing.T) {
	ctx := context.Background()
	store := memstore.New(memstore.Options{})
	f := newFixtureOn(t, store, nil)
	f.createUser("dave")
	for range 3 {
		f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "dave", Password: "wrong", Client: f.client})
	}
	f.e.Close()
	a, err := store.GetAccount(ctx, engine.UserKey("dave"))
	if err != nil || a.FailedAttempts != 3 {
		t.Fatalf("after Close: %+v %v, want 3 failed attempts", a, err)
	}
}

// TestUnknownUserCostsOneHash checks that New computes no hash (a restart serves without
// waiting for one) and that a login as an unknown user still derives one key, with the
// configured parameters, like a wrong password.
func TestUnknownUserCostsOneHash(t *testing.T) {
	var mu sync.Mutex
	var calls []engine.HashParams
	derive := func(_ context.Context, password, salt []byte, p engine.HashParams, keyLen uint32) ([]byte, error) {
		mu.Lock()
		calls = append(calls, p)
		mu.Unlock()
		return make([]byte, keyLen), nil
	}
	cfg := testConfig(newFakeClock())
	cfg.DeriveKey = derive
	e, err := engine.New(memstore.New(memstore.Options{}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if len(calls) != 0 {
		t.Fatalf("New derived %d keys; want none", len(calls))
	}
	// The derive returns zeros, which is the dummy's key: an unknown user is refused anyway.
	_, err = e.CreateSession(context.Background(), engine.CreateSessionRequest{Username: "nobody", Password: "pw", Client: engine.Client{Address: "127.0.0.1"}})
	if !errors.Is(err, engine.ErrInvalidCredentials) {
		t.Fatalf("unknown user: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || calls[0] != cfg.Hash {
		t.Fatalf("unknown user derived %v; want one key with %v", calls, cfg.Hash)
	}
}

// TestCurrentPasswordIsGuardedAsALogin checks that a wrong currentPassword, given to change
// an account's own password, counts as a failed login: it locks the account as wrong
// passwords at login do, a locked account's right currentPassword is refused too, and the
// address is throttled.
func TestCurrentPasswordIsGuardedAsALogin(t *testing.T) {
	ctx := context.Background()
	change := func(f *fixture, token, current string) error {
		_, err := f.e.AlterAccount(ctx, token, engine.AlterAccountRequest{Username: "carol",
			Password: ptr("new-pw"), CurrentPassword: ptr(current), Client: f.client})
		return err
	}
	t.Run("lockout", func(t *testing.T) {
		f := newFixture(t, func(c *engine.Config) { c.LoginFailuresPerAddress = -1 })
		if _, err := f.e.CreateAccount(ctx, f.admin, engine.CreateAccountRequest{
			Username: "carol", Password: "carol-pw", LockoutAfter: ptr(2), LockoutWaitMinutes: ptr(10),
		}); err != nil {
			t.Fatal(err)
		}
		carol := f.login("carol", "carol-pw").AuthToken
		for range 2 {
			if err := change(f, carol, "guess"); !errors.Is(err, engine.ErrCurrentPasswordWrong) {
				t.Fatalf("wrong current password: %v", err)
			}
		}
		accts, err := f.e.DescribeAccounts(ctx, f.admin, []string{"carol"}) // waits for the counts
		if err != nil || len(accts) != 1 || !f.clock.Now().Before(accts[0].LockedUntil) {
			t.Fatalf("carol after two wrong current passwords: %+v %v, want locked", accts, err)
		}
		if err := change(f, carol, "carol-pw"); !errors.Is(err, engine.ErrCurrentPasswordWrong) {
			t.Errorf("right current password of a locked account: %v, want refused", err)
		}
		if _, err := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "carol", Password: "carol-pw", Client: f.client}); !errors.Is(err, engine.ErrInvalidCredentials) {
			t.Errorf("login after two wrong current passwords: %v, want locked", err)
		}
		f.clock.Advance(10 * time.Minute)
		if err := change(f, carol, "carol-pw"); err != nil {
			t.Errorf("right current password after the lockout: %v", err)
		}
	})
	t.Run("throttle", func(t *testing.T) {
		f := newFixture(t, func(c *engine.Config) { c.LoginFailuresPerAddress = 3 })
		f.createUser("carol")
		carol := f.login("carol", "carol-pw").AuthToken
		for range 3 {
			if err := change(f, carol, "guess"); !errors.Is(err, engine.ErrCurrentPasswordWrong) {
				t.Fatalf("wrong current password: %v", err)
			}
		}
		if err := change(f, carol, "carol-pw"); !errors.Is(err, engine.ErrLoginThrottled) {
			t.Errorf("from an address with 3 failures: %v, want throttled", err)
		}
	})
}

// TestCurrentPasswordSeesALockStillBeingWritten checks that a password change right after a
// wrong currentPassword that locks the account is refused, although that failure's count is
// still being written when the change starts: the check waits for it.
func TestCurrentPasswordSeesALockStillBeingWritten(t *testing.T) {
	ctx := context.Background()
	store := &gatedStore{Store: memstore.New(memstore.Options{}), gate: make(chan struct{})}
	close(store.gate) // open while the fixture sets up
	verified := make(chan struct{}, 1)
	f := newFixtureOn(t, store, func(cfg *engine.Config) {
		cfg.LoginFailuresPerAddress = -1
		cfg.DeriveKey = func(_ context.Context, password, salt []byte, p engine.HashParams, keyLen uint32) ([]byte, error) {
			if string(password) == "carol-pw" {
				select {
				case verified <- struct{}{}:
				default:
				}
			}
			return argon2.IDKey(password, salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen), nil
		}
	})
	if _, err := f.e.CreateAccount(ctx, f.admin, engine.CreateAccountRequest{
		Username: "carol", Password: "carol-pw", LockoutAfter: ptr(1), LockoutWaitMinutes: ptr(10),
	}); err != nil {
		t.Fatal(err)
	}
	carol := f.login("carol", "carol-pw").AuthToken
	<-verified // the login's
	change := func(current string) error {
		_, err := f.e.AlterAccount(ctx, carol, engine.AlterAccountRequest{Username: "carol",
			Password: ptr("new-pw"), CurrentPassword: ptr(current), Client: f.client})
		return err
	}
	store.gate = make(chan struct{}) // failure counts wait
	if err := change("guess"); !errors.Is(err, engine.ErrCurrentPasswordWrong) {
		t.Fatalf("wrong current password: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- change("carol-pw") }()
	// Let the change get as far as it goes before the count lands: to its hash of the right
	// password if it does not wait for the count.
	select {
	case <-verified:
	case <-time.After(200 * time.Millisecond):
	}
	close(store.gate)
	if err := <-done; !errors.Is(err, engine.ErrCurrentPasswordWrong) {
		t.Errorf("right current password while the lock was being written: %v, want refused", err)
	}
}
