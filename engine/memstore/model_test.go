package memstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
)

// Random change sequences agree with a naive model, and the indexes stay consistent.
func TestAgainstModel(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runModel(t, seed, 3000) })
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 99))
	s := New(Options{})
	users := []string{"u0", "u1", "u2", "u3"}
	addresses := []string{"", "10.0.0.1", "10.0.0.2", "10.0.0.3"}
	for _, u := range users {
		if err := s.CreateAccount(ctx, &engine.Account{Username: u}); err != nil {
			t.Fatal(err)
		}
	}
	model := map[string]*engine.Session{} // everything not deleted or purged
	var ids []string                      // every id ever used, to pick from
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	liveIn := func(match func(*engine.Session) bool) int {
		n := 0
		for _, m := range model {
			if !m.Expired(now) && match(m) {
				n++
			}
		}
		return n
	}
	pick := func() string {
		if len(ids) == 0 || rng.IntN(10) == 0 {
			return "unknown"
		}
		return ids[rng.IntN(len(ids))]
	}

	for step := range steps {
		now = now.Add(time.Duration(rng.IntN(90)) * time.Second)
		switch op := rng.IntN(10); {
		case op < 4: // insert
			sess := &engine.Session{
				ID:             fmt.Sprintf("s%05d", step),
				Username:       users[rng.IntN(len(users))],
				ClientAddress:  addresses[rng.IntN(len(addresses))],
				CreatedAt:      now,
				LastAccessedAt: now,
				LastActiveAt:   now,
			}
			// Few distinct 64-bit prefixes: the token index's overflow gets a workout.
			sess.TokenHash[0] = byte(step % 7)
			sess.TokenHash[8], sess.TokenHash[9] = byte(step), byte(step>>8)
			sess.Settings.IdleConnectionTimeoutSeconds = int64(60 * (1 + rng.IntN(20)))
			if rng.IntN(3) == 0 {
				sess.InactivitySeconds = int64(60 * rng.IntN(10))
			}
			if rng.IntN(3) == 0 {
				sess.LifetimeEnd = now.Add(time.Duration(rng.IntN(3600)) * time.Second)
			}
			sess.Permanent = rng.IntN(20) == 0
			caps := engine.Caps{}
			if rng.IntN(2) == 0 {
				caps = engine.Caps{MaxSessions: 10 + rng.IntN(20), MaxSessionsPerAddress: 3 + rng.IntN(8), MaxSessionsPerUser: 3 + rng.IntN(8)}
			}
			var want string
			switch {
			case caps.MaxSessions > 0 && liveIn(func(*engine.Session) bool { return true }) >= caps.MaxSessions:
				want = engine.LimitMaxSessions
			case caps.MaxSessionsPerAddress > 0 && sess.ClientAddress != "" &&
				liveIn(func(m *engine.Session) bool { return m.ClientAddress == sess.ClientAddress }) >= caps.MaxSessionsPerAddress:
				want = engine.LimitMaxSessionsPerAddress
			case caps.MaxSessionsPerUser > 0 && liveIn(func(m *engine.Session) bool { return m.Username == sess.Username }) >= caps.MaxSessionsPerUser:
				want = engine.LimitMaxSessionsPerUser
			}
			err := s.InsertSession(ctx, sess, caps, now)
			var le *engine.LimitError
			switch {
			case want == "" && err != nil:
				t.Fatalf("step %d: insert: %v; want success", step, err)
			case want != "" && (!errors.As(err, &le) || le.Limit != want):
				t.Fatalf("step %d: insert: %v; want the %s cap", step, err, want)
			case want == "":
				model[sess.ID] = normalSession(sess)
				ids = append(ids, sess.ID)
			}
		case op < 6: // touch
			id, active := pick(), rng.IntN(2) == 0
			if err := s.Touch(ctx, id, now, active); err != nil {
				t.Fatal(err)
			}
			if m := model[id]; m != nil && !m.Expired(now) {
				m.LastAccessedAt = now
				if active {
					m.LastActiveAt = now
				}
			}
		case op < 7: // update a clock
			id := pick()
			idle := int64(60 * rng.IntN(30))
			_, err := s.UpdateSession(ctx, id, now, func(s *engine.Session) error {
				s.Settings.IdleConnectionTimeoutSeconds = idle
				return nil
			})
			if m := model[id]; m != nil && !m.Expired(now) {
				if err != nil {
					t.Fatalf("step %d: update: %v", step, err)
				}
				m.Settings.IdleConnectionTimeoutSeconds = idle
			} else if !errors.Is(err, engine.ErrSessionNotFound) {
				t.Fatalf("step %d: update of a missing session: %v", step, err)
			}
		case op < 8: // delete
			victims := []string{pick(), pick()}
			want := 0
			for i, id := range victims {
				if m := model[id]; m != nil && !m.Expired(now) && !slices.Contains(victims[:i], id) {
					want++
				}
			}
			n, err := s.DeleteSessions(ctx, victims, now)
			if err != nil || n != want {
				t.Fatalf("step %d: DeleteSessions = %d, %v; want %d", step, n, err, want)
			}
			for _, id := range victims {
				delete(model, id)
			}
		default: // purge
			maxWant := 0
			for id, m := range model {
				if m.Expired(now) {
					maxWant++
					delete(model, id)
				}
			}
			n, err := s.PurgeExpired(ctx, now)
			if err != nil || n > maxWant { // caps may have removed some already
				t.Fatalf("step %d: PurgeExpired = %d, %v; want at most %d", step, n, err, maxWant)
			}
			for _, n := range s.sessions.all() {
				if r := s.slabs.at(n); !r.live(packTime(now)) {
					t.Fatalf("step %d: expired session %s left after PurgeExpired", step, r.id)
				}
			}
		}
		checkIndexes(t, s)
		if step%50 == 0 || step == steps-1 {
			compareLive(t, step, s, model, now)
		}
	}
}

// compareLive checks that the store's live sessions are the model's.
func compareLive(t *testing.T, step int, s *Store, model map[string]*engine.Session, now time.Time) {
	t.Helper()
	got, err := s.ListSessions(context.Background(), nil, now)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for id, m := range model {
		if !m.Expired(now) {
			want = append(want, id)
		}
	}
	slices.Sort(want)
	var gotIDs []string
	for _, g := range got {
		gotIDs = append(gotIDs, g.ID)
		m := model[g.ID]
		if m == nil || !g.LastAccessedAt.Equal(m.LastAccessedAt) || !g.LastActiveAt.Equal(m.LastActiveAt) ||
			g.Settings.IdleConnectionTimeoutSeconds != m.Settings.IdleConnectionTimeoutSeconds {
			t.Fatalf("step %d: session %s is %+v; model has %+v", step, g.ID, g, m)
		}
	}
	slices.Sort(gotIDs)
	if !slices.Equal(gotIDs, want) {
		t.Fatalf("step %d: live sessions %q; model has %q", step, gotIDs, want)
	}
}

// checkIndexes checks that every index agrees with the sessions map, and that the expiry
// heap is a heap whose entries point back at their records, are never later than their
// session's expiry, and cover every session that can expire; and that a record's expiry is
// exact, or a lower bound while it is marked behind.
func checkIndexes(t *testing.T, s *Store) {
	t.Helper()
	for i, e := range s.expiry {
		r := s.slabs.at(e.n)
		if int(r.heapIndex) != i {
			t.Fatalf("heap entry %d points to a record with index %d", i, r.heapIndex)
		}
		if e.at > r.expiresAt {
			t.Fatalf("heap entry %d at %d is later than the session's expiry %d", i, e.at, r.expiresAt)
		}
		if s.find(r.id) != e.n {
			t.Fatalf("heap entry %d holds a removed session %q", i, r.id)
		}
		if i > 0 && s.expiry[(i-1)/2].at > e.at {
			t.Fatalf("heap order broken at %d", i)
		}
	}
	for _, n := range s.sessions.all() {
		r := s.slabs.at(n)
		id := r.id
		if s.find(id) != n {
			t.Fatalf("session %s is not found by its id", id)
		}
		if r.expiresAt != never && r.heapIndex < 0 {
			t.Fatalf("session %s can expire but is not in the heap", id)
		}
		if exact := r.exactExpiry(); r.expiresAt > exact || !r.behind && r.expiresAt != exact {
			t.Fatalf("session %s: expiry %d (behind %v), exactly %d", id, r.expiresAt, r.behind, exact)
		}
		if s.findToken(r.tokenHash) != n {
			t.Fatalf("session %s is not found by its token hash", id)
		}
		if s.users.groups[r.user].members[r.userPos] != n {
			t.Fatalf("session %s is not at its position in its account's group", id)
		}
		if r.addr != 0 && s.addrs.groups[r.addr].members[r.addrPos] != n {
			t.Fatalf("session %s is not at its position in its address's group", id)
		}
	}
	members := 0
	for key, g := range s.users.numbers {
		if s.users.groups[g].key != key || len(s.users.groups[g].members) == 0 {
			t.Fatalf("account group %q is inconsistent", key)
		}
		members += len(s.users.groups[g].members)
	}
	free := map[slot]bool{}
	for _, n := range s.slabs.free {
		if free[n] || *s.slabs.at(n) != (record{}) {
			t.Fatalf("free slot %d is listed twice or not empty", n)
		}
		free[n] = true
	}
	inUse := max(int(s.slabs.used)-1, 0) - len(s.slabs.free) // slot 0 is never used
	if total := s.sessions.len(); members != total || s.byToken.len() != total || inUse != total {
		t.Fatalf("%d sessions, %d in account groups, %d in the token index, %d slots in use",
			total, members, s.byToken.len(), inUse)
	}
}
