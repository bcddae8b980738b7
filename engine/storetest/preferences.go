package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/sessiond/sessiond/engine"
)

var preferenceTests = []test{
	{"PreferenceSetGet", false, testPreferenceSetGet},
	{"PreferenceLimit", false, testPreferenceLimit},
}

// Preferences are kept per account and label, and setting one again overwrites it.
func testPreferenceSetGet(t *testing.T, h *harness) {
	h.createAccounts(newAccount("Ann"), newAccount("ben"))
	for _, step := range []struct{ user, label, value string }{
		{"ann", "theme", "dark"},
		{"ann", "lang", "en"},
		{"ben", "theme", "light"},
		{"ann", "theme", "solarized"}, // overwrite
		{"ann", "empty", ""},
		{"ann", "Theme", "case matters in labels"},
	} {
		if err := h.s.SetPreference(h.ctx, step.user, step.label, step.value, 10); err != nil {
			t.Fatalf("SetPreference(%q, %q): %v", step.user, step.label, err)
		}
	}
	for _, want := range []struct {
		user, label, value string
		ok                 bool
	}{
		{"ann", "theme", "solarized", true},
		{"ann", "lang", "en", true},
		{"ann", "empty", "", true},
		{"ann", "Theme", "case matters in labels", true},
		{"ben", "theme", "light", true},
		{"ben", "lang", "", false},
		{"ann", "unset", "", false},
		{"nobody", "theme", "", false},
	} {
		h.wantPreference(want.user, want.label, want.value, want.ok)
	}
}

// A new label beyond the per-user limit fails with ErrTooManyPreferences.
func testPreferenceLimit(t *testing.T, h *harness) {
	const max = 3
	h.createAccounts(newAccount("full"), newAccount("other"))
	for i := range max {
		if err := h.s.SetPreference(h.ctx, "full", fmt.Sprintf("label%d", i), "v", max); err != nil {
			t.Fatalf("SetPreference %d: %v", i, err)
		}
	}
	if err := h.s.SetPreference(h.ctx, "full", "one-too-many", "v", max); !errors.Is(err, engine.ErrTooManyPreferences) {
		t.Errorf("SetPreference beyond the limit: %v; want ErrTooManyPreferences", err)
	}
	h.wantPreference("full", "one-too-many", "", false)
	if err := h.s.SetPreference(h.ctx, "full", "label0", "overwritten", max); err != nil {
		t.Errorf("overwriting at the limit: %v", err)
	}
	h.wantPreference("full", "label0", "overwritten", true)
	if err := h.s.SetPreference(h.ctx, "other", "label", "v", max); err != nil {
		t.Errorf("another user at the limit: %v", err)
	}
	if err := h.s.SetPreference(h.ctx, "full", "label-new", "v", max+1); err != nil {
		t.Errorf("SetPreference with a higher limit: %v", err)
	}
}
