package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

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
