package enginetest

import (
	"sync"
	"time"

	"github.com/sessiond/sessiond/engine"
)

// Clock is a settable engine.Clock for expiry tests without sleeping. It is safe for
// concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

var _ engine.Clock = (*Clock)(nil)

// NewClock returns a Clock that stands at start until it is advanced.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
