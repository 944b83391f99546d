package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Defaults for Check fields left at zero.
const (
	DefaultInterval   = 10 * time.Second
	DefaultMaxTimeout = 5 * time.Second
)

// pendingOutput is the output of a check that has not finished a probe yet.
const pendingOutput = "pending first check"

// Check is one configured check.
type Check struct {
	Name    string
	Kind    Kind    // "" means Shallow; anything but Shallow counts as Deep
	Checker Checker // must not be nil

	// Interval is the pause between the end of one probe and the start of
	// the next; 0 means DefaultInterval.
	Interval time.Duration
	// Timeout bounds one probe through its context; 0 means the smaller of
	// Interval and DefaultMaxTimeout.
	Timeout time.Duration
	// Rise is how many consecutive better results it takes to improve the
	// status, and Fall how many consecutive worse ones to worsen it.
	// Values below 1 mean 1.
	Rise, Fall int
}

// withDefaults returns c with its zero fields filled in.
func (c Check) withDefaults() Check {
	if c.Kind == "" {
		c.Kind = Shallow
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = min(c.Interval, DefaultMaxTimeout)
	}
	c.Rise = max(c.Rise, 1)
	c.Fall = max(c.Fall, 1)
	return c
}

// CheckState is the current damped state of one check.
type CheckState struct {
	Name   string
	Kind   Kind
	Status Status
	Output string
	Since  time.Time // when Status last changed
}

// MonitorOptions configure a Monitor.
type MonitorOptions struct {
	Checks []Check
	Logger *slog.Logger // nil discards logs
	// Jitter spreads probes: each pause is Interval ± Jitter×Interval,
	// chosen at random. 0 means 0.1; a negative value means no jitter.
	Jitter float64
	// OnProbe, if set, is called after every probe with its raw (undamped)
	// result and duration, for metrics. It must not block.
	OnProbe func(check string, r Result, d time.Duration)
}

// Monitor runs checks on their intervals and keeps their damped states.
//
// A status change needs Rise consecutive better results or Fall consecutive
// worse ones (compared with the current status); the most recent of them
// becomes the new status and output. A result equal to the current status
// resets the count and updates the output at once. The first result of each
// check is taken as is.
//
// All methods are safe for concurrent use.
type Monitor struct {
	checks  []Check // with defaults; read-only after NewMonitor
	logger  *slog.Logger
	jitter  float64
	changed chan struct{}
	kick    []chan struct{} // per check, 1-buffered: probe now
	onProbe func(check string, r Result, d time.Duration)

	// mu guards states.
	mu     sync.Mutex
	states []checkState
}

// checkState is the damping state of one check.
type checkState struct {
	CheckState
	probed bool // a real result has been recorded
	// startLogged: the check's command could not be started, and that
	// was logged; cleared once it starts again.
	startLogged bool
	streak      int // consecutive results in direction
	// direction is +1 while results are better than Status, -1 while they
	// are worse, 0 while they equal it.
	direction int
}

// NewMonitor returns a Monitor for opts.Checks. Every check starts Critical
// with output "pending first check" until its first probe finishes.
// NewMonitor panics if a check has a nil Checker.
func NewMonitor(opts MonitorOptions) *Monitor {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	jitter := opts.Jitter
	switch {
	case jitter == 0:
		jitter = 0.1
	case jitter < 0:
		jitter = 0
	}
	m := &Monitor{
		checks:  make([]Check, len(opts.Checks)),
		logger:  logger.With("component", "health"),
		jitter:  jitter,
		changed: make(chan struct{}, 1),
		states:  make([]checkState, len(opts.Checks)),
		kick:    make([]chan struct{}, len(opts.Checks)),
		onProbe: opts.OnProbe,
	}
	now := time.Now()
	for i, c := range opts.Checks {
		if c.Checker == nil {
			panic(fmt.Sprintf("health: check %q has a nil Checker", c.Name))
		}
		c = c.withDefaults()
		m.checks[i] = c
		m.kick[i] = make(chan struct{}, 1)
		m.states[i].CheckState = CheckState{
			Name:   c.Name,
			Kind:   c.Kind,
			Status: Critical,
			Output: pendingOutput,
			Since:  now,
		}
	}
	return m
}

// Run probes every check at once and then after every Interval (± jitter),
// each check in its own goroutine, until ctx is done. It returns nil once
// all of those goroutines have exited; a probe in flight is abandoned
// through its context and its result dropped. Call Run at most once.
func (m *Monitor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := range m.checks {
		wg.Go(func() { m.loop(ctx, i) })
	}
	<-ctx.Done() // block even with no checks
	wg.Wait()
	return nil
}

// loop probes check i until ctx is done.
func (m *Monitor) loop(ctx context.Context, i int) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick[i]:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		m.probe(ctx, i)
		t.Reset(m.pause(m.checks[i].Interval))
	}
}

// pause returns d with jitter applied.
func (m *Monitor) pause(d time.Duration) time.Duration {
	if m.jitter == 0 {
		return d
	}
	f := 1 + m.jitter*(2*rand.Float64()-1)
	return max(time.Duration(float64(d)*f), 0)
}

// probe runs check i once and records its result.
func (m *Monitor) probe(ctx context.Context, i int) {
	c := m.checks[i]
	pctx, cancel := context.WithTimeout(ctx, c.Timeout)
	t0 := time.Now()
	r := c.Checker.Check(pctx)
	took := time.Since(t0)
	timedOut := errors.Is(pctx.Err(), context.DeadlineExceeded)
	cancel()
	if ctx.Err() != nil {
		return // stopping: the result says nothing about the target
	}
	if timedOut && r.Status == Critical {
		// The same words every time, however late the machine ran.
		r.Output = "timeout after " + c.Timeout.String()
	}
	r.Output = CleanOutput(r.Output)
	if !r.Status.Valid() {
		r = Result{Status: Critical, Output: CleanOutput(fmt.Sprintf("invalid status %q: %s", r.Status, r.Output))}
	}
	m.logger.Debug("check result", "check", c.Name, "status", r.Status, "output", r.Output)
	if m.firstStartFailure(i, r) {
		m.logger.Warn("check command cannot start; the check stays critical until it can", "check", c.Name, "err", r.Output)
	}
	if m.onProbe != nil {
		m.onProbe(c.Name, r, took)
	}
	prev, cur := m.record(i, r)
	if cur.Status != prev.Status {
		m.logger.Info("check status changed", "check", c.Name,
			"status", cur.Status, "previous", prev.Status, "output", cur.Output)
	}
	if cur.Status != prev.Status || cur.Output != prev.Output {
		select {
		case m.changed <- struct{}{}:
		default:
		}
	}
}

// firstStartFailure reports whether r says check i's command could not
// start while the previous probe's could: logged once, not every interval.
func (m *Monitor) firstStartFailure(i int, r Result) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.states[i]
	notStarted := strings.HasPrefix(r.Output, cannotStart)
	first := notStarted && !s.startLogged
	s.startLogged = notStarted
	return first
}

// record applies r to the damped state of check i and returns that state
// before and after.
func (m *Monitor) record(i int, r Result) (prev, cur CheckState) {
	c := m.checks[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.states[i]
	prev = s.CheckState

	dir := 0
	switch a, b := r.Status.Rank(), s.Status.Rank(); {
	case a < b:
		dir = 1
	case a > b:
		dir = -1
	}
	if dir != 0 && dir == s.direction {
		s.streak++
	} else {
		s.direction, s.streak = dir, 1
	}
	need := c.Fall
	if dir > 0 {
		need = c.Rise
	}
	if s.probed && dir != 0 && s.streak < need {
		return prev, s.CheckState // a change, not yet confirmed
	}
	s.probed = true
	s.direction, s.streak = 0, 0
	s.Output = r.Output
	if r.Status != s.Status {
		s.Status = r.Status
		s.Since = time.Now()
	}
	return prev, s.CheckState
}

// States returns the current state of every check, in configured order.
func (m *Monitor) States() []CheckState {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]CheckState, len(m.states))
	for i, s := range m.states {
		out[i] = s.CheckState
	}
	return out
}

// Changed returns a channel that receives a value whenever the Status or
// Output of any check changes. It has a buffer of one and sends never block,
// so bursts coalesce: after a receive, call States or Aggregate to read the
// latest state. The Monitor never closes the channel.
func (m *Monitor) Changed() <-chan struct{} { return m.changed }

// Aggregate returns the worst status of the shallow checks, and the worst of
// all checks. Either is Passing if there are no such checks.
func (m *Monitor) Aggregate() (shallow, deep Status) {
	m.mu.Lock()
	defer m.mu.Unlock()
	shallow, deep = Passing, Passing
	for _, s := range m.states {
		if s.Kind == Shallow {
			shallow = Worst(shallow, s.Status)
		}
		deep = Worst(deep, s.Status)
	}
	return shallow, deep
}

// Trigger asks for check name to be probed now rather than at its next
// interval (for TTL checks, right after the app pushed a status). It
// reports whether such a check exists. It never blocks.
func (m *Monitor) Trigger(name string) bool {
	for i, c := range m.checks {
		if c.Name == name {
			select {
			case m.kick[i] <- struct{}{}:
			default:
			}
			return true
		}
	}
	return false
}

// Pending reports whether some check has not finished its first probe.
func (m *Monitor) Pending() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.states {
		if !s.probed {
			return true
		}
	}
	return false
}
