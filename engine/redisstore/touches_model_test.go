package redisstore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/memstore"
	"github.com/sessiond/sessiond/engine/redisstore/redistest"
)

// TestTouchRunsMatchMemstore gives the same session to a memstore, which applies each use at
// once, and to a Redis store, which keeps uses in runs, and makes the same random uses of it
// in both, some out of order by up to 1.5 s, with whole-second clocks that run out among the
// uses. Between uses the Redis store writes, or fails a write. Made as the engine makes them
// (only at a time the session is found live), and also when the Redis store writes and loses
// the reply, the uses leave both stores with the same last-use times. Made at any time, they
// never make the Redis store's session end later than memstore's (they may make it end
// sooner). Each is checked after every step and after a final Flush. SESSIOND_TOUCH_SEED
// repeats a run; SESSIOND_TOUCH_CASES sets its length (thousands ran clean in review).
func TestTouchRunsMatchMemstore(t *testing.T) {
	t.Run("as the engine uses it", func(t *testing.T) { testTouchRuns(t, true) })
	t.Run("any use", func(t *testing.T) { testTouchRuns(t, false) })
}

func testTouchRuns(t *testing.T, asEngine bool) {
	seed, cases := uint64(time.Now().UnixNano()), 300
	if v, err := strconv.ParseUint(os.Getenv("SESSIOND_TOUCH_SEED"), 10, 64); err == nil {
		seed = v
	}
	if v, err := strconv.Atoi(os.Getenv("SESSIOND_TOUCH_CASES")); err == nil {
		cases = v
	}
	t.Logf("SESSIOND_TOUCH_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	// The background writer is off: the test takes and ends writes itself.
	red := openStore(t, redistest.Start(t), freshPrefix("model"), func(o *Options) { o.FlushInterval = -1 })
	mem := memstore.New(memstore.Options{})
	mustCreate(t, red, newAccount("u"))
	if err := mem.CreateAccount(ctx, newAccount("u")); err != nil {
		t.Fatal(err)
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	early := testNow.Add(-time.Hour) // no session has ended by then: reads show every use
	for c := range cases {
		s := newSession("u")
		s.Settings.IdleConnectionTimeoutSeconds = int64(rng.IntN(6)) // 0 (none) to 5 s
		s.InactivitySeconds = int64(rng.IntN(4))                     // 0 (none) to 3 s, and a minute's grace
		s.LastActiveAt = testNow.Add(-ms(rng.IntN(64_000)))          // the inactivity clock may be near its end
		if rng.IntN(4) == 0 {
			s.LifetimeEnd = testNow.Add(ms(rng.IntN(20_000)))
		}
		if s.Settings.IdleConnectionTimeoutSeconds == 0 && s.InactivitySeconds == 0 && s.LifetimeEnd.IsZero() {
			s.Settings.IdleConnectionTimeoutSeconds = 2
		}
		mustInsert(t, red, s.Clone())
		if err := mem.InsertSession(ctx, s.Clone(), engine.Caps{}, testNow); err != nil {
			t.Fatal(err)
		}
		var log []string
		check := func(when string) {
			t.Helper()
			r, rerr := red.SessionByID(ctx, s.ID, early)
			m, merr := mem.SessionByID(ctx, s.ID, early)
			if rerr != nil || merr != nil {
				t.Fatalf("case %d: %v, %v", c, rerr, merr)
			}
			rEnd, rEnds := r.ExpiresAt()
			mEnd, mEnds := m.ExpiresAt()
			revived := mEnds && (!rEnds || rEnd.After(mEnd))
			if revived || asEngine && (!r.LastAccessedAt.Equal(m.LastAccessedAt) || !r.LastActiveAt.Equal(m.LastActiveAt)) {
				t.Fatalf("case %d (SESSIOND_TOUCH_SEED=%d), %s: Redis store %v %v, memstore %v %v (%v, %v) after\n%v",
					c, seed, when, r.LastAccessedAt.Sub(testNow), r.LastActiveAt.Sub(testNow),
					m.LastAccessedAt.Sub(testNow), m.LastActiveAt.Sub(testNow), rerr, merr, log)
			}
		}
		latest := time.Duration(0)
		for range 1 + rng.IntN(40) {
			switch at := latest + ms(1+rng.IntN(3000)); rng.IntN(8) {
			case 0, 1: // out of order
				at = latest - ms(rng.IntN(1500))
				fallthrough
			default:
				active := rng.IntN(3) == 0
				if _, err := red.SessionByID(ctx, s.ID, testNow.Add(at)); asEngine && errors.Is(err, engine.ErrSessionNotFound) {
					continue // the engine touches only a session it found live
				}
				log = append(log, fmt.Sprintf("Touch(+%v, %v)", at, active))
				for _, st := range []engine.Store{red, mem} {
					if err := st.Touch(ctx, s.ID, testNow.Add(at), active); err != nil {
						t.Fatal(err)
					}
				}
				latest = max(latest, at)
			case 2:
				log = append(log, "Flush")
				if err := red.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			case 3: // a write that fails, or whose reply is lost after the script ran
				batch := red.touches.take()
				if asEngine && rng.IntN(2) == 0 {
					log = append(log, "write lost")
					args := []any{red.keys.global}
					for id, runs := range batch {
						for _, r := range runs {
							args = touchEntry{id, r}.appendArgs(args)
						}
					}
					if err := scriptTouchSessions.Run(ctx, red.rdb, []string{red.keys.allSessions()}, args...).Err(); err != nil {
						t.Fatal(err)
					}
				} else {
					log = append(log, "write failed")
				}
				red.touches.done(batch)
			}
			check("during")
		}
		if err := red.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		check("after Flush")
	}
}
