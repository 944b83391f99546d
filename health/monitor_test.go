package health

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// sequence returns a Checker that returns results in order, then repeats
// the last one.
func sequence(results ...Result) Checker {
	var n atomic.Int64
	return CheckerFunc(func(context.Context) Result {
		i := min(int(n.Add(1))-1, len(results)-1)
		return results[i]
	})
}

// constant returns a Checker that always returns status, with the status
// as output.
func constant(status Status) Checker {
	return sequence(Result{status, string(status)})
}

// run runs m until the test ends and checks that Run returns nil.
func run(t *testing.T, m *Monitor) {
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := m.Run(ctx); err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// changed reports whether m has signalled a change, without blocking.
func changed(m *Monitor) bool {
	select {
	case <-m.Changed():
		return true
	default:
		return false
	}
}

func TestCheckDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Check
		want Check
	}{
		{
			name: "zero",
			in:   Check{},
			want: Check{Kind: Shallow, Interval: 10 * time.Second, Timeout: 5 * time.Second, Rise: 1, Fall: 1},
		},
		{
			name: "short interval",
			in:   Check{Kind: Deep, Interval: 2 * time.Second},
			want: Check{Kind: Deep, Interval: 2 * time.Second, Timeout: 2 * time.Second, Rise: 1, Fall: 1},
		},
		{
			name: "long interval",
			in:   Check{Interval: time.Minute, Rise: -1},
			want: Check{Kind: Shallow, Interval: time.Minute, Timeout: 5 * time.Second, Rise: 1, Fall: 1},
		},
		{
			name: "all set",
			in:   Check{Kind: Deep, Interval: time.Second, Timeout: 3 * time.Second, Rise: 2, Fall: 3},
			want: Check{Kind: Deep, Interval: time.Second, Timeout: 3 * time.Second, Rise: 2, Fall: 3},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.withDefaults(); got != tc.want {
				t.Errorf("%+v.withDefaults() = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestMonitorInitialState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		m := NewMonitor(MonitorOptions{Checks: []Check{
			{Name: "a", Checker: constant(Passing)},
			{Name: "b", Kind: Deep, Checker: constant(Passing)},
		}})
		want := []CheckState{
			{Name: "a", Kind: Shallow, Status: Critical, Output: "pending first check", Since: start},
			{Name: "b", Kind: Deep, Status: Critical, Output: "pending first check", Since: start},
		}
		if got := m.States(); !slices.Equal(got, want) {
			t.Errorf("States() = %+v, want %+v", got, want)
		}
		if shallow, deep := m.Aggregate(); shallow != Critical || deep != Critical {
			t.Errorf("Aggregate() = %q, %q; want critical, critical", shallow, deep)
		}
		if changed(m) {
			t.Errorf("Changed() signalled before Run")
		}
	})
}

func TestMonitorDamping(t *testing.T) {
	const (
		P = Passing
		W = Warning
		C = Critical
	)
	tests := []struct {
		name       string
		rise, fall int
		results    []Status
		want       []Status // damped status after each result
	}{
		{name: "first result passing", rise: 3, fall: 3, results: []Status{P}, want: []Status{P}},
		{name: "first result warning", rise: 3, fall: 3, results: []Status{W}, want: []Status{W}},
		{name: "no damping", results: []Status{P, W, P, C, C}, want: []Status{P, W, P, C, C}},
		{name: "rise", rise: 3, results: []Status{C, P, P, P}, want: []Status{C, C, C, P}},
		{name: "fall", fall: 2, results: []Status{P, C, C}, want: []Status{P, P, C}},
		{name: "fall interrupted", fall: 2, results: []Status{P, C, P, C, C}, want: []Status{P, P, P, P, C}},
		{name: "rise interrupted", rise: 2, results: []Status{C, P, C, P, P}, want: []Status{C, C, C, C, P}},
		{name: "fall to latest", fall: 2, results: []Status{P, W, C}, want: []Status{P, P, C}},
		{name: "partial rise", rise: 2, results: []Status{C, W, P}, want: []Status{C, C, P}},
		{name: "direction flips", rise: 2, fall: 2, results: []Status{W, C, P, P}, want: []Status{W, W, W, P}},
		{name: "fall only damps worsening", fall: 3, results: []Status{W, C, P}, want: []Status{W, W, P}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			results := make([]Result, len(tc.results))
			for i, s := range tc.results {
				results[i] = Result{s, string(s)}
			}
			synctest.Test(t, func(t *testing.T) {
				m := NewMonitor(MonitorOptions{
					Checks: []Check{{Name: "c", Checker: sequence(results...), Interval: time.Second, Rise: tc.rise, Fall: tc.fall}},
					Jitter: -1,
				})
				run(t, m)
				var got []Status
				for range tc.want {
					synctest.Wait()
					got = append(got, m.States()[0].Status)
					time.Sleep(time.Second)
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("damped statuses for %q = %q, want %q", tc.results, got, tc.want)
				}
			})
		})
	}
}

func TestMonitorChanged(t *testing.T) {
	type step struct {
		result      Result
		wantOutput  string
		wantStatus  Status
		wantChanged bool
		wantSince   time.Duration // since the start
	}
	steps := []step{
		{result: Result{Passing, "a"}, wantStatus: Passing, wantOutput: "a", wantChanged: true, wantSince: 0},
		{result: Result{Passing, "a"}, wantStatus: Passing, wantOutput: "a", wantChanged: false, wantSince: 0},
		{result: Result{Passing, "b"}, wantStatus: Passing, wantOutput: "b", wantChanged: true, wantSince: 0},
		{result: Result{Warning, "w1"}, wantStatus: Passing, wantOutput: "b", wantChanged: false, wantSince: 0},
		{result: Result{Warning, "w2"}, wantStatus: Warning, wantOutput: "w2", wantChanged: true, wantSince: 4 * time.Second},
		{result: Result{Warning, "w2"}, wantStatus: Warning, wantOutput: "w2", wantChanged: false, wantSince: 4 * time.Second},
		{result: Result{Passing, "\tp\n"}, wantStatus: Passing, wantOutput: "p", wantChanged: true, wantSince: 6 * time.Second},
	}
	results := make([]Result, len(steps))
	for i, s := range steps {
		results[i] = s.result
	}
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		m := NewMonitor(MonitorOptions{
			Checks: []Check{{Name: "c", Checker: sequence(results...), Interval: time.Second, Fall: 2}},
			Jitter: -1,
		})
		run(t, m)
		for i, s := range steps {
			synctest.Wait()
			got := m.States()[0]
			want := CheckState{Name: "c", Kind: Shallow, Status: s.wantStatus, Output: s.wantOutput, Since: start.Add(s.wantSince)}
			if got != want {
				t.Errorf("step %d: after %v, States()[0] = %+v, want %+v", i, s.result, got, want)
			}
			if got := changed(m); got != s.wantChanged {
				t.Errorf("step %d: after %v, changed = %t, want %t", i, s.result, got, s.wantChanged)
			}
			time.Sleep(time.Second)
		}
	})
}

func TestMonitorAggregate(t *testing.T) {
	tests := []struct {
		name                  string
		shallow, deep         []Status
		wantShallow, wantDeep Status
	}{
		{name: "no checks", wantShallow: Passing, wantDeep: Passing},
		{name: "all passing", shallow: []Status{Passing}, deep: []Status{Passing}, wantShallow: Passing, wantDeep: Passing},
		{name: "deep only", deep: []Status{Warning, Passing}, wantShallow: Passing, wantDeep: Warning},
		{name: "shallow only", shallow: []Status{Passing, Warning}, wantShallow: Warning, wantDeep: Warning},
		{
			name:    "mixed",
			shallow: []Status{Passing, Warning}, deep: []Status{Critical},
			wantShallow: Warning, wantDeep: Critical,
		},
		{
			name:    "shallow worse",
			shallow: []Status{Critical}, deep: []Status{Warning},
			wantShallow: Critical, wantDeep: Critical,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var checks []Check
			for i, s := range tc.shallow {
				checks = append(checks, Check{Name: fmt.Sprint("s", i), Checker: constant(s)})
			}
			for i, s := range tc.deep {
				checks = append(checks, Check{Name: fmt.Sprint("d", i), Kind: Deep, Checker: constant(s)})
			}
			synctest.Test(t, func(t *testing.T) {
				m := NewMonitor(MonitorOptions{Checks: checks})
				run(t, m)
				synctest.Wait()
				if shallow, deep := m.Aggregate(); shallow != tc.wantShallow || deep != tc.wantDeep {
					t.Errorf("Aggregate() = %q, %q; want %q, %q", shallow, deep, tc.wantShallow, tc.wantDeep)
				}
			})
		})
	}
}

// TestMonitorSchedule checks when probes start and how long they may take.
func TestMonitorSchedule(t *testing.T) {
	tests := []struct {
		name         string
		interval     time.Duration
		timeout      time.Duration
		block        bool            // the probe waits for its context
		wantStarts   []time.Duration // since Run
		wantDuration time.Duration   // of each probe
	}{
		{name: "default interval", wantStarts: []time.Duration{0, 10 * time.Second, 20 * time.Second}},
		{name: "interval", interval: 3 * time.Second, wantStarts: []time.Duration{0, 3 * time.Second, 6 * time.Second}},
		{
			name: "default timeout", block: true,
			wantStarts:   []time.Duration{0, 15 * time.Second, 30 * time.Second},
			wantDuration: 5 * time.Second,
		},
		{
			name: "timeout capped by interval", interval: 2 * time.Second, block: true,
			wantStarts:   []time.Duration{0, 4 * time.Second, 8 * time.Second},
			wantDuration: 2 * time.Second,
		},
		{
			name: "timeout", interval: 2 * time.Second, timeout: 7 * time.Second, block: true,
			wantStarts:   []time.Duration{0, 9 * time.Second, 18 * time.Second},
			wantDuration: 7 * time.Second,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var (
					mu        sync.Mutex
					starts    []time.Duration
					durations []time.Duration
				)
				start := time.Now()
				checker := CheckerFunc(func(ctx context.Context) Result {
					t0 := time.Now()
					mu.Lock()
					starts = append(starts, t0.Sub(start))
					mu.Unlock()
					if tc.block {
						<-ctx.Done()
					}
					mu.Lock()
					defer mu.Unlock()
					durations = append(durations, time.Since(t0))
					return Result{Passing, "ok"}
				})
				m := NewMonitor(MonitorOptions{
					Checks: []Check{{Name: "c", Checker: checker, Interval: tc.interval, Timeout: tc.timeout}},
					Jitter: -1,
				})
				run(t, m)
				time.Sleep(tc.wantStarts[len(tc.wantStarts)-1] + time.Second)
				synctest.Wait()
				mu.Lock()
				defer mu.Unlock()
				if !slices.Equal(starts, tc.wantStarts) {
					t.Errorf("probes started at %v, want %v", starts, tc.wantStarts)
				}
				for i, d := range durations {
					if d != tc.wantDuration {
						t.Errorf("probe %d took %v, want %v", i, d, tc.wantDuration)
					}
				}
			})
		})
	}
}

func TestMonitorJitter(t *testing.T) {
	tests := []struct {
		name     string
		jitter   float64
		min, max time.Duration
	}{
		{name: "default", jitter: 0, min: 9 * time.Second, max: 11 * time.Second},
		{name: "wide", jitter: 0.5, min: 5 * time.Second, max: 15 * time.Second},
		{name: "none", jitter: -1, min: 10 * time.Second, max: 10 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var (
					mu    sync.Mutex
					times []time.Time
				)
				checker := CheckerFunc(func(context.Context) Result {
					mu.Lock()
					defer mu.Unlock()
					times = append(times, time.Now())
					return Result{Passing, "ok"}
				})
				m := NewMonitor(MonitorOptions{
					Checks: []Check{{Name: "c", Checker: checker, Interval: 10 * time.Second}},
					Jitter: tc.jitter,
				})
				run(t, m)
				time.Sleep(time.Hour)
				synctest.Wait()
				mu.Lock()
				defer mu.Unlock()
				if len(times) < 3600/15 {
					t.Fatalf("%d probes in an hour, want at least %d", len(times), 3600/15)
				}
				gaps := make(map[time.Duration]bool)
				for i := 1; i < len(times); i++ {
					gap := times[i].Sub(times[i-1])
					gaps[gap] = true
					if gap < tc.min || gap > tc.max {
						t.Errorf("gap %d = %v, want between %v and %v", i, gap, tc.min, tc.max)
					}
				}
				if tc.min != tc.max && len(gaps) < 2 {
					t.Errorf("all gaps are %v, want them spread", times[1].Sub(times[0]))
				}
			})
		})
	}
}

func TestMonitorCleansResults(t *testing.T) {
	tests := []struct {
		name   string
		result Result
		want   Result
	}{
		{name: "output", result: Result{Warning, " slow\nreplica\t"}, want: Result{Warning, "slow replica"}},
		{name: "invalid status", result: Result{"ok", "fine\n"}, want: Result{Critical, `invalid status "ok": fine`}},
		{name: "empty status", result: Result{}, want: Result{Critical, `invalid status "":`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := NewMonitor(MonitorOptions{Checks: []Check{{Name: "c", Checker: sequence(tc.result)}}})
				run(t, m)
				synctest.Wait()
				s := m.States()[0]
				if got := (Result{s.Status, s.Output}); got != tc.want {
					t.Errorf("state after Check() = %v: %v, want %v", tc.result, got, tc.want)
				}
			})
		})
	}
}

func TestMonitorStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		checker := CheckerFunc(func(ctx context.Context) Result {
			calls.Add(1)
			<-ctx.Done()
			return Result{Passing, "stopped"} // must be dropped
		})
		m := NewMonitor(MonitorOptions{Checks: []Check{{Name: "c", Checker: checker}}})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		synctest.Wait()
		if n := calls.Load(); n != 1 {
			t.Fatalf("Check called %d times, want 1", n)
		}
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run() = %v, want nil", err)
			}
		default:
			t.Fatal("Run did not return after cancel")
		}
		if got := m.States()[0]; got.Status != Critical || got.Output != "pending first check" {
			t.Errorf("States()[0] = %+v, want the pending state", got)
		}
		if changed(m) {
			t.Error("Changed() signalled for a probe abandoned on stop")
		}
	})
}

func TestMonitorNoChecksRunsUntilDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMonitor(MonitorOptions{})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Run() = %v before cancel, want it to block", err)
		default:
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	})
}

func TestNewMonitorNilChecker(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewMonitor with a nil Checker did not panic")
		}
	}()
	NewMonitor(MonitorOptions{Checks: []Check{{Name: "c"}}})
}

// TestMonitorConcurrent runs a fast-changing check in real time while
// other goroutines read the state, for the race detector.
func TestMonitorConcurrent(t *testing.T) {
	var n atomic.Int64
	checker := CheckerFunc(func(context.Context) Result {
		return Result{Passing, fmt.Sprint(n.Add(1) % 2)}
	})
	m := NewMonitor(MonitorOptions{Checks: []Check{
		{Name: "a", Checker: checker, Interval: time.Millisecond},
		{Name: "b", Kind: Deep, Checker: checker, Interval: time.Millisecond},
	}})
	run(t, m)

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				_ = m.States()
				_, _ = m.Aggregate()
			}
		})
	}
	timeout := time.After(10 * time.Second)
	for range 20 {
		select {
		case <-m.Changed():
		case <-timeout:
			t.Fatal("timed out waiting for Changed")
		}
	}
	cancel()
	wg.Wait()
}
