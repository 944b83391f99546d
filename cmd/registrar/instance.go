package main

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/registry/schema"
)

// record builds the instance record from the config and the health
// states.
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

// instance runs one configured service's checks and keeps its record
// current in the Registrar.
type instance struct {
	cfg  ServiceConfig
	node string
	reg  *registry.Registrar
	log  *slog.Logger
	mon  *health.Monitor
}

func newInstance(cfg ServiceConfig, node string, reg *registry.Registrar, log *slog.Logger) *instance {
	checks := make([]health.Check, len(cfg.Checks))
	for i, c := range cfg.Checks {
		checks[i] = c.check()
	}
	log = log.With("service", cfg.Name, "instance_id", cfg.ID)
	return &instance{cfg: cfg, node: node, reg: reg, log: log,
		mon: health.NewMonitor(health.MonitorOptions{Checks: checks, Logger: log})}
}

// run checks and publishes until ctx ends. It returns after the monitor's
// goroutines exited.
func (in *instance) run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		in.mon.Run(ctx)
	}()
	defer func() { <-done }()

	registeredAt := time.Now().UTC().Truncate(time.Second)
	var last schema.Health
	publish := func() {
		shallow, deep := in.mon.Aggregate()
		h := schema.Health{Shallow: shallow, Deep: deep, Since: last.Since}
		if shallow != last.Shallow || deep != last.Deep {
			h.Since = time.Now().UTC().Truncate(time.Millisecond)
			if last.Shallow != "" {
				in.log.Info("health changed", "shallow", shallow, "deep", deep, "was_shallow", last.Shallow, "was_deep", last.Deep)
			}
		}
		for _, st := range in.mon.States() {
			h.Checks = append(h.Checks, schema.Check{Name: st.Name, Kind: st.Kind, Status: st.Status,
				Output: st.Output, Since: st.Since.UTC().Truncate(time.Millisecond)})
		}
		last = h
		last.Checks = slices.Clone(h.Checks)
		if err := in.reg.Set(in.cfg.record(in.node, registeredAt, &h)); err != nil {
			in.log.Error("record is invalid; not registered", "err", err)
		}
	}
	if len(in.cfg.Checks) == 0 {
		publish()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-in.mon.Changed():
			publish()
		}
	}
}
