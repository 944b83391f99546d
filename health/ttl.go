package health

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// TTL is a check whose status the application pushes (through the
// registrar's local API) instead of being probed. A status holds for TTL
// after it was pushed; after that the check is critical until the next
// push. It is safe for concurrent use.
type TTL struct {
	ttl time.Duration
	now func() time.Time

	// mu guards the fields below.
	mu      sync.Mutex
	status  Status
	output  string
	updated time.Time
}

// NewTTL returns a TTL check with the given validity; it starts critical
// until the first push.
func NewTTL(ttl time.Duration) *TTL { return &TTL{ttl: ttl, now: time.Now} }

// Update records a pushed status. An invalid status is an error and
// changes nothing.
func (t *TTL) Update(s Status, output string) error {
	if !s.Valid() {
		return fmt.Errorf("health: invalid status %q", s)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.status, t.output, t.updated = s, CleanOutput(output), t.now()
	return nil
}

// Check returns the last pushed status while it is fresh.
func (t *TTL) Check(context.Context) Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.updated.IsZero():
		return Result{Status: Critical, Output: "no status pushed yet"}
	case t.now().Sub(t.updated) > t.ttl:
		return Result{Status: Critical, Output: fmt.Sprintf("TTL expired: no status pushed for %s", t.ttl)}
	}
	return Result{Status: t.status, Output: t.output}
}
