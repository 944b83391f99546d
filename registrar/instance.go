package registrar

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/registry/schema"
)

// depCheckPrefix names the pseudo-checks that report each dependency's
// status in a record's health.checks.
const depCheckPrefix = "dep."

// record builds the instance record from the config and the health state.
func (s ServiceConfig) record(node string, registeredAt time.Time, h *schema.Health) schema.Instance {
	w := schema.DefaultWeight
	if s.Weight != nil {
		w = *s.Weight
	}
	in := schema.Instance{
		V: schema.Version, Service: s.Name, ID: s.ID, Node: node,
		Address: s.Address, Port: s.Port, Tags: s.Tags, Meta: s.Meta, Weight: w,
		DependsOn: s.DependsOn, RegisteredAt: registeredAt,
		Health: schema.Health{Shallow: health.Passing},
	}
	if h != nil {
		in.Health = *h
	}
	return in
}

// sameChecks reports whether two configs run the same checks, so a reload
// can keep the running monitor (and its damped state).
func (s ServiceConfig) sameChecks(o ServiceConfig) bool { return reflect.DeepEqual(s.Checks, o.Checks) }

// depStatus is a dependency's status as seen in the registry. Its output
// depends only on the status, so dependents rewrite their records only
// when a dependency's status changes, not on every instance count change.
func depStatus(snap *schema.Snapshot, dep string) (health.Status, string) {
	sv := snap.Service(dep)
	if sv == nil || len(sv.Instances) == 0 {
		return health.Critical, dep + ": no instances"
	}
	routable := sv.Routable()
	if len(routable) == 0 {
		return health.Critical, dep + ": no routable instance"
	}
	for _, in := range routable {
		if in.Health.Shallow == health.Passing {
			return health.Passing, dep + ": has passing instances"
		}
	}
	return health.Warning, dep + ": only warning instances"
}

// instance runs one configured instance's checks and publishes its record.
type instance struct {
	node    string
	log     *slog.Logger
	onProbe func(string, health.Result, time.Duration)
	poke    chan struct{} // 1-buffered: republish
	reconf  chan struct{} // 1-buffered: apply pending config

	// mu guards the fields below.
	mu           sync.Mutex
	cfg          ServiceConfig
	mon          *health.Monitor
	ttls         map[string]*health.TTL
	monCancel    context.CancelFunc
	monDone      chan struct{}
	last         schema.Health
	depSince     map[string]time.Time
	published    bool
	retired      bool // deregistered: never publish again
	pending      *ServiceConfig
	registeredAt time.Time
	current      schema.Instance
}

func newInstance(cfg ServiceConfig, node string, log *slog.Logger, onProbe func(string, health.Result, time.Duration)) *instance {
	in := &instance{
		node: node, log: log.With("service", cfg.Name, "instance_id", cfg.ID), onProbe: onProbe,
		poke: make(chan struct{}, 1), reconf: make(chan struct{}, 1), cfg: cfg, depSince: map[string]time.Time{},
		registeredAt: time.Now().UTC().Truncate(time.Second),
	}
	in.setMonitorLocked(cfg)
	return in
}

// setMonitorLocked builds a monitor for cfg's checks; the caller starts it.
func (in *instance) setMonitorLocked(cfg ServiceConfig) {
	checks := make([]health.Check, len(cfg.Checks))
	in.ttls = map[string]*health.TTL{}
	for i, c := range cfg.Checks {
		checks[i] = c.check()
		if t, ok := checks[i].Checker.(*health.TTL); ok {
			in.ttls[c.Name] = t
		}
	}
	in.mon = health.NewMonitor(health.MonitorOptions{Checks: checks, Logger: in.log, OnProbe: in.onProbe})
}

func (in *instance) kick() {
	select {
	case in.poke <- struct{}{}:
	default:
	}
}

// outlet is what an instance needs of its agent to publish, and nothing
// more: the registry as last read, whether the agent drains, where
// records go, and a counter. Lock order: the agent takes its own lock and
// then an instance's (apply, find), so draining, which takes the agent's,
// is never called with in.mu held.
type outlet struct {
	registry func() *schema.Snapshot // nil before the first read
	draining func() bool
	set      func(schema.Instance) error
	changed  func(service string) // counts a health change
}

// run publishes whenever the monitor, the registry or the agent's state
// changes, until ctx ends. It returns after the monitor stopped.
func (in *instance) run(ctx context.Context, out outlet) {
	in.mu.Lock()
	in.startMonitorLocked(ctx)
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		done := in.monDone
		in.mu.Unlock()
		<-done
	}()
	in.kick()
	for {
		in.mu.Lock()
		changed := in.mon.Changed()
		in.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-in.poke:
		case <-in.reconf:
			in.applyPending(ctx)
		}
		in.publish(out)
	}
}

func (in *instance) startMonitorLocked(ctx context.Context) {
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	mon := in.mon
	go func() {
		defer close(done)
		mon.Run(mctx)
	}()
	in.monCancel, in.monDone = cancel, done
}

// update asks the instance's goroutine to apply a changed config.
func (in *instance) update(cfg ServiceConfig) {
	in.mu.Lock()
	in.pending = &cfg
	in.mu.Unlock()
	select {
	case in.reconf <- struct{}{}:
	default:
	}
}

// applyPending applies the latest config from update. Unchanged checks
// keep their running monitor (and damped state); changed checks get a new
// one, and the record keeps its last published health until the new
// checks have all reported.
func (in *instance) applyPending(ctx context.Context) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.pending == nil {
		return
	}
	cfg := *in.pending
	in.pending = nil
	if !in.cfg.sameChecks(cfg) {
		in.monCancel()
		<-in.monDone
		in.setMonitorLocked(cfg)
		in.startMonitorLocked(ctx)
	}
	in.cfg = cfg
}

func (in *instance) isRetired() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.retired
}

// retire stops all further publishing: the instance is being deregistered.
func (in *instance) retire() {
	in.mu.Lock()
	in.retired = true
	in.mu.Unlock()
}

// publish builds the record from the current state and hands it to the
// Writer, which writes it only if its bytes changed.
func (in *instance) publish(out outlet) {
	snap := out.registry()
	draining := out.draining() // before in.mu: see outlet
	in.mu.Lock()
	defer in.mu.Unlock()
	cfg := in.cfg
	if in.retired || in.mon.Pending() {
		return // publish health only once every check has reported
	}
	if len(cfg.DependsOn) > 0 && snap == nil {
		return // dependencies unknown until the registry has been read
	}
	shallow, deep := in.mon.Aggregate()
	var checks []schema.Check
	for _, st := range in.mon.States() {
		checks = append(checks, schema.Check{Name: st.Name, Kind: st.Kind, Status: st.Status,
			Output: st.Output, Since: st.Since.UTC().Truncate(time.Millisecond)})
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, dep := range cfg.DependsOn {
		st, out := depStatus(snap, dep)
		deep = health.Worst(deep, st)
		name := depCheckPrefix + dep
		since, ok := in.depSince[name]
		if prev := findCheck(in.last.Checks, name); !ok || prev == nil || prev.Status != st {
			since = now
		}
		in.depSince[name] = since
		checks = append(checks, schema.Check{Name: name, Kind: health.Deep, Status: st, Output: out, Since: since})
	}
	h := schema.Health{Shallow: shallow, Deep: deep, Checks: checks, Since: in.last.Since}
	if shallow != in.last.Shallow || deep != in.last.Deep {
		h.Since = now
		if in.published {
			in.log.Info("health changed", "shallow", shallow, "deep", deep, "was_shallow", in.last.Shallow, "was_deep", in.last.Deep)
			out.changed(cfg.Name)
		}
	}
	rec := cfg.record(in.node, in.registeredAt, &h)
	rec.Draining = draining
	if err := out.set(rec); err != nil {
		in.log.Error("record is invalid; not registered", "err", err)
		return
	}
	in.last = h
	in.last.Checks = slices.Clone(checks)
	in.published = true
	in.current = rec
}

func findCheck(cs []schema.Check, name string) *schema.Check {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

// pushTTL records a status pushed by the application for a ttl check.
func (in *instance) pushTTL(check string, st health.Status, output string) error {
	in.mu.Lock()
	t, ok := in.ttls[check]
	mon, cfg := in.mon, in.cfg
	in.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: instance %s/%s has no ttl check %q", errNotFound, cfg.Name, cfg.ID, check)
	}
	if err := t.Update(st, output); err != nil {
		return err
	}
	mon.Trigger(check)
	return nil
}

// snapshot returns the last published record and whether there is one.
func (in *instance) snapshot() (schema.Instance, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.current, in.published
}

// configSnapshot returns the instance's current config.
func (in *instance) configSnapshot() ServiceConfig {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cfg
}

// wantConfig returns the config the instance is to run: the latest update
// it has not applied yet, or else its current config.
func (in *instance) wantConfig() ServiceConfig {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.pending != nil {
		return *in.pending
	}
	return in.cfg
}
