package api

import (
	"sync"
	"time"
)

// Clock hands out UTC timestamps truncated to microseconds that strictly
// increase within one process, so two requests served by one API instance
// never share a timestamp even when they arrive in the same microsecond or
// the wall clock steps back. Instances on different hosts may still issue
// equal timestamps; the event id is the unique key.
type Clock struct {
	mu   sync.Mutex
	last time.Time
	// Now reads the wall clock; nil means time.Now.
	Now func() time.Time
}

// Next returns a timestamp later than every one returned before.
func (c *Clock) Next() time.Time {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	t := now().UTC().Truncate(time.Microsecond)

	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.After(c.last) {
		t = c.last.Add(time.Microsecond)
	}
	c.last = t
	return t
}
