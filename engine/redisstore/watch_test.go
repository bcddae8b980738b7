package redisstore

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/redisstore/redistest"
	"github.com/sessiond/sessiond/internal/syncbuf"
)

// watchedStore opens a store on a Redis of its own whose log the test reads, its watcher
// looking every tick (a negative tick: none, the test makes the looks itself) and reading
// the settings and the marker every tick too.
func watchedStore(t *testing.T, tick time.Duration) (*Store, *redistest.Server, *syncbuf.Buffer) {
	t.Helper()
	srv := redistest.Start(t)
	logs := &syncbuf.Buffer{}
	s := openStore(t, srv, freshPrefix("watch"), func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		o.watchTick, o.watchEvery = tick, tick
	})
	return s, srv, logs
}

// A node logs, once each, that the store's data has gone from Redis and that Redis's
// persistence settings changed, as its watcher finds them.
func TestRedisWatchLogsLossAndSettings(t *testing.T) {
	s, _, logs := watchedStore(t, -1)
	lines := func(text string) int { t.Helper(); return strings.Count(logs.String(), text) }

	s.watchMarker(ctx)
	if n := lines("has gone from Redis"); n != 0 {
		t.Fatalf("%d losses logged with the data there", n)
	}
	if err := s.rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	s.watchMarker(ctx)
	s.watchMarker(ctx)
	if n := lines(`level=ERROR msg="redisstore: the store's data has gone from Redis`); n != 1 {
		t.Errorf("after a flush of Redis, two looks logged %d errors about it; want one:\n%s", n, logs.String())
	}

	for _, step := range []struct{ fsync, want string }{{"everysec", "weaker than sessiond's promise"}, {"always", "syncs every write"}} {
		before := lines(step.want)
		if err := s.rdb.ConfigSet(ctx, "appendfsync", step.fsync).Err(); err != nil {
			t.Fatal(err)
		}
		s.watchPersistence(ctx)
		s.watchPersistence(ctx)
		if n := lines(step.want) - before; n != 1 {
			t.Errorf("appendfsync %s: two looks logged %q %d times; want once", step.fsync, step.want, n)
		}
	}
}

// A node logs one warning when its calls find Redis not answering, however many fail, and
// one line when its watcher finds Redis answering again.
func TestRedisWatchLogsOutage(t *testing.T) {
	s, srv, logs := watchedStore(t, 10*time.Millisecond)
	srv.Kill()
	for range 3 {
		if _, err := s.GetAccount(ctx, "someone"); !errors.Is(err, engine.ErrUnavailable) {
			t.Fatalf("GetAccount with Redis down = %v; want ErrUnavailable", err)
		}
	}
	if n := strings.Count(logs.String(), "Redis does not answer"); n != 1 {
		t.Errorf("three failed calls logged %d warnings; want one:\n%s", n, logs.String())
	}
	srv.Restart()
	waitForLog(t, logs, "Redis answers again")
	if _, err := s.GetAccount(ctx, "someone"); !errors.Is(err, engine.ErrAccountNotFound) {
		t.Errorf("GetAccount with Redis back = %v; want ErrAccountNotFound", err)
	}
}

// A node logs one warning, not one a call, while Redis refuses calls, and none that it does
// not answer: it does.
func TestRedisWatchLogsRefusals(t *testing.T) {
	s, _, logs := watchedStore(t, 10*time.Millisecond)
	if err := s.rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	defer s.rdb.ConfigSet(ctx, "maxmemory", "0")
	for i := range 5 {
		if err := s.CreateAccount(ctx, newAccount(fmt.Sprintf("u%d", i))); !errors.Is(err, engine.ErrUnavailable) {
			t.Fatalf("CreateAccount over maxmemory = %v; want ErrUnavailable (OOM)", err)
		}
		time.Sleep(20 * time.Millisecond) // the watcher looks meanwhile
	}
	if n := strings.Count(logs.String(), "Redis refuses calls"); n != 1 {
		t.Errorf("five refused calls logged %d warnings; want one:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "does not answer") || strings.Contains(logs.String(), "answers again") {
		t.Errorf("refusals logged as an outage:\n%s", logs.String())
	}
}

// waitForLog waits until logs hold text, for a watcher's look; it fails the test after 10 s.
func waitForLog(t *testing.T, logs *syncbuf.Buffer, text string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), text); {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log after 10 s:\n%s", text, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The watcher itself, as it runs, reads the persistence settings and the marker again: a
// change of the settings and a flush of Redis reach the log without a call.
func TestRedisWatcherLooksAgain(t *testing.T) {
	s, _, logs := watchedStore(t, 10*time.Millisecond)
	if err := s.rdb.ConfigSet(ctx, "appendfsync", "everysec").Err(); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, logs, "weaker than sessiond's promise")
	if err := s.rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, logs, "the store's data has gone from Redis")
}
