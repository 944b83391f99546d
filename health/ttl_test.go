package health

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

var _ Checker = (*TTL)(nil)

func TestTTL(t *testing.T) {
	const ttl = 30 * time.Second
	var (
		notYet  = Result{Critical, "no status pushed yet"}
		expired = Result{Critical, "TTL expired: no status pushed for 30s"}
	)
	// A step advances the fake clock by sleep, then pushes status and
	// output if push is set, then calls Check.
	type step struct {
		sleep   time.Duration
		push    bool
		status  Status
		output  string
		wantErr string // "" means Update returns nil
		want    Result
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "before any push",
			steps: []step{
				{want: notYet},
				{sleep: time.Hour, want: notYet},
			},
		},
		{
			name:  "passing",
			steps: []step{{push: true, status: Passing, output: "ok", want: Result{Passing, "ok"}}},
		},
		{
			name:  "warning with output cleaned",
			steps: []step{{push: true, status: Warning, output: " slow\ndisk\t", want: Result{Warning, "slow disk"}}},
		},
		{
			name:  "critical",
			steps: []step{{push: true, status: Critical, output: "db down", want: Result{Critical, "db down"}}},
		},
		{
			name: "long output cut",
			steps: []step{{
				push: true, status: Passing, output: strings.Repeat("x", 2*MaxOutput),
				want: Result{Passing, strings.Repeat("x", MaxOutput-len("…")) + "…"},
			}},
		},
		{
			name:  "empty output",
			steps: []step{{push: true, status: Passing, want: Result{Passing, ""}}},
		},
		{
			name: "expires just after ttl",
			steps: []step{
				{push: true, status: Passing, output: "ok", want: Result{Passing, "ok"}},
				{sleep: ttl - time.Nanosecond, want: Result{Passing, "ok"}},
				{sleep: time.Nanosecond, want: Result{Passing, "ok"}}, // exactly ttl
				{sleep: time.Nanosecond, want: expired},
				{sleep: time.Hour, want: expired},
			},
		},
		{
			name: "push before expiry extends",
			steps: []step{
				{push: true, status: Passing, output: "ok", want: Result{Passing, "ok"}},
				{sleep: 20 * time.Second, push: true, status: Passing, output: "ok", want: Result{Passing, "ok"}},
				{sleep: 20 * time.Second, want: Result{Passing, "ok"}},
				{sleep: ttl - 20*time.Second, want: Result{Passing, "ok"}},
				{sleep: time.Nanosecond, want: expired},
			},
		},
		{
			name: "push after expiry",
			steps: []step{
				{push: true, status: Passing, output: "ok", want: Result{Passing, "ok"}},
				{sleep: ttl + time.Second, want: expired},
				{push: true, status: Warning, output: "back, slowly", want: Result{Warning, "back, slowly"}},
				{sleep: ttl, want: Result{Warning, "back, slowly"}},
				{sleep: time.Nanosecond, want: expired},
			},
		},
		{
			name: "invalid status before any push",
			steps: []step{
				{push: true, status: "ok", output: "fine", wantErr: `health: invalid status "ok"`, want: notYet},
				{push: true, status: "", output: "fine", wantErr: `health: invalid status ""`, want: notYet},
			},
		},
		{
			name: "invalid status changes nothing",
			steps: []step{
				{push: true, status: Warning, output: "slow", want: Result{Warning, "slow"}},
				{
					sleep: 10 * time.Second, push: true, status: "Passing", output: "fast",
					wantErr: `health: invalid status "Passing"`, want: Result{Warning, "slow"},
				},
				// The invalid push did not refresh the TTL either.
				{sleep: ttl - 10*time.Second, want: Result{Warning, "slow"}},
				{sleep: time.Nanosecond, want: expired},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				c := NewTTL(ttl)
				for i, s := range tc.steps {
					time.Sleep(s.sleep)
					at := time.Since(start)
					if s.push {
						err := c.Update(s.status, s.output)
						if got := errText(err); got != s.wantErr {
							t.Errorf("step %d at %v: Update(%q, %q) error = %q, want %q", i, at, s.status, s.output, got, s.wantErr)
						}
					}
					if got := c.Check(t.Context()); got != s.want {
						t.Errorf("step %d at %v: Check() = %v, want %v", i, at, got, s.want)
					}
				}
			})
		})
	}
}

// errText returns err's message, or "" if err is nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestTTLInjectedClock checks that TTL reads time only through its clock.
func TestTTLInjectedClock(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	c := NewTTL(time.Minute)
	c.now = func() time.Time { return now }
	if err := c.Update(Passing, "ok"); err != nil {
		t.Fatalf("Update(passing, ok) = %v, want nil", err)
	}
	now = now.Add(time.Minute)
	if got, want := c.Check(t.Context()), (Result{Passing, "ok"}); got != want {
		t.Errorf("Check() after 1m = %v, want %v", got, want)
	}
	now = now.Add(time.Nanosecond)
	if got, want := c.Check(t.Context()), (Result{Critical, "TTL expired: no status pushed for 1m0s"}); got != want {
		t.Errorf("Check() after 1m0.000000001s = %v, want %v", got, want)
	}
}

// TestTTLConcurrent pushes and checks from many goroutines, for the race
// detector, and checks that a status and its output are always read
// together.
func TestTTLConcurrent(t *testing.T) {
	c := NewTTL(time.Hour)
	statuses := []Status{Passing, Warning, Critical}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				s := statuses[(w+i)%len(statuses)]
				if err := c.Update(s, fmt.Sprintf("%s %d", s, i)); err != nil {
					t.Errorf("Update(%q) = %v, want nil", s, err)
					return
				}
			}
		})
		wg.Go(func() {
			for range 500 {
				r := c.Check(t.Context())
				if r == (Result{Critical, "no status pushed yet"}) {
					continue
				}
				if !strings.HasPrefix(r.Output, string(r.Status)+" ") {
					t.Errorf("Check() = %v, want an output that starts with its status", r)
					return
				}
			}
		})
	}
	wg.Wait()
}
