package redisstore

import (
	"testing"
	"time"
)

// Uses join a run only where no expiry check can be skipped, so a session in steady use keeps
// one run between writes and a gap or a late first active use starts another.
func TestUseRuns(t *testing.T) {
	t0 := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	type use struct {
		at     time.Duration
		active bool
	}
	steady := make([]use, 1000) // a use every millisecond for a second, every tenth active
	for i := range steady {
		steady[i] = use{time.Duration(i) * time.Millisecond, i%10 == 0}
	}
	for _, tc := range []struct {
		name string
		uses []use
		want []useRun
	}{
		{"steady use", steady, []useRun{{t0, t0.Add(999 * time.Millisecond), t0.Add(990 * time.Millisecond)}}},
		{"a second apart", []use{{0, false}, {time.Second, false}},
			[]useRun{{t0, t0, time.Time{}}, {t0.Add(time.Second), t0.Add(time.Second), time.Time{}}}},
		{"earlier use joins", []use{{time.Second, false}, {0, true}},
			[]useRun{{t0.Add(time.Second), t0.Add(time.Second), t0}}},
		{"first active use after an inactive one", []use{{0, false}, {time.Millisecond, true}, {2 * time.Millisecond, true}},
			[]useRun{{t0, t0, time.Time{}}, {t0.Add(time.Millisecond), t0.Add(2 * time.Millisecond), t0.Add(2 * time.Millisecond)}}},
		{"active use a second after the last active one", []use{{0, true}, {600 * time.Millisecond, false}, {1200 * time.Millisecond, true}},
			[]useRun{{t0, t0.Add(600 * time.Millisecond), t0}, {t0.Add(1200 * time.Millisecond), t0.Add(1200 * time.Millisecond), t0.Add(1200 * time.Millisecond)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var runs []useRun
			for _, u := range tc.uses {
				runs = appendUse(runs, t0.Add(u.at), u.active)
			}
			if len(runs) != len(tc.want) {
				t.Fatalf("runs = %+v; want %+v", runs, tc.want)
			}
			for i := range runs {
				if got, want := runs[i], tc.want[i]; !got.first.Equal(want.first) || !got.accessed.Equal(want.accessed) || !got.active.Equal(want.active) {
					t.Errorf("run %d = %+v; want %+v", i, got, want)
				}
			}
		})
	}
}
