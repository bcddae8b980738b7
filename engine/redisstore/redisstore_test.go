package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/redisstore/redistest"
	"github.com/sessiond/sessiond/engine/storetest"
)

// quietLogger drops everything; tests that look at logs make their own.
var quietLogger = slog.New(slog.DiscardHandler)

func init() { RouteClientLogs(quietLogger) }

// prefixes hands out a fresh key prefix per store, so that tests sharing one redis-server
// never see each other's keys.
var prefixes atomic.Int64

func freshPrefix(name string) string { return fmt.Sprintf("%s%d:", name, prefixes.Add(1)) }

// openStore opens a store on srv with prefix, closed when the test ends.
func openStore(t testing.TB, srv *redistest.Server, prefix string, opts ...func(*Options)) *Store {
	t.Helper()
	o := Options{KeyPrefix: prefix, Logger: quietLogger}
	if srv != nil {
		o.URL = srv.URL(0)
	}
	for _, f := range opts {
		f(&o)
	}
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the store conformance suite against Redis; Reopen is a new client on
// the same Redis and key prefix.
func TestRedisConformance(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var mu sync.Mutex
	prefixOf := map[engine.Store]string{}
	open := func(t *testing.T, prefix string) engine.Store {
		s := openStore(t, srv, prefix)
		mu.Lock()
		prefixOf[s] = prefix
		mu.Unlock()
		return s
	}
	storetest.Run(t, storetest.Factory{
		Open: func(t *testing.T) engine.Store { return open(t, freshPrefix("conformance")) },
		Reopen: func(t *testing.T, old engine.Store) engine.Store {
			mu.Lock()
			prefix := prefixOf[old]
			mu.Unlock()
			return open(t, prefix)
		},
	})
}
