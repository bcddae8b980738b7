package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
)

var capTests = []test{
	{"CapsExact", false, testCapsExact},
	{"CapsIgnoreExpired", false, testCapsIgnoreExpired},
	{"CapsZero", false, testCapsZero},
}

// capCase describes one cap and sessions that compete for it.
type capCase struct {
	limit string
	caps  func(max int) engine.Caps
	// competitor returns the i-th session counted against the cap.
	competitor func(i int) *engine.Session
	// bystander returns the i-th session that must not count against it (nil: all count).
	bystander func(i int) *engine.Session
}

// generous is far above every count in these tests.
const generous = 1000

var capCases = []capCase{
	{
		limit: engine.LimitMaxSessions,
		caps: func(max int) engine.Caps {
			return engine.Caps{MaxSessions: max, MaxSessionsPerAddress: generous, MaxSessionsPerUser: generous}
		},
		competitor: func(i int) *engine.Session {
			s := newSession(fmt.Sprintf("user%d", i%4))
			s.ClientAddress = fmt.Sprintf("203.0.113.%d", i%200)
			return s
		},
	},
	{
		limit: engine.LimitMaxSessionsPerAddress,
		caps: func(max int) engine.Caps {
			return engine.Caps{MaxSessions: generous, MaxSessionsPerAddress: max, MaxSessionsPerUser: generous}
		},
		competitor: func(i int) *engine.Session {
			s := newSession(fmt.Sprintf("user%d", i%4))
			s.ClientAddress = "203.0.113.7"
			return s
		},
		bystander: func(i int) *engine.Session {
			s := newSession(fmt.Sprintf("user%d", i%4))
			s.ClientAddress = "203.0.113.8"
			return s
		},
	},
	{
		limit: engine.LimitMaxSessionsPerUser,
		caps: func(max int) engine.Caps {
			return engine.Caps{MaxSessions: generous, MaxSessionsPerAddress: generous, MaxSessionsPerUser: max}
		},
		competitor: func(i int) *engine.Session {
			s := newSession("User0") // same account as user0, whatever the case
			s.ClientAddress = fmt.Sprintf("203.0.113.%d", i%200)
			return s
		},
		bystander: func(i int) *engine.Session {
			s := newSession("user1")
			s.ClientAddress = fmt.Sprintf("203.0.113.%d", i%200)
			return s
		},
	},
}

// capAccounts creates the accounts the cap cases use.
func capAccounts(h *harness) {
	for i := range 4 {
		h.createAccounts(newAccount(fmt.Sprintf("user%d", i)))
	}
}

// countCompetitors returns how many of sessions are stored and live at at.
func countCompetitors(h *harness, sessions []*engine.Session, at time.Time) int {
	n := 0
	for _, s := range sessions {
		if _, err := h.s.SessionByID(h.ctx, s.ID, at); err == nil {
			n++
		}
	}
	return n
}

// Each cap is exact under contention: 64 goroutines, cap 10, exactly 10 succeed.
func testCapsExact(t *testing.T, h *harness) {
	const goroutines, max = 64, 10
	for _, tc := range capCases {
		t.Run(tc.limit, func(t *testing.T) {
			h := h.fresh(t)
			capAccounts(h)
			if tc.bystander != nil {
				for i := range 2 * max {
					h.insert(tc.bystander(i))
				}
			}
			competitors := make([]*engine.Session, goroutines)
			for i := range competitors {
				competitors[i] = tc.competitor(i)
			}
			errs := parallel(goroutines, func(i int) error {
				return h.s.InsertSession(h.ctx, competitors[i], tc.caps(max), now)
			})
			succeeded := 0
			for i, err := range errs {
				if err == nil {
					succeeded++
					continue
				}
				if le := limitOf(err); le == nil || le.Limit != tc.limit || le.Max != max {
					t.Errorf("insert %d: %v; want a *LimitError{%s, %d}", i, err, tc.limit, max)
				}
			}
			if succeeded != max {
				t.Errorf("%d inserts succeeded; want exactly %d", succeeded, max)
			}
			if n := countCompetitors(h, competitors, now); n != max {
				t.Errorf("%d competing sessions are stored; want %d (a refused insert must store nothing)", n, max)
			}
		})
	}
}

// Expired sessions do not count against caps; a session kept alive by Touch does.
func testCapsIgnoreExpired(t *testing.T, h *harness) {
	const max = 3
	for _, tc := range capCases {
		t.Run(tc.limit, func(t *testing.T) {
			h := h.fresh(t)
			capAccounts(h)
			if tc.bystander != nil {
				for i := range 2 * max {
					h.insert(tc.bystander(i))
				}
			}
			var first []*engine.Session
			for i := range max {
				s := tc.competitor(i) // idle timeout: ends at now+30m unless used
				if err := h.s.InsertSession(h.ctx, s, tc.caps(max), now); err != nil {
					t.Fatalf("insert %d: %v", i, err)
				}
				first = append(first, s)
			}
			if le := limitOf(h.s.InsertSession(h.ctx, tc.competitor(max), tc.caps(max), now)); le == nil || le.Limit != tc.limit {
				t.Fatalf("insert over the cap: want a *LimitError for %s, got %v", tc.limit, le)
			}
			// Keep one of them alive past its idle timeout; the others expire at +30m.
			if err := h.s.Touch(h.ctx, first[0].ID, now.Add(20*time.Minute), false); err != nil {
				t.Fatal(err)
			}
			later := now.Add(31 * time.Minute)
			var second []*engine.Session
			for i := range max - 1 {
				s := tc.competitor(max + 1 + i)
				s.CreatedAt, s.LastAccessedAt, s.LastActiveAt = later, later, later
				if err := h.s.InsertSession(h.ctx, s, tc.caps(max), later); err != nil {
					t.Fatalf("insert %d after the others expired: %v", i, err)
				}
				second = append(second, s)
			}
			extra := tc.competitor(2 * max)
			extra.CreatedAt, extra.LastAccessedAt, extra.LastActiveAt = later, later, later
			if le := limitOf(h.s.InsertSession(h.ctx, extra, tc.caps(max), later)); le == nil || le.Limit != tc.limit || le.Max != max {
				t.Errorf("insert over the cap with a touched session alive: want a *LimitError{%s, %d}, got %v", tc.limit, max, le)
			}
			if n := countCompetitors(h, append(first, second...), later); n != max {
				t.Errorf("%d live competing sessions; want %d", n, max)
			}
		})
	}
}

// A cap of 0 is no cap.
func testCapsZero(t *testing.T, h *harness) {
	h.createAccounts(newAccount("u"))
	for i := range 50 {
		if err := h.s.InsertSession(h.ctx, newSession("u"), engine.Caps{}, now); err != nil {
			t.Fatalf("insert %d with no caps: %v", i, err)
		}
	}
	list, _ := h.s.ListSessions(h.ctx, []string{"u"}, now)
	if len(list) != 50 {
		t.Errorf("%d sessions stored; want 50", len(list))
	}
}
