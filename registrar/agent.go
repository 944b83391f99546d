package registrar

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/registry/schema"
	etcd "go.etcd.io/etcd/client/v3"
)

var errNotFound = errors.New("registrar: not found")

// Options configures New.
type Options struct {
	Client     *etcd.Client
	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: metrics are not registered
}

type metrics struct {
	checks        *prometheus.CounterVec
	checkDuration *prometheus.HistogramVec
	statusChanges *prometheus.CounterVec
	instances     prometheus.Gauge
	reloads       *prometheus.CounterVec
}

// Agent registers the configured instances and keeps their records true.
type Agent struct {
	cli     *etcd.Client
	keys    schema.Keys
	node    string
	token   string // local API writes over TCP; "" refuses them
	log     *slog.Logger
	reg     *registry.Writer
	watch   *registry.Watcher
	metrics metrics
	reloads chan reloadReq

	// mu guards the fields below.
	mu        sync.Mutex
	cfg       Config
	instances map[string]*running // key: service/id
	draining  bool
}

type running struct {
	in     *instance
	cancel context.CancelFunc
	done   chan struct{}
}

type reloadReq struct {
	cfg  Config
	done chan struct{}
}

// New returns an Agent for a validated cfg; call Run to start it.
func New(cfg Config, opts Options) *Agent {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(opts.Registerer)
	keys := cfg.Etcd.Keys()
	return &Agent{
		cli: opts.Client, keys: keys, node: cfg.Node, token: cfg.apiToken, log: log, cfg: cfg,
		instances: map[string]*running{},
		reloads:   make(chan reloadReq),
		reg: registry.NewWriter(registry.WriterOptions{
			Client: opts.Client, Keys: keys, TTL: cfg.LeaseTTL, WriteInterval: cfg.WriteInterval,
			Logger: log, Registerer: opts.Registerer,
		}),
		watch: registry.NewWatcher(registry.WatcherOptions{Client: opts.Client, Keys: keys, Logger: log, Registerer: opts.Registerer,
			Services: cfg.readScope()}),
		metrics: metrics{
			checks: f.NewCounterVec(prometheus.CounterOpts{Name: "registrar_checks_total",
				Help: "Health check probes run, by service and raw result."}, []string{"service", "status"}),
			checkDuration: f.NewHistogramVec(prometheus.HistogramOpts{Name: "registrar_check_duration_seconds",
				Help: "How long health check probes took.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}, []string{"service"}),
			statusChanges: f.NewCounterVec(prometheus.CounterOpts{Name: "registrar_status_changes_total",
				Help: "Changes of an instance's shallow or deep status."}, []string{"service"}),
			instances: f.NewGauge(prometheus.GaugeOpts{Name: "registrar_instances",
				Help: "Instances this registrar is configured to register."}),
			reloads: f.NewCounterVec(prometheus.CounterOpts{Name: "registrar_config_reloads_total",
				Help: "Config reloads by result (applied, rejected)."}, []string{"result"}),
		},
	}
}

func instanceKey(s ServiceConfig) string { return s.Name + "/" + s.ID }

// readScope is every service the registrar reads: its own (to notice a
// record deleted under it) and those they depend on (for deep health),
// sorted. With maintenance and expectations, that is all it needs to read,
// so an etcd role granting only that suffices.
func (c Config) readScope() []string {
	var out []string
	for _, s := range c.Services {
		out = append(out, s.Name)
		out = append(out, s.DependsOn...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Run registers every configured instance and keeps them current until
// ctx ends; it then stops the checks and revokes the lease, which
// deregisters everything at once. It returns after all its goroutines
// exited. etcd being unreachable is never an error: the Writer retries.
func (a *Agent) Run(ctx context.Context) error {
	regCtx, stopReg := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { a.reg.Run(regCtx) })
	wg.Go(func() { a.watch.Run(ctx) })
	defer func() {
		a.mu.Lock()
		all := slices.Collect(maps.Values(a.instances))
		a.mu.Unlock()
		for _, r := range all {
			r.cancel()
		}
		for _, r := range all {
			<-r.done
		}
		stopReg() // revokes the lease
		wg.Wait()
	}()
	a.apply(ctx, a.config())
	for {
		select {
		case <-ctx.Done():
			return nil
		case req := <-a.reloads:
			a.apply(ctx, req.cfg)
			close(req.done)
		case <-a.watch.Updates():
			// Dependencies and maintenance may have changed.
			a.pokeAll()
			if snap := a.watch.Current(); snap != nil && a.lostOwnRecord(snap) {
				a.reg.VerifyLease()
			}
		}
	}
}

// lostOwnRecord reports whether a record the Writer wrote under its
// current lease is gone from snap: its lease was revoked or expired, or
// someone deleted it. (Asking the Writer, not comparing snapshots:
// updates coalesce, so the agent may never see a snapshot holding the
// record before it vanishes.)
func (a *Agent) lostOwnRecord(snap *schema.Snapshot) bool {
	a.mu.Lock()
	all := slices.Collect(maps.Values(a.instances))
	a.mu.Unlock()
	for _, r := range all {
		rec, ok := r.in.snapshot()
		if !ok || r.in.isRetired() || hasInstance(snap.Service(rec.Service), rec.ID) || !a.reg.Wrote(rec.Service, rec.ID) {
			continue
		}
		a.log.Debug("own record not in the registry; asking the registrar to check its lease", "service", rec.Service, "instance_id", rec.ID)
		return true
	}
	return false
}

func hasInstance(sv *schema.Service, id string) bool {
	if sv == nil {
		return false
	}
	_, found := slices.BinarySearchFunc(sv.Instances, id, func(in schema.Instance, id string) int { return strings.Compare(in.ID, id) })
	return found
}

func (a *Agent) config() Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

func (a *Agent) pokeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.instances {
		r.in.kick()
	}
}

// outlet is what the agent's instances publish through.
func (a *Agent) outlet() outlet {
	return outlet{registry: a.watch.Current, draining: a.isDraining, set: a.reg.Set,
		changed: func(service string) { a.metrics.statusChanges.WithLabelValues(service).Inc() }}
}

func (a *Agent) isDraining() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.draining
}

// apply makes the running instances match cfg: new ones start, removed
// ones stop and are deregistered, changed ones are updated in place, and
// unchanged ones are not touched at all.
func (a *Agent) apply(ctx context.Context, cfg Config) {
	want := map[string]ServiceConfig{}
	for _, s := range cfg.Services {
		want[instanceKey(s)] = s
	}
	a.watch.Rescope(cfg.readScope())
	a.mu.Lock()
	old := a.cfg
	a.cfg = cfg
	var stopped []*running
	for key, r := range a.instances {
		if _, ok := want[key]; !ok {
			r.in.retire()
			r.cancel()
			stopped = append(stopped, r)
			delete(a.instances, key)
		}
	}
	for key, s := range want {
		r, ok := a.instances[key]
		switch {
		case !ok:
			in := newInstance(s, cfg.Node, a.log, a.metrics.onProbe(s.Name))
			ictx, cancel := context.WithCancel(ctx)
			r = &running{in: in, cancel: cancel, done: make(chan struct{})}
			a.instances[key] = r
			go func() {
				defer close(r.done)
				in.run(ictx, a.outlet())
			}()
		case !reflect.DeepEqual(r.in.wantConfig(), s):
			// Compared with a pending update too: against the current
			// config alone, A→B→A in quick succession would leave B.
			a.log.Info("instance config changed", "service", s.Name, "instance_id", s.ID)
			r.in.update(s)
		}
	}
	a.metrics.instances.Set(float64(len(a.instances)))
	a.mu.Unlock()
	for _, r := range stopped {
		<-r.done
		cfg := r.in.configSnapshot()
		a.reg.Remove(cfg.Name, cfg.ID)
		a.log.Info("instance removed from config; deregistered", "service", cfg.Name, "instance_id", cfg.ID)
	}
	if old.LeaseTTL != cfg.LeaseTTL || !reflect.DeepEqual(old.Etcd, cfg.Etcd) || old.Listen != cfg.Listen || old.Node != cfg.Node || old.WriteInterval != cfg.WriteInterval ||
		old.APISocket != cfg.APISocket || old.APISocketMode != cfg.APISocketMode || old.APISocketGroup != cfg.APISocketGroup || old.apiToken != cfg.apiToken {
		a.log.Warn("etcd, lease_ttl, listen, node, write_interval and api_* changes take effect only after a restart")
	}
}

// Reload applies a new, validated config: added instances register,
// removed ones deregister, unchanged ones are not touched (no rewrite, no
// flap). It returns once the change is applied or ctx ends.
func (a *Agent) Reload(ctx context.Context, cfg Config) error {
	req := reloadReq{cfg: cfg, done: make(chan struct{})}
	select {
	case a.reloads <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-req.done:
		a.metrics.reloads.WithLabelValues("applied").Inc()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RejectReload counts a reload whose config failed validation.
func (a *Agent) RejectReload() { a.metrics.reloads.WithLabelValues("rejected").Inc() }

// Drain marks every instance draining (templates stop routing new traffic
// to it), then deregisters each one when its drain period has passed. It
// returns when all are deregistered or ctx ends (a second signal): the
// caller then stops Run, which revokes the lease.
func (a *Agent) Drain(ctx context.Context) {
	a.mu.Lock()
	a.draining = true
	all := slices.Collect(maps.Values(a.instances))
	a.mu.Unlock()
	slices.SortFunc(all, func(x, y *running) int {
		return cmp.Compare(x.in.configSnapshot().Drain, y.in.configSnapshot().Drain)
	})
	for _, r := range all {
		r.in.kick()
	}
	start := time.Now()
	for _, r := range all {
		cfg := r.in.configSnapshot()
		if wait := time.Until(start.Add(cfg.Drain)); wait > 0 {
			a.log.Info("draining", "service", cfg.Name, "instance_id", cfg.ID, "for", wait.Round(time.Millisecond).String())
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				a.log.Warn("drain cut short; deregistering now")
				return
			case <-t.C:
			}
		}
		r.in.retire()
		a.reg.Remove(cfg.Name, cfg.ID)
	}
}

// Instances returns the last published record of every instance, sorted
// by service and id.
func (a *Agent) Instances() []schema.Instance {
	a.mu.Lock()
	all := slices.Collect(maps.Values(a.instances))
	a.mu.Unlock()
	var out []schema.Instance
	for _, r := range all {
		if rec, ok := r.in.snapshot(); ok {
			out = append(out, rec)
		}
	}
	slices.SortFunc(out, func(x, y schema.Instance) int {
		if x.Service != y.Service {
			return strings.Compare(x.Service, y.Service)
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out
}

// find returns the running instances of service (and id, if not empty).
func (a *Agent) find(service, id string) []*instance {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*instance
	for _, r := range a.instances {
		cfg := r.in.configSnapshot()
		if cfg.Name == service && (id == "" || cfg.ID == id) {
			out = append(out, r.in)
		}
	}
	return out
}

// onProbe returns the health.Monitor hook that counts probes of service.
func (m metrics) onProbe(service string) func(string, health.Result, time.Duration) {
	return func(_ string, r health.Result, d time.Duration) {
		m.checks.WithLabelValues(service, string(r.Status)).Inc()
		m.checkDuration.WithLabelValues(service).Observe(d.Seconds())
	}
}

// Healthy returns why the registrar cannot do its job, or nil: etcd
// refusing its writes or reads for lack of permission (each error names
// the operation and key). For /healthz.
func (a *Agent) Healthy() error {
	return errors.Join(a.reg.Denied(), a.watch.Denied())
}
