package badgerstore

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/memstore"
)

// Records with edge values decode to what was encoded.
func TestCodecRoundTrip(t *testing.T) {
	far := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	early := time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)
	accounts := []*engine.Account{
		{},
		{Username: "Ünïcode-用户", Description: "line\nbreak\x00nul", Roles: []string{"admin", ""}, PasswordHash: "h",
			LockoutAfter: -1, LockoutWaitMinutes: math.MaxInt32, FailedAttempts: math.MinInt32,
			LockedUntil: far, CreatedAt: early, LastLoginAt: testNow, PasswordChangedAt: testNow.Add(1)},
	}
	for _, a := range accounts {
		got, err := decodeAccount(encodeAccount(a))
		if err != nil || !reflect.DeepEqual(got, a) {
			t.Errorf("account round trip: %+v, %v; want %+v", got, err, a)
		}
	}
	sessions := []*engine.Session{
		{},
		{TokenHash: engine.TokenHash{1, 2, 3, 31: 255}, Username: "ü", Permanent: true, Origin: "x",
			InactivitySeconds: math.MaxInt64, LifetimeEnd: far, CreatedAt: early, LastAccessedAt: testNow,
			LastActiveAt: testNow.Add(-1), ClientAddress: "[2001:db8::1]:443",
			Settings: engine.SessionSettings{Description: "d", DefaultRetentionPeriod: -5, IdleConnectionTimeoutSeconds: math.MinInt64,
				DefaultResponseOptions: engine.ResponseOptions{NumberFormat: "string"}}},
	}
	for _, s := range sessions {
		var got engine.Session
		if err := decodeSession(&decoder{buf: encodeSession(s)}, &got); err != nil || !reflect.DeepEqual(&got, s) {
			t.Errorf("session round trip: %+v, %v; want %+v", got, err, s)
		}
	}
	for _, key := range []struct{ user, label string }{{"", ""}, {"a", "b"}, {"a/b", "c/d"}, {"x\x00", "\x00y"}} {
		user, label, err := parsePreferenceKey(preferenceKey(key.user, key.label))
		if err != nil || user != key.user || label != key.label {
			t.Errorf("preference key %q/%q came back as %q/%q, %v", key.user, key.label, user, label, err)
		}
	}
}

// A chunk of last-use times keeps every combination of set, zero and equal times, in order.
func TestLastUsesRoundTrip(t *testing.T) {
	want := []memstore.Touched{
		{ID: "both", LastAccessedAt: testNow, LastActiveAt: testNow},
		{ID: "older-active", LastAccessedAt: testNow.Add(time.Second), LastActiveAt: testNow.Add(-time.Hour)},
		{ID: "earlier", LastAccessedAt: testNow.Add(-time.Minute), LastActiveAt: testNow.Add(-time.Minute)},
		{ID: "never-active", LastAccessedAt: testNow},
		{ID: "zero"},
		{ID: "", LastActiveAt: testNow.Add(time.Nanosecond)},
	}
	got, err := decodeLastUses(appendLastUses(nil, want), []memstore.Touched{{ID: "kept"}})
	if err != nil || len(got) != len(want)+1 || got[0].ID != "kept" || !reflect.DeepEqual(got[1:], want) {
		t.Errorf("decoded %+v, %v; want kept, then %+v", got, err, want)
	}
}

// No input makes a decoder panic, and what decodes re-encodes to the same record.
func FuzzDecode(f *testing.F) {
	f.Add(encodeSession(&engine.Session{Username: "u", LastAccessedAt: testNow}))
	f.Add(encodeAccount(&engine.Account{Username: "u", Roles: []string{"admin"}, CreatedAt: testNow}))
	f.Add(encodeTouch(testNow, time.Time{}))
	f.Add(encodePreference("value"))
	f.Add(appendLastUses(nil, []memstore.Touched{{ID: "a", LastAccessedAt: testNow, LastActiveAt: testNow}, {ID: "b"}}))
	f.Add([]byte{recordVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		var s, again engine.Session
		if decodeSession(&decoder{buf: data}, &s) == nil {
			if err := decodeSession(&decoder{buf: encodeSession(&s)}, &again); err != nil || !reflect.DeepEqual(again, s) {
				t.Errorf("session %+v came back as %+v, %v", s, again, err)
			}
		}
		if a, err := decodeAccount(data); err == nil {
			if again, err := decodeAccount(encodeAccount(a)); err != nil || !reflect.DeepEqual(again, a) {
				t.Errorf("account %+v came back as %+v, %v", a, again, err)
			}
		}
		if accessed, active, err := decodeTouch(data); err == nil {
			accessed2, active2, err := decodeTouch(encodeTouch(accessed, active))
			if err != nil || !accessed2.Equal(accessed) || !active2.Equal(active) {
				t.Errorf("touch %v %v came back as %v %v, %v", accessed, active, accessed2, active2, err)
			}
		}
		if touched, err := decodeLastUses(data, nil); err == nil {
			again, err := decodeLastUses(appendLastUses(nil, touched), nil)
			if err != nil || !reflect.DeepEqual(again, touched) {
				t.Errorf("last-use chunk %+v came back as %+v, %v", touched, again, err)
			}
		}
		_, _ = decodePreference(data)
		if len(data) >= len(prefixPreference) {
			_, _, _ = parsePreferenceKey(data)
		}
	})
}
