package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/engine"
)

var accountTests = []test{
	{"AccountCreateGet", false, testAccountCreateGet},
	{"AccountCreateExists", false, testAccountCreateExists},
	{"AccountMissing", false, testAccountMissing},
	{"AccountUpdate", false, testAccountUpdate},
	{"AccountUpdateFnError", false, testAccountUpdateFnError},
	{"AccountList", false, testAccountList},
	{"AccountCounts", false, testAccountCounts},
	{"AccountListWhileChanging", false, testAccountListWhileChanging},
	{"AccountDeleteCascade", false, testAccountDeleteCascade},
	{"AccountDeleteResult", false, testAccountDeleteResult},
	{"AccountLastAdmin", false, testAccountLastAdmin},
	{"AccountLastAdminConcurrent", false, testAccountLastAdminConcurrent},
	{"AccountDeleteRacesInsert", false, testAccountDeleteRacesInsert},
}

// GetAccount returns every stored field, as a copy isolated from the caller's objects.
func testAccountCreateGet(t *testing.T, h *harness) {
	original := fullAccount("Mixed-Case")
	want := original.Clone()
	h.createAccounts(original)
	original.Roles[0] = "changed after create"
	original.Description = "changed after create"
	h.wantAccount(want)

	got, err := h.s.GetAccount(h.ctx, "mixed-case")
	if err != nil {
		t.Fatal(err)
	}
	got.Roles[0] = "changed after get"
	got.Description = "changed after get"
	h.wantAccount(want)
}

// CreateAccount refuses a taken canonical username, whatever its case.
func testAccountCreateExists(t *testing.T, h *harness) {
	first := newAccount("Alice")
	h.createAccounts(first)
	for _, name := range []string{"Alice", "alice", "ALICE"} {
		second := newAccount(name)
		second.Description = "second"
		if err := h.s.CreateAccount(h.ctx, second); !errors.Is(err, engine.ErrAccountExists) {
			t.Errorf("CreateAccount(%q) over an existing account: %v; want ErrAccountExists", name, err)
		}
	}
	h.wantAccount(first)
}

// Every operation that needs an account returns ErrAccountNotFound without one.
func testAccountMissing(t *testing.T, h *harness) {
	h.createAccounts(newAccount("present"))
	for _, tc := range []struct {
		op  string
		run func() error
	}{
		{"GetAccount", func() error { _, err := h.s.GetAccount(h.ctx, "absent"); return err }},
		{"UpdateAccount", func() error {
			_, err := h.s.UpdateAccount(h.ctx, "absent", func(*engine.Account) error { return nil })
			return err
		}},
		{"InsertSession", func() error { return h.s.InsertSession(h.ctx, newSession("absent"), engine.Caps{}, now) }},
		{"SetPreference", func() error { return h.s.SetPreference(h.ctx, "absent", "label", "value", 10) }},
	} {
		if err := tc.run(); !errors.Is(err, engine.ErrAccountNotFound) {
			t.Errorf("%s of a missing account: %v; want ErrAccountNotFound", tc.op, err)
		}
	}
	h.wantNoSession(newSession("absent"), now)
}

// UpdateAccount stores and returns what fn made of the account.
func testAccountUpdate(t *testing.T, h *harness) {
	a := newAccount("bob")
	h.createAccounts(a)
	want := a.Clone()
	want.Description = "updated"
	want.FailedAttempts = 3
	want.LockedUntil = now.Add(15 * 60e9)
	got, err := h.s.UpdateAccount(h.ctx, "bob", func(a *engine.Account) error {
		a.Description = want.Description
		a.FailedAttempts = want.FailedAttempts
		a.LockedUntil = want.LockedUntil
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateAccount: %v", err)
	}
	checkAccount(t, "UpdateAccount", got, want)
	h.wantAccount(want)
}

// UpdateAccount writes nothing and returns fn's error when fn fails.
func testAccountUpdateFnError(t *testing.T, h *harness) {
	a := newAccount("carol", engine.RoleAdmin)
	h.createAccounts(a)
	errFn := errors.New("fn refused")
	got, err := h.s.UpdateAccount(h.ctx, "carol", func(a *engine.Account) error {
		a.Description = "must not be stored"
		a.Roles = append(a.Roles, "extra")
		return errFn
	})
	if !errors.Is(err, errFn) || got != nil {
		t.Errorf("UpdateAccount with a failing fn = %v, %v; want nil, fn's error", got, err)
	}
	h.wantAccount(a)
}

// ListAccounts filters by key prefix and sorts by key.
func testAccountList(t *testing.T, h *harness) {
	for _, name := range []string{"bob", "Alice", "al", "albert", "zed", "Bobby"} {
		h.createAccounts(newAccount(name))
	}
	for _, tc := range []struct {
		prefixes []string
		want     []string
	}{
		{nil, []string{"al", "albert", "alice", "bob", "bobby", "zed"}},
		{[]string{}, []string{"al", "albert", "alice", "bob", "bobby", "zed"}},
		{[]string{"al"}, []string{"al", "albert", "alice"}},
		{[]string{"ali"}, []string{"alice"}},
		{[]string{"bob", "al"}, []string{"al", "albert", "alice", "bob", "bobby"}},
		{[]string{"a", "al", "alb"}, []string{"al", "albert", "alice"}}, // overlapping: once each
		{[]string{"bobby"}, []string{"bobby"}},
		{[]string{"x"}, []string{}},
		{[]string{""}, []string{"al", "albert", "alice", "bob", "bobby", "zed"}},
	} {
		got, err := h.s.ListAccounts(h.ctx, tc.prefixes)
		if err != nil {
			t.Fatalf("ListAccounts(%q): %v", tc.prefixes, err)
		}
		if keys := accountKeys(got); !slices.Equal(keys, tc.want) {
			t.Errorf("ListAccounts(%q) = %q; want %q", tc.prefixes, keys, tc.want)
		}
	}
	all, _ := h.s.ListAccounts(h.ctx, []string{"alice"})
	if len(all) == 1 {
		checkAccount(t, "ListAccounts", all[0], newAccount("Alice"))
	}
}

// A listing of more accounts than a store lists in one step (1,000 or 1,024) has every
// account that exists throughout once, in key order, by every prefix, while other accounts
// come and go.
func testAccountListWhileChanging(t *testing.T, h *harness) {
	const n = 2_500
	stable := make([]string, n)
	for i := range stable {
		stable[i] = fmt.Sprintf("u%05d", i)
		h.createAccounts(newAccount(stable[i]))
	}
	done := make(chan struct{})
	defer func() { <-done }() // a failed listing ends the test once the changes have ended
	go func() {
		defer close(done)
		for i := range 600 { // names between the stable ones, made and dropped in turn
			if err := h.s.CreateAccount(h.ctx, newAccount(fmt.Sprintf("u%05d-churn", i*4))); err != nil {
				t.Error(err)
				return
			}
			if i >= 10 {
				if _, err := h.s.DeleteAccounts(h.ctx, []string{fmt.Sprintf("u%05d-churn", (i-10)*4)}); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	untilDone(done, func() {
		for _, tc := range []struct {
			prefixes []string
			want     []string
		}{
			{nil, stable},
			{[]string{"u01", "u0", "u011"}, stable},
			{[]string{"u011", "u01"}, stable[1000:2000]},
		} {
			list, err := h.s.ListAccounts(h.ctx, tc.prefixes)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for i, a := range list {
				if i > 0 && list[i-1].Key() >= a.Key() {
					t.Fatalf("ListAccounts(%q): %q before %q", tc.prefixes, list[i-1].Key(), a.Key())
				}
				if !strings.HasSuffix(a.Key(), "-churn") {
					keys = append(keys, a.Key())
				}
			}
			if !slices.Equal(keys, tc.want) {
				t.Fatalf("ListAccounts(%q): %d accounts that exist throughout; want %d", tc.prefixes, len(keys), len(tc.want))
			}
		}
	})
}

// CountAccounts counts the accounts and the admins among them, from none on a new store.
func testAccountCounts(t *testing.T, h *harness) {
	want := func(step string, accounts, admins int) {
		t.Helper()
		if n, a, err := h.s.CountAccounts(h.ctx); err != nil || n != accounts || a != admins {
			t.Errorf("CountAccounts %s = %d, %d, %v; want %d accounts, %d admins", step, n, a, err, accounts, admins)
		}
	}
	want("on a new store", 0, 0)
	h.createAccounts(newAccount("user"))
	want("with a user", 1, 0)
	h.createAccounts(newAccount("root", engine.RoleAdmin))
	want("with a user and an admin", 2, 1)
	if _, err := h.s.DeleteAccounts(h.ctx, []string{"user"}); err != nil {
		t.Fatal(err)
	}
	want("after deleting the user", 1, 1)
}

// DeleteAccounts removes the accounts' sessions (permanent too) and preferences.
func testAccountDeleteCascade(t *testing.T, h *harness) {
	h.createAccounts(newAccount("admin", engine.RoleAdmin), newAccount("gone"), newAccount("Kept"))
	temporary, permanent, kept := newSession("gone"), newSession("gone"), newSession("Kept")
	permanent.Permanent = true
	h.insert(temporary, permanent, kept)
	for _, user := range []string{"gone", "kept"} {
		if err := h.s.SetPreference(h.ctx, user, "theme", "dark", 10); err != nil {
			t.Fatal(err)
		}
	}

	removed, err := h.s.DeleteAccounts(h.ctx, []string{"gone"})
	if err != nil || !slices.Equal(removed, []string{"gone"}) {
		t.Fatalf("DeleteAccounts(gone) = %q, %v; want [gone], nil", removed, err)
	}
	if _, err := h.s.GetAccount(h.ctx, "gone"); !errors.Is(err, engine.ErrAccountNotFound) {
		t.Errorf("GetAccount after delete: %v; want ErrAccountNotFound", err)
	}
	h.wantNoSession(temporary, now)
	h.wantNoSession(permanent, now)
	h.wantSession(kept, now)
	h.wantPreference("kept", "theme", "dark", true)

	// A new account with the same name starts empty.
	h.createAccounts(newAccount("gone"))
	h.wantPreference("gone", "theme", "", false)
	if list, _ := h.s.ListSessions(h.ctx, []string{"gone"}, now); len(list) != 0 {
		t.Errorf("the recreated account has sessions %q", sessionIDs(list))
	}
}

// DeleteAccounts returns each removed key once and skips unknown keys.
func testAccountDeleteResult(t *testing.T, h *harness) {
	h.createAccounts(newAccount("a"), newAccount("b"), newAccount("c"))
	removed, err := h.s.DeleteAccounts(h.ctx, []string{"c", "missing", "a", "c"})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if !slices.Equal(removed, []string{"a", "c"}) {
		t.Errorf("DeleteAccounts = %q; want a and c", removed)
	}
	removed, err = h.s.DeleteAccounts(h.ctx, []string{"missing", "a"})
	if err != nil || len(removed) != 0 {
		t.Errorf("DeleteAccounts of absent accounts = %q, %v; want nothing, nil", removed, err)
	}
	list, _ := h.s.ListAccounts(h.ctx, nil)
	if keys := accountKeys(list); !slices.Equal(keys, []string{"b"}) {
		t.Errorf("accounts left: %q; want [b]", keys)
	}
}

// Removing or demoting every admin fails with ErrLastAdmin and changes nothing.
func testAccountLastAdmin(t *testing.T, h *harness) {
	for _, tc := range []struct {
		name    string
		admins  []string
		users   []string
		delete  []string // empty: demote instead
		demote  string
		wantErr error
	}{
		{name: "delete the only admin", admins: []string{"root"}, users: []string{"u"}, delete: []string{"root"}, wantErr: engine.ErrLastAdmin},
		{name: "delete the only admin and a user", admins: []string{"root"}, users: []string{"u"}, delete: []string{"u", "root"}, wantErr: engine.ErrLastAdmin},
		{name: "delete every admin", admins: []string{"a1", "a2"}, delete: []string{"a1", "a2"}, wantErr: engine.ErrLastAdmin},
		{name: "delete every account", admins: []string{"a1"}, users: []string{"u"}, delete: []string{"a1", "u", "a1"}, wantErr: engine.ErrLastAdmin},
		{name: "delete one of two admins", admins: []string{"a1", "a2"}, delete: []string{"a1"}},
		{name: "delete a user", admins: []string{"a1"}, users: []string{"u"}, delete: []string{"u"}},
		{name: "delete with no admin at all", users: []string{"u", "v"}, delete: []string{"u", "v"}},
		{name: "demote the only admin", admins: []string{"root"}, users: []string{"u"}, demote: "root", wantErr: engine.ErrLastAdmin},
		{name: "demote one of two admins", admins: []string{"a1", "a2"}, demote: "a1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.fresh(t) // once a store has an admin it can never have none again
			var before []*engine.Account
			for _, name := range tc.admins {
				before = append(before, newAccount(name, "auditor", engine.RoleAdmin))
			}
			for _, name := range tc.users {
				before = append(before, newAccount(name))
			}
			h.createAccounts(before...)
			var err error
			if len(tc.delete) > 0 {
				_, err = h.s.DeleteAccounts(h.ctx, tc.delete)
			} else {
				_, err = h.s.UpdateAccount(h.ctx, tc.demote, func(a *engine.Account) error {
					a.Roles = slices.DeleteFunc(a.Roles, func(r string) bool { return r == engine.RoleAdmin })
					return nil
				})
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got error %v; want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				for _, a := range before {
					h.wantAccount(a)
				}
			}
		})
	}
}

// Of two concurrent removals of the last two admins, exactly one succeeds.
func testAccountLastAdminConcurrent(t *testing.T, h *harness) {
	survivor := "" // the admin left by the previous round
	for round := range 20 {
		demote := round%2 == 1
		pair := []string{fmt.Sprintf("admin-a-%d", round), fmt.Sprintf("admin-b-%d", round)}
		h.createAccounts(newAccount(pair[0], engine.RoleAdmin), newAccount(pair[1], engine.RoleAdmin))
		if survivor != "" {
			if _, err := h.s.DeleteAccounts(h.ctx, []string{survivor}); err != nil {
				t.Fatalf("round %d: deleting the previous survivor: %v", round, err)
			}
		}
		errs := parallel(2, func(i int) error {
			if demote {
				_, err := h.s.UpdateAccount(h.ctx, pair[i], func(a *engine.Account) error {
					a.Roles = nil
					return nil
				})
				return err
			}
			_, err := h.s.DeleteAccounts(h.ctx, []string{pair[i]})
			return err
		})
		survivor = ""
		for i, err := range errs {
			switch {
			case errors.Is(err, engine.ErrLastAdmin):
				survivor = pair[i]
			case err != nil:
				t.Fatalf("round %d: unexpected error %v", round, err)
			}
		}
		if survivor == "" || errs[0] == nil == (errs[1] == nil) {
			t.Fatalf("round %d (demote=%v): errors %v; want exactly one ErrLastAdmin", round, demote, errs)
		}
		list, _ := h.s.ListAccounts(h.ctx, nil)
		var admins []string
		for _, a := range list {
			if a.IsAdmin() {
				admins = append(admins, a.Key())
			}
		}
		if !slices.Equal(admins, []string{survivor}) {
			t.Fatalf("round %d: admins left %q; want only %q", round, admins, survivor)
		}
	}
}

// A session inserted during its account's deletion never outlives the account.
func testAccountDeleteRacesInsert(t *testing.T, h *harness) {
	for round := range 10 {
		user := fmt.Sprintf("racer-%d", round)
		h.createAccounts(newAccount(user))
		errs := parallel(2, func(i int) error {
			if i == 0 {
				_, err := h.s.DeleteAccounts(h.ctx, []string{user})
				return err
			}
			for {
				if err := h.s.InsertSession(h.ctx, newSession(user), engine.Caps{}, now); err != nil {
					return err
				}
			}
		})
		if errs[0] != nil || !errors.Is(errs[1], engine.ErrAccountNotFound) {
			t.Fatalf("round %d: delete: %v, inserts ended with %v; want nil and ErrAccountNotFound", round, errs[0], errs[1])
		}
		list, err := h.s.ListSessions(h.ctx, []string{user}, now)
		if err != nil || len(list) != 0 {
			t.Fatalf("round %d: sessions of the deleted account: %q, %v", round, sessionIDs(list), err)
		}
	}
}
