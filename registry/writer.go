package registry

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rewire/rewire/internal/backoff"
	"github.com/rewire/rewire/registry/schema"
	etcd "go.etcd.io/etcd/client/v3"
)

// WriterOptions configures NewWriter.
type WriterOptions struct {
	Client *etcd.Client
	Keys   schema.Keys
	// TTL of the process's lease; default 10s, at least 2s.
	TTL time.Duration
	// WriteInterval and WriteBurst rate-limit rewrites of one record: a
	// burst of WriteBurst writes passes at once, then one per
	// WriteInterval; changes in between coalesce into the latest. The
	// first write of a record (and every write after a new lease) is never
	// delayed. Defaults: 1s and 3; a negative WriteInterval disables it.
	WriteInterval time.Duration
	WriteBurst    int
	Logger        *slog.Logger          // nil: discard
	Registerer    prometheus.Registerer // nil: metrics are not registered
}

// Writer keeps a set of instance records in etcd under one lease.
// Callers say what the records should be (Set, Remove); Run makes etcd
// agree, writing only records whose bytes changed, and re-registering
// everything under a new lease when the old one is lost. When Run's context
// ends it revokes the lease, which deregisters every record at once.
type Writer struct {
	cli     *etcd.Client
	keys    schema.Keys
	ttl     time.Duration
	log     *slog.Logger
	trigger chan struct{}
	verify  chan struct{} // 1-buffered: check the lease now
	limit   rateLimit

	writes      prometheus.Counter
	writeErrors prometheus.Counter
	deferred    prometheus.Counter
	leaseLost   prometheus.Counter
	registers   prometheus.Counter
	denied      denials // writes etcd refuses for lack of permission

	// mu guards desired and wrote.
	mu      sync.Mutex
	desired map[string][]byte // key → encoded record
	wrote   map[string][]byte // Run's leaseState.written, for Wrote
}

// NewWriter returns a Writer; call Run to start writing.
func NewWriter(opts WriterOptions) *Writer {
	if opts.TTL == 0 {
		opts.TTL = 10 * time.Second
	}
	opts.TTL = max(opts.TTL, 2*time.Second)
	if opts.WriteInterval == 0 {
		opts.WriteInterval = time.Second
	}
	if opts.WriteBurst <= 0 {
		opts.WriteBurst = 3
	}
	f := promauto.With(opts.Registerer)
	log := logger(opts.Logger).With("component", "registry.writer")
	return &Writer{
		cli:     opts.Client,
		keys:    opts.Keys,
		ttl:     opts.TTL,
		log:     log,
		trigger: make(chan struct{}, 1),
		verify:  make(chan struct{}, 1),
		limit:   rateLimit{interval: opts.WriteInterval, burst: float64(opts.WriteBurst)},
		desired: map[string][]byte{},
		writes: f.NewCounter(prometheus.CounterOpts{Name: "registrar_etcd_writes_total",
			Help: "Instance records written to (or deleted from) etcd."}),
		writeErrors: f.NewCounter(prometheus.CounterOpts{Name: "registrar_etcd_write_errors_total",
			Help: "Failed etcd writes; they are retried with backoff."}),
		deferred: f.NewCounter(prometheus.CounterOpts{Name: "registrar_etcd_writes_deferred_total",
			Help: "Record changes held back by the per-record write rate limit (they coalesce)."}),
		leaseLost: f.NewCounter(prometheus.CounterOpts{Name: "registrar_lease_keepalive_lost_total",
			Help: "Times the lease was lost (expired, revoked or keepalive failed)."}),
		registers: f.NewCounter(prometheus.CounterOpts{Name: "registrar_registrations_total",
			Help: "Times a new lease was granted and every record written under it."}),
		denied: denials{log: log, gauge: f.NewGauge(prometheus.GaugeOpts{Name: "registrar_etcd_permission_denied",
			Help: "Writes etcd currently refuses for lack of permission (each is logged once with its key)."})},
	}
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// Set makes in the desired record for its service and id. It returns the
// record's validation error, if any, and then changes nothing.
func (r *Writer) Set(in schema.Instance) error {
	b, err := in.Marshal()
	if err != nil {
		return err
	}
	key := r.keys.Instance(in.Service, in.ID)
	r.mu.Lock()
	changed := !bytes.Equal(r.desired[key], b)
	r.desired[key] = b
	r.mu.Unlock()
	if changed {
		r.kick()
	}
	return nil
}

// Remove deregisters one instance.
func (r *Writer) Remove(service, id string) {
	key := r.keys.Instance(service, id)
	r.mu.Lock()
	_, ok := r.desired[key]
	delete(r.desired, key)
	r.mu.Unlock()
	if ok {
		r.kick()
	}
}

// Wrote reports whether the record of service/id is in etcd under the
// current lease as far as Run knows (written, and not lost since).
func (r *Writer) Wrote(service, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.wrote[r.keys.Instance(service, id)]
	return ok
}

// VerifyLease asks Run to check at once that its lease still exists, for
// a caller that saw one of its records disappear (an operator revoked the
// lease, or it expired during a partition). Without it, a lost lease is
// noticed at the next keepalive, up to TTL/3 later. It never blocks.
func (r *Writer) VerifyLease() {
	select {
	case r.verify <- struct{}{}:
	default:
	}
}

func (r *Writer) kick() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// Run keeps etcd in line with the desired records until ctx ends, then
// revokes the lease. It never returns because etcd is unreachable: it
// retries with exponential backoff and jitter.
func (r *Writer) Run(ctx context.Context) error {
	st := &leaseState{written: map[string][]byte{}, buckets: map[string]*bucket{}, mu: &r.mu}
	r.mu.Lock()
	r.wrote = st.written
	r.mu.Unlock()
	var (
		delays = backoff.New(100*time.Millisecond, time.Second)
		retry  <-chan time.Time
		due    = time.NewTimer(time.Hour)
	)
	defer due.Stop()
	defer r.revoke(ctx, st)
	for {
		next, err := r.syncOnce(ctx, st)
		due.Reset(next)
		retry = nil
		if err != nil && ctx.Err() == nil {
			r.writeErrors.Inc()
			d := delays.Next()
			if !IsPermission(err) { // those are logged once, by r.denied
				r.log.Warn("etcd write failed; retrying", "err", err, "retry_in", d)
			}
			retry = time.After(d)
		} else if err == nil {
			delays.Reset()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.trigger:
		case <-retry:
		case <-due.C:
		case <-r.verify:
			r.checkLease(ctx, st)
		case _, ok := <-st.alive:
			if !ok {
				r.lost(st, "lease lost; registering again under a new lease")
			}
		}
	}
}
