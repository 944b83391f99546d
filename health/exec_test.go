package health

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/testutil"
)

// TestExecForkingCheckLeavesNothing runs a check that forks a long sleep
// into the background and exits, every 20ms: after ten intervals, and
// after the Monitor stops, no sleep is left.
func TestExecForkingCheckLeavesNothing(t *testing.T) {
	const sleep = "sleep\x00876.5432\x00"
	probes := make(chan struct{}, 100)
	m := NewMonitor(MonitorOptions{Jitter: -1, Checks: []Check{{Name: "fork", Interval: 20 * time.Millisecond, Timeout: 10 * time.Second,
		Checker: Exec{Argv: []string{"sh", "-c", "sleep 876.5432 & echo ok"}}}},
		OnProbe: func(string, Result, time.Duration) {
			select {
			case probes <- struct{}{}:
			default:
			}
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	timeout := time.After(30 * time.Second)
	for range 10 {
		select {
		case <-probes:
		case <-timeout:
			t.Fatal("fewer than 10 probes in 30s")
		}
	}
	after10 := testutil.CountProcs(t, sleep)
	cancel()
	<-done
	afterStop := testutil.CountProcs(t, sleep)
	t.Logf("background sleeps left: %d after 10 intervals, %d after the monitor stopped", after10, afterStop)
	if after10 != 0 || afterStop != 0 {
		t.Errorf("background sleeps left: %d after 10 intervals, %d after stop; want 0 and 0", after10, afterStop)
	}
	if st := m.States()[0]; st.Status != Passing || st.Output != "ok" {
		t.Errorf("state = %+v, want passing with output ok", st)
	}
}

// TestExecCannotStartLoggedOnce: a check whose command cannot start is
// logged once with the reason, however many times it is probed.
func TestExecCannotStartLoggedOnce(t *testing.T) {
	var logs testutil.Buffer
	probes := make(chan Result, 100)
	m := NewMonitor(MonitorOptions{Jitter: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Checks: []Check{{Name: "missing", Interval: 10 * time.Millisecond, Timeout: 10 * time.Second,
			Checker: Exec{Argv: []string{"/nonexistent/check"}}}},
		OnProbe: func(_ string, r Result, _ time.Duration) {
			select {
			case probes <- r:
			default:
			}
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	for range 5 {
		select {
		case <-probes:
		case <-time.After(30 * time.Second):
			t.Fatal("fewer than 5 probes in 30s")
		}
	}
	cancel()
	<-done
	out := logs.String()
	if n := strings.Count(out, "check command cannot start"); n != 1 || !strings.Contains(out, "no such file or directory") {
		t.Errorf("logged %d times, want once with the reason:\n%s", n, out)
	}
}
