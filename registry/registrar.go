package registry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rewire/rewire/registry/schema"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	etcd "go.etcd.io/etcd/client/v3"
)

// RegistrarOptions configures NewRegistrar.
type RegistrarOptions struct {
	Client *etcd.Client
	Keys   schema.Keys
	// TTL of the process's lease; default 10s, at least 2s.
	TTL        time.Duration
	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: metrics are not registered
}

// Registrar keeps a set of instance records in etcd under one lease.
// Callers say what the records should be (Set, Remove); Run makes etcd
// agree, writing only records whose bytes changed, and re-registering
// everything under a new lease when the old one is lost. When Run's context
// ends it revokes the lease, which deregisters every record at once.
type Registrar struct {
	cli     *etcd.Client
	keys    schema.Keys
	ttl     time.Duration
	log     *slog.Logger
	trigger chan struct{}

	writes      prometheus.Counter
	writeErrors prometheus.Counter
	leaseLost   prometheus.Counter
	registers   prometheus.Counter

	// mu guards desired.
	mu      sync.Mutex
	desired map[string][]byte // key → encoded record
}

// NewRegistrar returns a Registrar; call Run to start writing.
func NewRegistrar(opts RegistrarOptions) *Registrar {
	if opts.TTL == 0 {
		opts.TTL = 10 * time.Second
	}
	opts.TTL = max(opts.TTL, 2*time.Second)
	f := promauto.With(opts.Registerer)
	return &Registrar{
		cli:     opts.Client,
		keys:    opts.Keys,
		ttl:     opts.TTL,
		log:     logger(opts.Logger).With("component", "registry.registrar"),
		trigger: make(chan struct{}, 1),
		desired: map[string][]byte{},
		writes: f.NewCounter(prometheus.CounterOpts{Name: "registrar_etcd_writes_total",
			Help: "Instance records written to (or deleted from) etcd."}),
		writeErrors: f.NewCounter(prometheus.CounterOpts{Name: "registrar_etcd_write_errors_total",
			Help: "Failed etcd writes; they are retried with backoff."}),
		leaseLost: f.NewCounter(prometheus.CounterOpts{Name: "registrar_lease_keepalive_lost_total",
			Help: "Times the lease was lost (expired, revoked or keepalive failed)."}),
		registers: f.NewCounter(prometheus.CounterOpts{Name: "registrar_registrations_total",
			Help: "Times a new lease was granted and every record written under it."}),
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
func (r *Registrar) Set(in schema.Instance) error {
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
func (r *Registrar) Remove(service, id string) {
	key := r.keys.Instance(service, id)
	r.mu.Lock()
	_, ok := r.desired[key]
	delete(r.desired, key)
	r.mu.Unlock()
	if ok {
		r.kick()
	}
}

func (r *Registrar) kick() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// Run keeps etcd in line with the desired records until ctx ends, then
// revokes the lease. It never returns because etcd is unreachable: it
// retries with exponential backoff and jitter.
func (r *Registrar) Run(ctx context.Context) error {
	var (
		lease   etcd.LeaseID
		alive   <-chan *etcd.LeaseKeepAliveResponse
		stopKA  context.CancelFunc = func() {}
		written                    = map[string][]byte{}
		backoff                    = newBackoff(100*time.Millisecond, 5*time.Second)
		retry   <-chan time.Time
	)
	defer func() {
		stopKA()
		if lease != 0 {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
			_, err := r.cli.Revoke(rctx, lease)
			cancel()
			if err != nil {
				r.log.Warn("revoke lease on shutdown failed; records expire with the lease", "lease_id", int64(lease), "err", err)
			} else {
				r.log.Info("deregistered: lease revoked", "lease_id", int64(lease), "records", len(written))
			}
		}
	}()
	for {
		err := r.syncOnce(ctx, &lease, &alive, &stopKA, written)
		retry = nil
		if err != nil && ctx.Err() == nil {
			r.writeErrors.Inc()
			d := backoff.next()
			r.log.Warn("etcd write failed; retrying", "err", err, "retry_in", d)
			retry = time.After(d)
		} else if err == nil {
			backoff.reset()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.trigger:
		case <-retry:
		case _, ok := <-alive:
			if !ok {
				r.leaseLost.Inc()
				r.log.Warn("lease lost; registering again under a new lease", "lease_id", int64(lease))
				stopKA()
				lease, alive = 0, nil
				clear(written)
			}
		}
	}
}

// syncOnce grants a lease when there is none, then writes every record that
// differs from what was last written under it.
func (r *Registrar) syncOnce(ctx context.Context, lease *etcd.LeaseID, alive *<-chan *etcd.LeaseKeepAliveResponse, stopKA *context.CancelFunc, written map[string][]byte) error {
	r.mu.Lock()
	desired := maps.Clone(r.desired)
	r.mu.Unlock()
	if *lease == 0 {
		if len(desired) == 0 {
			return nil
		}
		gctx, cancel := withTimeout(ctx)
		resp, err := r.cli.Grant(gctx, int64(r.ttl/time.Second))
		cancel()
		if err != nil {
			return err
		}
		kactx, kacancel := context.WithCancel(context.WithoutCancel(ctx))
		ch, err := r.cli.KeepAlive(kactx, resp.ID)
		if err != nil {
			kacancel()
			return err
		}
		*lease, *alive, *stopKA = resp.ID, drainKeepAlive(ch), kacancel
		r.registers.Inc()
		r.log.Info("lease granted", "lease_id", int64(resp.ID), "ttl", r.ttl.String())
	}
	var errs []error
	for key, val := range desired {
		if bytes.Equal(written[key], val) {
			continue
		}
		pctx, cancel := withTimeout(ctx)
		_, err := r.cli.Put(pctx, key, string(val), etcd.WithLease(*lease))
		cancel()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			// The lease expired before its keepalive channel said so.
			r.leaseLost.Inc()
			(*stopKA)()
			*lease, *alive = 0, nil
			clear(written)
			return err
		}
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		r.writes.Inc()
		written[key] = val
		r.log.Debug("record written", "key", key)
	}
	for key := range written {
		if _, ok := desired[key]; ok {
			continue
		}
		dctx, cancel := withTimeout(ctx)
		_, err := r.cli.Delete(dctx, key)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.writes.Inc()
		delete(written, key)
		r.log.Info("record deleted", "key", key)
	}
	return errors.Join(errs...)
}

// drainKeepAlive consumes keepalive responses (the client needs them read)
// and closes the returned channel when the lease is gone.
func drainKeepAlive(ch <-chan *etcd.LeaseKeepAliveResponse) <-chan *etcd.LeaseKeepAliveResponse {
	done := make(chan *etcd.LeaseKeepAliveResponse)
	go func() {
		defer close(done)
		for range ch {
		}
	}()
	return done
}

// backoff is exponential with full jitter.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(minD, maxD time.Duration) *backoff { return &backoff{min: minD, max: maxD, cur: minD} }

func (b *backoff) next() time.Duration {
	d := b.cur/2 + rand.N(b.cur/2+1)
	b.cur = min(b.cur*2, b.max)
	return d
}

func (b *backoff) reset() { b.cur = b.min }
