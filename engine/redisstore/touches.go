package redisstore

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/sessiond/sessiond/engine"
)

// joinWindow is how close to uses of a run a later use must be to join it without a check
// of its own. Idle and inactivity timeouts are whole seconds, so a clock restarted by a use
// of the run cannot run out within less than this after it. (A clock started before the run,
// such as a stored LastActiveAt, can run out at any moment: that is what the run's first
// use, and its live time, are checked against.)
const joinWindow = time.Second

// maxRuns bounds the runs kept for one session, which only grow past a few while writes to
// Redis fail or uses come out of order. Past it a run is dropped (capRuns): losing uses can
// only make a session end sooner, where joining runs that do not join (joins) could revive
// one.
const maxRuns = 64

// useRun is a run of uses of one session that Touch recorded one after another and that
// need one expiry check between them, at the first: each later use joined only if the
// session, live at the first, was live at it too or could not be revived by it (joins).
type useRun struct {
	first    time.Time // the run's first recorded use: the session must be live then
	accessed time.Time // the latest use
	active   time.Time // the latest active use; zero if there was none
	// live is the latest use at which the session is known to be live, if it was at first,
	// but for its lifetime, which no use moves.
	live time.Time
}

func newRun(at time.Time, active bool) useRun {
	r := useRun{first: at, accessed: at, live: at}
	if active {
		r.active = at
	}
	return r
}

// liveAt reports whether a session live at the run's first use is live at at too, but for
// its lifetime: at is no later than a use it is known live at, or less than joinWindow after
// the run's latest use and after its latest active use, which restarted the idle and the
// inactivity clock within the run at a use it was live at (active uses join only then).
func (r useRun) liveAt(at time.Time) bool {
	return !at.After(r.live) ||
		at.Sub(r.accessed) < joinWindow && !r.active.IsZero() && at.Sub(r.active) < joinWindow
}

// joins reports whether a use at at, recorded after the run's, can join it without an
// expiry check of its own. Not a use before the run's first, which that check does not
// cover. A use the session is live at (liveAt) can; so can an inactive use less than
// joinWindow after the run's latest use, since the session's idle clock cannot have run out
// in between, and an inactive use moves only LastAccessedAt, which does not revive a session
// its inactivity clock or its lifetime ended.
func (r useRun) joins(at time.Time, active bool) bool {
	if at.Before(r.first) {
		return false
	}
	return r.liveAt(at) || !active && at.Sub(r.accessed) < joinWindow
}

// add records a use at at that joins the run.
func (r *useRun) add(at time.Time, active bool) {
	if r.liveAt(at) && at.After(r.live) {
		r.live = at
	}
	if at.After(r.accessed) {
		r.accessed = at
	}
	if active && at.After(r.active) {
		r.active = at
	}
}

// absorb adds the run next, recorded after r, to r if all of its uses join r, and reports
// whether it did: when the session is live at next's first use, next's own reasoning holds;
// a run of inactive uses alone joins as its first use does, the others chained to it.
func (r *useRun) absorb(next useRun) bool {
	if next.first.Before(r.first) {
		return false
	}
	switch {
	case r.liveAt(next.first):
		if next.live.After(r.live) {
			r.live = next.live
		}
	case next.active.IsZero() && r.joins(next.first, false):
	default:
		return false
	}
	r.add(next.accessed, false) // moves accessed, not live: next.live was taken above
	if next.active.After(r.active) {
		r.active = next.active
	}
	return true
}

// appendUse records a use at at after the runs, in the last run when it joins it.
func appendUse(runs []useRun, at time.Time, active bool) []useRun {
	if n := len(runs); n > 0 && runs[n-1].joins(at, active) {
		runs[n-1].add(at, active)
		return runs
	}
	return capRuns(append(runs, newRun(at, active)))
}

// capRuns keeps at most maxRuns runs, dropping those with the earliest latest use: the
// oldest while uses come in order, the least telling when they do not.
func capRuns(runs []useRun) []useRun {
	for len(runs) > maxRuns {
		least := 0
		for i, r := range runs {
			if r.accessed.Before(runs[least].accessed) {
				least = i
			}
		}
		runs = slices.Delete(runs, least, least+1)
	}
	return runs
}

// applyUses moves the session's last-use times forward as the touch script does in Redis,
// run by run in the order recorded: never backwards, and not for a run whose first use
// found the session expired, so that use cannot revive it. The uses of a run after its live
// time joined without knowing the session's inactivity clock or lifetime: when those ended
// before the run's latest use, LastAccessedAt moves only to the live time, which may lose a
// use (the session ends sooner) but cannot revive the session.
func applyUses(s *engine.Session, runs []useRun) {
	for _, r := range runs {
		if s.Expired(r.first) {
			continue
		}
		if !r.active.IsZero() && r.active.After(s.LastActiveAt) {
			s.LastActiveAt = r.active // no later than live
		}
		last, probe := r.accessed, *s
		probe.LastAccessedAt = r.accessed // the idle clock cannot have run out within the run
		if probe.Expired(r.accessed) {
			last = r.live
		}
		if last.After(s.LastAccessedAt) {
			s.LastAccessedAt = last
		}
	}
}

// touchBuffer holds the uses Touch recorded that are not yet in Redis: pending ones, and the
// ones a flush is writing now (inflight), which reads still see until the write is done.
// Each session's runs are oldest first, and its inflight runs are older than its pending ones.
type touchBuffer struct {
	mu       sync.Mutex
	pending  map[string][]useRun
	inflight map[string][]useRun
}

func (b *touchBuffer) add(id string, at time.Time, active bool) {
	at = normalTime(at)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		b.pending = make(map[string][]useRun)
	}
	b.pending[id] = appendUse(b.pending[id], at, active)
}

// get returns the recorded uses of a session not yet in Redis, oldest first.
func (b *touchBuffer) get(id string) []useRun {
	b.mu.Lock()
	defer b.mu.Unlock()
	inflight, pending := b.inflight[id], b.pending[id]
	if len(inflight)+len(pending) == 0 {
		return nil
	}
	// A copy: add changes the last pending run in place.
	return append(append(make([]useRun, 0, len(inflight)+len(pending)), inflight...), pending...)
}

// has reports whether any of the sessions (any session at all when ids is empty) has a use
// not yet in Redis.
func (b *touchBuffer) has(ids ...string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(ids) == 0 {
		return len(b.pending) > 0 || len(b.inflight) > 0
	}
	for _, id := range ids {
		if _, ok := b.pending[id]; ok {
			return true
		}
		if _, ok := b.inflight[id]; ok {
			return true
		}
	}
	return false
}

// earliest returns the earliest first use not yet in Redis, if any.
func (b *touchBuffer) earliest() (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var first time.Time
	found := false
	for _, m := range []map[string][]useRun{b.pending, b.inflight} {
		for _, runs := range m {
			for _, r := range runs {
				if !found || r.first.Before(first) {
					first, found = r.first, true
				}
			}
		}
	}
	return first, found
}

// take moves the pending uses to inflight and returns them. The caller must call done.
func (b *touchBuffer) take() map[string][]useRun {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inflight, b.pending = b.pending, nil
	return b.inflight
}

// done ends a write started by take; unsent are the runs it did not write, which become
// pending again, before the ones recorded meanwhile.
func (b *touchBuffer) done(unsent map[string][]useRun) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(unsent) > 0 && b.pending == nil {
		b.pending = make(map[string][]useRun, len(unsent))
	}
	for id, runs := range unsent {
		later := b.pending[id]
		if len(later) > 0 && runs[len(runs)-1].absorb(later[0]) {
			later = later[1:]
		}
		b.pending[id] = capRuns(append(runs, later...))
	}
	b.inflight = nil
}

// touchesPerScript bounds the work of one touch script, so that Redis is never blocked long.
const touchesPerScript = 512

// writeTouches writes the recorded uses to Redis. One write runs at a time; a failed write
// keeps them for the next one.
func (s *Store) writeTouches(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	batch := s.touches.take()
	// A session's runs go in order, so the script checks and applies them as applyUses does.
	entries := make([]touchEntry, 0, len(batch))
	for id, runs := range batch {
		for _, r := range runs {
			entries = append(entries, touchEntry{id, r})
		}
	}
	keys := []string{s.keys.allSessions()}
	args := make([]any, 0, 1+9*min(len(entries), touchesPerScript))
	for from := 0; from < len(entries); from += touchesPerScript {
		args = append(args[:0], s.keys.global)
		for _, e := range entries[from:min(from+touchesPerScript, len(entries))] {
			args = e.appendArgs(args)
		}
		if err := scriptTouchSessions.Run(ctx, s.rdb, keys, args...).Err(); err != nil {
			// The scripts before this one were applied: only the rest is kept, since
			// applying a run again after later ones is not always the same.
			unsent := make(map[string][]useRun)
			for _, e := range entries[from:] {
				unsent[e.id] = append(unsent[e.id], e.run)
			}
			s.touches.done(unsent)
			return s.fail(ctx, "writing last-use times", err)
		}
	}
	s.touches.done(nil)
	return nil
}

// touchEntry is one run of one session's uses, as the touch script takes it.
type touchEntry struct {
	id  string
	run useRun
}

// appendArgs appends the entry's arguments of scriptTouchSessions.
func (e touchEntry) appendArgs(args []any) []any {
	firstS, firstN := timeParts(e.run.first)
	accS, accN := timeParts(e.run.accessed)
	liveS, liveN := timeParts(e.run.live)
	actS, actN := "", ""
	if !e.run.active.IsZero() {
		actS, actN = timeParts(e.run.active)
	}
	return append(args, e.id, firstS, firstN, accS, accN, liveS, liveN, actS, actN)
}

// settle writes the recorded uses before an operation whose result depends on them: when any
// of the sessions (any session when ids is empty) has one not yet in Redis.
func (s *Store) settle(ctx context.Context, ids ...string) error {
	if !s.touches.has(ids...) {
		return nil
	}
	return s.writeTouches(ctx)
}

// flushEvery writes recorded uses every interval until Close. A failure is logged once per
// outage; the uses are kept and written when Redis is back.
func (s *Store) flushEvery(interval time.Duration) {
	failing := false
	s.tickUntilClose(interval, flushTimeout, func(ctx context.Context) {
		err := s.writeTouches(ctx)
		switch {
		case err != nil && !failing:
			failing = true
			s.log.Warn("redisstore: writing last-use times failed; keeping them and retrying", "err", err)
		case err == nil && failing:
			failing = false
			s.log.Info("redisstore: writing last-use times works again")
		}
	})
}

// flushTimeout bounds one background or final write of last-use times.
const flushTimeout = 5 * time.Second

// millis is t in Unix milliseconds rounded up, the unit of index scores.
func millis(t time.Time) int64 {
	return t.Unix()*1000 + int64((t.Nanosecond()+999_999)/1_000_000)
}
