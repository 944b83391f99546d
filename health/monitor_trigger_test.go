package health

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// counting returns a Checker that counts its calls in n and passes.
func counting(n *atomic.Int64) Checker {
	return CheckerFunc(func(context.Context) Result {
		n.Add(1)
		return Result{Passing, "ok"}
	})
}

func TestMonitorTrigger(t *testing.T) {
	tests := []struct {
		name      string
		trigger   string
		wantFound bool
		wantCalls int64 // after the first probe and the trigger
	}{
		{name: "known check", trigger: "c", wantFound: true, wantCalls: 2},
		{name: "unknown check", trigger: "nope", wantFound: false, wantCalls: 1},
		{name: "empty name", trigger: "", wantFound: false, wantCalls: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var calls, other atomic.Int64
				m := NewMonitor(MonitorOptions{
					Checks: []Check{
						{Name: "c", Checker: counting(&calls), Interval: time.Hour},
						{Name: "other", Checker: counting(&other), Interval: time.Hour},
					},
					Jitter: -1,
				})
				run(t, m)
				synctest.Wait()
				if n := calls.Load(); n != 1 {
					t.Fatalf("Check called %d times after Run, want 1", n)
				}
				start := time.Now()
				if got := m.Trigger(tc.trigger); got != tc.wantFound {
					t.Errorf("Trigger(%q) = %t, want %t", tc.trigger, got, tc.wantFound)
				}
				synctest.Wait()
				if n := calls.Load(); n != tc.wantCalls {
					t.Errorf("after Trigger(%q), Check called %d times, want %d", tc.trigger, n, tc.wantCalls)
				}
				if n := other.Load(); n != 1 {
					t.Errorf("after Trigger(%q), the other check was called %d times, want 1", tc.trigger, n)
				}
				if d := time.Since(start); d != 0 {
					t.Errorf("Trigger(%q) took %v of fake time, want 0", tc.trigger, d)
				}
			})
		})
	}
}

// TestMonitorTriggerRestartsInterval checks that the next probe after a
// triggered one waits a full Interval.
func TestMonitorTriggerRestartsInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		m := NewMonitor(MonitorOptions{
			Checks: []Check{{Name: "c", Checker: counting(&calls), Interval: time.Hour}},
			Jitter: -1,
		})
		run(t, m)
		steps := []struct {
			sleep     time.Duration
			trigger   bool
			wantCalls int64
		}{
			{wantCalls: 1},
			{sleep: 30 * time.Minute, trigger: true, wantCalls: 2},
			{sleep: 30 * time.Minute, wantCalls: 2},                 // the original 1h mark
			{sleep: 30*time.Minute - time.Nanosecond, wantCalls: 2}, // just before 1h after the trigger
			{sleep: time.Nanosecond, wantCalls: 3},                  // 1h after the trigger
			{sleep: time.Hour, wantCalls: 4},                        // back on the interval
			{sleep: time.Minute, trigger: true, wantCalls: 5},       // again, off the interval
			{sleep: time.Hour - time.Nanosecond, wantCalls: 5},      // just before 1h after it
			{sleep: time.Nanosecond, wantCalls: 6},                  // 1h after it
		}
		start := time.Now()
		for i, s := range steps {
			time.Sleep(s.sleep)
			if s.trigger && !m.Trigger("c") {
				t.Fatalf("step %d: Trigger(%q) = false, want true", i, "c")
			}
			synctest.Wait()
			if n := calls.Load(); n != s.wantCalls {
				t.Errorf("step %d at %v: Check called %d times, want %d", i, time.Since(start), n, s.wantCalls)
			}
		}
	})
}

// TestMonitorTriggerCoalesces checks that Triggers during a probe never
// block and add up to one more probe.
func TestMonitorTriggerCoalesces(t *testing.T) {
	tests := []struct {
		name     string
		triggers int
		want     int64 // probes: the first, the one held, and any after it
	}{
		{name: "none", triggers: 0, want: 2},
		{name: "one", triggers: 1, want: 3},
		{name: "many", triggers: 1000, want: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var calls atomic.Int64
				held := make(chan struct{}) // the second probe waits for it
				checker := CheckerFunc(func(ctx context.Context) Result {
					if calls.Add(1) == 2 {
						select {
						case <-held:
						case <-ctx.Done():
						}
					}
					return Result{Passing, "ok"}
				})
				m := NewMonitor(MonitorOptions{
					Checks: []Check{{Name: "c", Checker: checker, Interval: time.Hour, Timeout: time.Hour}},
					Jitter: -1,
				})
				run(t, m)
				synctest.Wait() // first probe done
				m.Trigger("c")
				synctest.Wait() // second probe held
				if n := calls.Load(); n != 2 {
					t.Fatalf("Check called %d times, want 2 with the second in progress", n)
				}
				for i := range tc.triggers {
					if !m.Trigger("c") {
						t.Fatalf("Trigger %d = false, want true", i)
					}
				}
				close(held)
				synctest.Wait()
				if n := calls.Load(); n != tc.want {
					t.Errorf("after %d Triggers during a probe, Check called %d times, want %d", tc.triggers, n, tc.want)
				}
			})
		})
	}
}

// TestMonitorTriggerTTL checks that a pushed TTL status reaches the
// Monitor at once through Trigger, without waiting for the interval.
func TestMonitorTriggerTTL(t *testing.T) {
	const ttl = 30 * time.Second
	steps := []struct {
		name        string
		sleep       time.Duration
		push        bool
		status      Status
		output      string
		trigger     bool
		want        Result
		wantChanged bool
	}{
		{name: "start", want: Result{Critical, "no status pushed yet"}, wantChanged: true},
		{name: "push without trigger", push: true, status: Passing, output: "up", want: Result{Critical, "no status pushed yet"}},
		{name: "trigger", trigger: true, want: Result{Passing, "up"}, wantChanged: true},
		{name: "push and trigger", sleep: 10 * time.Second, push: true, status: Warning, output: "slow\n", trigger: true, want: Result{Warning, "slow"}, wantChanged: true},
		{name: "same again", sleep: 10 * time.Second, push: true, status: Warning, output: "slow", trigger: true, want: Result{Warning, "slow"}},
		{name: "expired, not probed yet", sleep: ttl + time.Second, want: Result{Warning, "slow"}},
		{name: "expired and triggered", trigger: true, want: Result{Critical, "TTL expired: no status pushed for 30s"}, wantChanged: true},
		{name: "back", push: true, status: Passing, output: "up", trigger: true, want: Result{Passing, "up"}, wantChanged: true},
	}
	synctest.Test(t, func(t *testing.T) {
		c := NewTTL(ttl)
		m := NewMonitor(MonitorOptions{
			Checks: []Check{{Name: "app", Checker: c, Interval: time.Hour}},
			Jitter: -1,
		})
		run(t, m)
		for _, s := range steps {
			time.Sleep(s.sleep)
			if s.push {
				if err := c.Update(s.status, s.output); err != nil {
					t.Fatalf("%s: Update(%q, %q) = %v, want nil", s.name, s.status, s.output, err)
				}
			}
			if s.trigger && !m.Trigger("app") {
				t.Fatalf("%s: Trigger(%q) = false, want true", s.name, "app")
			}
			synctest.Wait()
			st := m.States()[0]
			if got := (Result{st.Status, st.Output}); got != s.want {
				t.Errorf("%s: Monitor state = %v, want %v", s.name, got, s.want)
			}
			if got := changed(m); got != s.wantChanged {
				t.Errorf("%s: changed = %t, want %t", s.name, got, s.wantChanged)
			}
		}
	})
}

func TestMonitorPending(t *testing.T) {
	tests := []struct {
		name         string
		checks       []Check
		held         []bool // per check: its first probe waits for release
		wantBefore   bool   // before Run
		wantStarted  bool   // once every probe that is not held has finished
		wantReleased bool   // once every first probe has finished
	}{
		{name: "no checks"},
		{
			name:       "one quick check",
			checks:     []Check{{Name: "a", Checker: constant(Passing)}},
			held:       []bool{false},
			wantBefore: true,
		},
		{
			name:        "one slow check",
			checks:      []Check{{Name: "a", Checker: constant(Passing)}},
			held:        []bool{true},
			wantBefore:  true,
			wantStarted: true,
		},
		{
			name:        "quick and slow",
			checks:      []Check{{Name: "a", Checker: constant(Passing)}, {Name: "b", Kind: Deep, Checker: constant(Warning)}},
			held:        []bool{false, true},
			wantBefore:  true,
			wantStarted: true,
		},
		{
			name: "damped first result",
			// The first result counts even if Rise and Fall would damp a
			// later one.
			checks:     []Check{{Name: "a", Checker: constant(Passing), Rise: 3, Fall: 3}},
			held:       []bool{false},
			wantBefore: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				checks := make([]Check, len(tc.checks))
				for i, c := range tc.checks {
					inner, held := c.Checker, tc.held[i]
					var calls atomic.Int64
					c.Checker = CheckerFunc(func(ctx context.Context) Result {
						if held && calls.Add(1) == 1 {
							select {
							case <-release:
							case <-ctx.Done():
							}
						}
						return inner.Check(ctx)
					})
					c.Interval, c.Timeout = time.Hour, time.Hour
					checks[i] = c
				}
				m := NewMonitor(MonitorOptions{Checks: checks, Jitter: -1})
				if got := m.Pending(); got != tc.wantBefore {
					t.Errorf("Pending() before Run = %t, want %t", got, tc.wantBefore)
				}
				run(t, m)
				synctest.Wait()
				if got := m.Pending(); got != tc.wantStarted {
					t.Errorf("Pending() with held probes in progress = %t, want %t", got, tc.wantStarted)
				}
				close(release)
				synctest.Wait()
				if got := m.Pending(); got != tc.wantReleased {
					t.Errorf("Pending() after every first probe = %t, want %t", got, tc.wantReleased)
				}
			})
		})
	}
}

// TestMonitorPendingAfterStop checks that a first probe abandoned on stop
// leaves the check pending.
func TestMonitorPendingAfterStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMonitor(MonitorOptions{Checks: []Check{{
			Name: "c",
			Checker: CheckerFunc(func(ctx context.Context) Result {
				<-ctx.Done()
				return Result{Passing, "stopped"}
			}),
		}}})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
		if !m.Pending() {
			t.Error("Pending() = false after the first probe was abandoned, want true")
		}
	})
}
