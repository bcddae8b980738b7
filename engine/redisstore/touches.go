package redisstore

import (
	"context"
	"sync"
	"time"

	"github.com/sessiond/sessiond/engine"
)

// pendingTouch is what Touch recorded for one session since the last write to Redis.
type pendingTouch struct {
	first    time.Time // the earliest use: a session expired by then is not revived
	accessed time.Time // the latest use
	active   time.Time // the latest active use; zero if there was none
}

// merge combines two records of use of the same session.
func (p pendingTouch) merge(q pendingTouch) pendingTouch {
	if q.first.Before(p.first) {
		p.first = q.first
	}
	if q.accessed.After(p.accessed) {
		p.accessed = q.accessed
	}
	if q.active.After(p.active) {
		p.active = q.active
	}
	return p
}

// applyTo moves the session's last-use times forward as the touch script does in Redis:
// unless the session had expired at the first recorded use, never backwards.
func (p pendingTouch) applyTo(s *engine.Session) {
	if s.Expired(p.first) {
		return
	}
	if p.accessed.After(s.LastAccessedAt) {
		s.LastAccessedAt = p.accessed
	}
	if !p.active.IsZero() && p.active.After(s.LastActiveAt) {
		s.LastActiveAt = p.active
	}
}

// touchBuffer holds the uses Touch recorded that are not yet in Redis: pending ones, and the
// ones a flush is writing now (inflight), which reads still merge until the write is done.
type touchBuffer struct {
	mu       sync.Mutex
	pending  map[string]pendingTouch
	inflight map[string]pendingTouch
}

func (b *touchBuffer) add(id string, at time.Time, active bool) {
	at = normalTime(at)
	t := pendingTouch{first: at, accessed: at}
	if active {
		t.active = at
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		b.pending = make(map[string]pendingTouch)
	}
	if old, ok := b.pending[id]; ok {
		t = old.merge(t)
	}
	b.pending[id] = t
}

// get returns the recorded use of a session not yet in Redis.
func (b *touchBuffer) get(id string) (pendingTouch, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.pending[id]
	if q, inflight := b.inflight[id]; inflight {
		if ok {
			p = p.merge(q)
		} else {
			p, ok = q, true
		}
	}
	return p, ok
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
	for _, m := range []map[string]pendingTouch{b.pending, b.inflight} {
		for _, p := range m {
			if !found || p.first.Before(first) {
				first, found = p.first, true
			}
		}
	}
	return first, found
}

// take moves the pending uses to inflight and returns them. The caller must call done.
func (b *touchBuffer) take() map[string]pendingTouch {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inflight, b.pending = b.pending, nil
	return b.inflight
}

// done ends a write started by take; when it failed, the uses become pending again.
func (b *touchBuffer) done(written bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !written {
		for id, q := range b.inflight {
			if p, ok := b.pending[id]; ok {
				q = q.merge(p)
			}
			if b.pending == nil {
				b.pending = make(map[string]pendingTouch)
			}
			b.pending[id] = q
		}
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
	if len(batch) == 0 {
		s.touches.done(true)
		return nil
	}
	keys := []string{s.keys.allSessions()}
	args := make([]any, 0, 2+7*min(len(batch), touchesPerScript))
	start := func() { args = append(args[:0], s.keys.global, s.marginMillis) }
	send := func() error {
		return s.fail(ctx, "writing last-use times", scriptTouchSessions.Run(ctx, s.rdb, keys, args...).Err())
	}
	start()
	for id, p := range batch {
		firstS, firstN := timeParts(p.first)
		accS, accN := timeParts(p.accessed)
		actS, actN := "", ""
		if !p.active.IsZero() {
			actS, actN = timeParts(p.active)
		}
		args = append(args, id, firstS, firstN, accS, accN, actS, actN)
		if len(args) >= 2+7*touchesPerScript {
			if err := send(); err != nil {
				s.touches.done(false)
				return err
			}
			start()
		}
	}
	if len(args) > 2 {
		if err := send(); err != nil {
			s.touches.done(false)
			return err
		}
	}
	s.touches.done(true)
	return nil
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
	defer s.flusher.Done()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	failing := false
	for {
		select {
		case <-s.stop:
			return
		case <-ticker.C:
		}
		if err := s.enter(); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		err := s.writeTouches(ctx)
		cancel()
		s.leave()
		switch {
		case err != nil && !failing:
			failing = true
			s.log.Warn("redisstore: writing last-use times failed; keeping them and retrying", "err", err)
		case err == nil && failing:
			failing = false
			s.log.Info("redisstore: writing last-use times works again")
		}
	}
}

// flushTimeout bounds one background or final write of last-use times.
const flushTimeout = 5 * time.Second

// millis is t in Unix milliseconds rounded up, the unit of index scores.
func millis(t time.Time) int64 {
	return t.Unix()*1000 + int64((t.Nanosecond()+999_999)/1_000_000)
}
