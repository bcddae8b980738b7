package memstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
)

// Sessions restored after Reserve, sharing profiles or not, are all found with their own
// settings; Reserve on a store that has held sessions changes nothing.
func TestReserveAndSharedProfiles(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := New(Options{})
	if err := s.RestoreAccount(&engine.Account{Username: "u", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	s.Reserve(5000)
	sessions := make([]engine.Session, 3000)
	for i := range sessions {
		sessions[i] = engine.Session{
			ID: fmt.Sprintf("ses_%d", i), TokenHash: sha256.Sum256([]byte{byte(i), byte(i >> 8)}), Username: "u",
			Origin: engine.OriginCreateSession, CreatedAt: now, LastAccessedAt: now, LastActiveAt: now,
			// Runs of equal profiles, and a different one now and then.
			Settings: engine.SessionSettings{IdleConnectionTimeoutSeconds: 3600, Description: fmt.Sprint(i / 100 % 3)},
		}
	}
	if err := s.RestoreSessions(sessions, func(sess *engine.Session, err error) { t.Fatalf("%s: %v", sess.ID, err) }); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for i := range sessions {
			got, err := s.SessionByTokenHash(ctx, sessions[i].TokenHash, now)
			if err != nil || got.ID != sessions[i].ID || got.Settings.Description != sessions[i].Settings.Description {
				t.Fatalf("%s: session %d: %+v, %v", when, i, got, err)
			}
		}
	}
	check("after restore")
	s.Reserve(1 << 20) // not empty: nothing happens
	check("after a late Reserve")
	if _, err := s.DeleteSessions(ctx, []string{"ses_0", "ses_1"}, now); err != nil {
		t.Fatal(err)
	}
	emptied := New(Options{})
	_ = emptied.RestoreAccount(&engine.Account{Username: "u", CreatedAt: now})
	_ = emptied.RestoreSessions(sessions[:1], func(*engine.Session, error) {})
	_, _ = emptied.DeleteSessions(ctx, []string{sessions[0].ID}, now)
	emptied.Reserve(100) // held a session once: nothing happens
	if err := emptied.RestoreSessions(sessions[1:3], func(sess *engine.Session, err error) { t.Fatalf("%s: %v", sess.ID, err) }); err != nil {
		t.Fatal(err)
	}
	if got, err := emptied.SessionByID(ctx, sessions[2].ID, now); err != nil || got.ID != sessions[2].ID {
		t.Fatalf("after a Reserve of an emptied store: %+v, %v", got, err)
	}
}
