package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// What a node watches in Redis, to tell its operator in its log what no call reports:
//   - that Redis stopped answering (a warning at the first call it fails, not one a call,
//     also when the caller's deadline passed first) and that it answers again;
//   - that Redis refuses calls (OOM, READONLY, LOADING, …): a warning at most once a
//     refusalLogGap, since it still answers a PING meanwhile;
//   - that its persistence settings changed since the last look (CONFIG SET on a running
//     Redis), every watchEvery;
//   - that the store's data disappeared (Redis restarted without its append-only file, or
//     was flushed), every watchEvery: the store keeps a marker key, made once by the first
//     node and never deleted, and a node that finds it gone or replaced logs an error.

// watchTick is how often the watcher looks whether Redis answers again, while it does not;
// watchEvery how often it reads the persistence settings and the marker.
const (
	watchTick  = time.Second
	watchEvery = time.Minute
)

// watch runs the checks above until Close, looking every tick.
func (s *Store) watch(tick, every time.Duration) {
	last := time.Now()
	s.tickUntilClose(tick, 5*time.Second, func(ctx context.Context) {
		back := s.unreachable.Load() && s.answersAgain(ctx)
		if back || time.Since(last) >= every {
			last = time.Now()
			s.watchPersistence(ctx)
			s.watchMarker(ctx)
		}
	})
}

// tickUntilClose calls work every tick until Close, as a call (enter), with a context that
// ends after limit or when Close begins. It is the body of a goroutine counted in s.flusher.
func (s *Store) tickUntilClose(tick, limit time.Duration, work func(ctx context.Context)) {
	defer s.flusher.Done()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	base, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { <-s.stop; stop() }()
	for {
		select {
		case <-s.stop:
			return
		case <-ticker.C:
		}
		if err := s.enter(); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(base, limit)
		work(ctx)
		cancel()
		s.leave()
	}
}

// noteRefusal logs that Redis refuses calls (OOM, READONLY, LOADING, …), at most once a
// refusalLogGap: Redis answers meanwhile, so the watcher cannot tell when it stops.
func (s *Store) noteRefusal(op string, err error) {
	now := time.Now().UnixNano()
	last := s.refusedAt.Load()
	if now-last >= int64(refusalLogGap) && s.refusedAt.CompareAndSwap(last, now) {
		s.log.Warn("redisstore: Redis refuses calls; they fail with storeUnavailable (1010) while it does", "op", op, "err", err)
	}
}

// refusalLogGap is the shortest time between two logs of Redis's refusals.
const refusalLogGap = time.Minute

// noteUnavailable logs the first failure of an outage.
func (s *Store) noteUnavailable(op string, err error) {
	if s.unreachable.CompareAndSwap(false, true) {
		s.log.Warn("redisstore: Redis does not answer; calls fail with storeUnavailable (1010) until it does", "op", op, "err", err)
	}
}

// answersAgain pings Redis and, when it answers, logs that the outage is over.
func (s *Store) answersAgain(ctx context.Context) bool {
	if s.rdb.Ping(ctx).Err() != nil {
		return false
	}
	if s.unreachable.CompareAndSwap(true, false) {
		s.log.Info("redisstore: Redis answers again")
	}
	return true
}

// watchPersistence logs the persistence settings when they changed since the last look.
func (s *Store) watchPersistence(ctx context.Context) {
	list, err := s.Persistence(ctx)
	if err == nil && !slices.Equal(list, s.persistence) {
		s.persistence = list
		s.logPersistence(list, nil)
	}
}

// claimMarker returns the store's marker, made first if there is none.
func (s *Store) claimMarker(ctx context.Context) (string, error) {
	key := s.keys.marker()
	value, err := s.rdb.Get(ctx, key).Result()
	if !errors.Is(err, redis.Nil) {
		return value, err
	}
	if err := s.rdb.SetNX(ctx, key, rand.Text(), 0).Err(); err != nil {
		return "", err
	}
	return s.rdb.Get(ctx, key).Result()
}

// watchMarker logs an error when the marker is gone or is another one than the store had.
func (s *Store) watchMarker(ctx context.Context) {
	value, err := s.rdb.Get(ctx, s.keys.marker()).Result()
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil, value == s.marker:
		return
	}
	s.log.Error("redisstore: the store's data has gone from Redis (its marker key is missing or new): Redis restarted without its append-only file, was flushed, or evicted keys; the sessions, API keys and accounts made before are lost",
		"key", s.keys.marker())
	if value, err = s.claimMarker(ctx); err == nil {
		s.marker = value
	}
}
