package redisstore

import (
	"testing"
	"time"
)

// Uses join a run only where no expiry check can be skipped, so a session in steady use keeps
// one run between writes, and a gap, a first active use or a use before the run starts
// another.
func TestUseRuns(t *testing.T) {
	t0 := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type use struct {
		at     int // milliseconds after t0
		active bool
	}
	var none time.Time
	steady := make([]use, 1000) // a use every millisecond for a second, every tenth active
	for i := range steady {
		steady[i] = use{i, i%10 == 0}
	}
	for _, tc := range []struct {
		name string
		uses []use
		want []useRun // first, accessed, active, live
	}{
		{"steady use", steady, []useRun{{ms(0), ms(999), ms(990), ms(999)}}},
		{"inactive uses chained", []use{{0, false}, {900, false}, {1800, false}},
			[]useRun{{ms(0), ms(1800), none, ms(0)}}},
		{"a second apart", []use{{0, false}, {1000, false}},
			[]useRun{{ms(0), ms(0), none, ms(0)}, {ms(1000), ms(1000), none, ms(1000)}}},
		{"earlier use starts a run", []use{{1000, false}, {0, true}},
			[]useRun{{ms(1000), ms(1000), none, ms(1000)}, {ms(0), ms(0), ms(0), ms(0)}}},
		{"first active use after an inactive one", []use{{0, false}, {1, true}, {2, true}},
			[]useRun{{ms(0), ms(0), none, ms(0)}, {ms(1), ms(2), ms(2), ms(2)}}},
		{"active use before an inactive one not known live", []use{{0, false}, {900, false}, {700, true}},
			[]useRun{{ms(0), ms(900), none, ms(0)}, {ms(700), ms(700), ms(700), ms(700)}}},
		{"active use a second after the last active one", []use{{0, true}, {600, false}, {1200, true}},
			[]useRun{{ms(0), ms(600), ms(0), ms(600)}, {ms(1200), ms(1200), ms(1200), ms(1200)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var runs []useRun
			for _, u := range tc.uses {
				runs = appendUse(runs, ms(u.at), u.active)
			}
			if len(runs) != len(tc.want) {
				t.Fatalf("runs = %+v; want %+v", runs, tc.want)
			}
			for i := range runs {
				if got, want := runs[i], tc.want[i]; !got.first.Equal(want.first) || !got.accessed.Equal(want.accessed) ||
					!got.active.Equal(want.active) || !got.live.Equal(want.live) {
					t.Errorf("run %d = %+v; want %+v", i, got, want)
				}
			}
		})
	}
}

// While writes fail, a session's uses stay in as few runs as joining allows across the
// writes, and never in more than maxRuns.
func TestUseRunsWhileWritesFail(t *testing.T) {
	t0 := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		every    time.Duration
		active   func(i int) bool
		wantRuns int
	}{
		{"steady inactive use", 10 * time.Millisecond, func(int) bool { return false }, 1},
		{"steady use, some active", 10 * time.Millisecond, func(i int) bool { return i%20 == 0 }, 1},
		{"a use every 1.5 s", 1500 * time.Millisecond, func(i int) bool { return i%2 == 0 }, maxRuns},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b touchBuffer
			at := t0
			for i := range 200 {
				b.take()
				for j := range 5 {
					b.add("s", at, tc.active(5*i+j))
					at = at.Add(tc.every)
				}
				b.done(b.inflight)
			}
			if got := len(b.get("s")); got != tc.wantRuns {
				t.Errorf("%d runs after 200 failed writes; want %d", got, tc.wantRuns)
			}
		})
	}
}
