package badgerstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
)

func openForImport(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, Logger: slog.New(slog.DiscardHandler), FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ImportSessions makes sessions durable and visible; a call with a duplicate or an unknown
// account adds nothing, in memory or on disk.
func TestImportSessions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	now := time.Now().UTC().Truncate(time.Second)
	s := openForImport(t, dir)
	if err := s.CreateAccount(ctx, &engine.Account{Username: "u", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	batch := func(from, n int, user string) []engine.Session {
		out := make([]engine.Session, n)
		for i := range out {
			k := from + i
			out[i] = engine.Session{ID: fmt.Sprintf("ses_imp%06d", k), TokenHash: sha256.Sum256([]byte(fmt.Sprint(k))),
				Username: user, Origin: engine.OriginCreateSession, CreatedAt: now, LastAccessedAt: now, LastActiveAt: now,
				Settings: engine.SessionSettings{IdleConnectionTimeoutSeconds: 3600}}
		}
		return out
	}
	if err := s.ImportSessions(ctx, batch(0, 500, "u")); err != nil {
		t.Fatal(err)
	}
	dup := batch(500, 10, "u")
	dup[9] = batch(3, 1, "u")[0] // an id and token hash already stored
	if err := s.ImportSessions(ctx, dup); err == nil {
		t.Fatal("a duplicate was imported")
	}
	if err := s.ImportSessions(ctx, batch(600, 3, "nobody")); err == nil {
		t.Fatal("sessions of an unknown account were imported")
	}
	check := func(s *Store, when string) {
		t.Helper()
		all, err := s.ListSessions(ctx, nil, now)
		if err != nil || len(all) != 500 {
			t.Fatalf("%s: %d sessions, %v", when, len(all), err)
		}
		if _, err := s.SessionByID(ctx, "ses_imp000003", now); err != nil {
			t.Fatalf("%s: the session the duplicate named is gone: %v", when, err)
		}
	}
	check(s, "before reopening")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := openForImport(t, dir)
	defer reopened.Close()
	check(reopened, "after reopening")
}
