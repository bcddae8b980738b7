package storetest

import (
	"testing"

	"github.com/sessiond/sessiond/engine"
)

var lifecycleTests = []test{
	{"Closed", false, testClosed},
}

// Every method of a closed store fails.
func testClosed(t *testing.T, h *harness) {
	h.createAccounts(newAccount("u"))
	s := newSession("u")
	h.insert(s)
	if err := h.s.Flush(h.ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	store := h.s
	h.s = nil // closed here, not at cleanup
	if err := store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	type op struct {
		op  string
		run func() error
	}
	ops := []op{
		{"CreateAccount", func() error { return store.CreateAccount(h.ctx, newAccount("v")) }},
		{"GetAccount", func() error { _, err := store.GetAccount(h.ctx, "u"); return err }},
		{"UpdateAccount", func() error {
			_, err := store.UpdateAccount(h.ctx, "u", func(*engine.Account) error { return nil })
			return err
		}},
		{"DeleteAccounts", func() error { _, err := store.DeleteAccounts(h.ctx, []string{"u"}); return err }},
		{"ListAccounts", func() error { _, err := store.ListAccounts(h.ctx, nil); return err }},
		{"InsertSession", func() error { return store.InsertSession(h.ctx, newSession("u"), engine.Caps{}, now) }},
		{"SessionByTokenHash", func() error { _, err := store.SessionByTokenHash(h.ctx, s.TokenHash, now); return err }},
		{"SessionByID", func() error { _, err := store.SessionByID(h.ctx, s.ID, now); return err }},
		{"UpdateSession", func() error {
			_, err := store.UpdateSession(h.ctx, s.ID, now, func(*engine.Session) error { return nil })
			return err
		}},
		{"DeleteSessions", func() error { _, err := store.DeleteSessions(h.ctx, []string{s.ID}, now); return err }},
		{"ListSessions", func() error { _, err := store.ListSessions(h.ctx, nil, now); return err }},
		{"Touch", func() error { return store.Touch(h.ctx, s.ID, now, true) }},
		{"PurgeExpired", func() error { _, err := store.PurgeExpired(h.ctx, now); return err }},
		{"SetPreference", func() error { return store.SetPreference(h.ctx, "u", "l", "v", 10) }},
		{"GetPreference", func() error { _, _, err := store.GetPreference(h.ctx, "u", "l"); return err }},
		{"Flush", func() error { return store.Flush(h.ctx) }},
	}
	if tt, ok := store.(engine.TokenToucher); ok {
		ops = append(ops, op{"TouchByTokenHash", func() error {
			_, err := tt.TouchByTokenHash(h.ctx, s.TokenHash, now, true)
			return err
		}}, op{"TouchToken", func() error { return tt.TouchToken(h.ctx, s.TokenHash, now, true) }})
	}
	for _, tc := range ops {
		if err := tc.run(); err == nil {
			t.Errorf("%s on a closed store succeeded; want an error", tc.op)
		}
	}
}
