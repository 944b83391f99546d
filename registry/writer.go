package registry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rewire/rewire/internal/backoff"
	"github.com/rewire/rewire/registry/schema"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
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
	log := logger(opts.Logger).With("component", "registry.registrar")
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
	defer func() {
		lease, records := st.lease, len(st.written)
		st.drop()
		if lease != 0 {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
			_, err := r.cli.Revoke(rctx, lease)
			cancel()
			if err != nil {
				r.log.Warn("revoke lease on shutdown failed; records expire with the lease", "lease_id", int64(lease), "err", err)
			} else {
				r.log.Info("deregistered: lease revoked", "lease_id", int64(lease), "records", records)
			}
		}
	}()
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
			if st.lease == 0 {
				continue
			}
			vctx, cancel := withTimeout(ctx)
			ttl, err := r.cli.TimeToLive(vctx, st.lease)
			cancel()
			if err == nil && ttl.TTL > 0 {
				// The lease is alive, so someone deleted records by hand:
				// forget those, and the next sync writes them again.
				r.forgetMissing(ctx, st)
				continue
			}
			if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
				continue // etcd unreachable: keepalive will tell
			}
			r.lost(st, "lease gone (records disappeared); registering again under a new lease")
		case _, ok := <-st.alive:
			if !ok {
				r.lost(st, "lease lost; registering again under a new lease")
			}
		}
	}
}

// leaseState is what Run knows about its lease and what it wrote under
// it. It is owned by Run's goroutine.
type leaseState struct {
	lease  etcd.LeaseID // 0: none
	alive  <-chan *etcd.LeaseKeepAliveResponse
	stopKA context.CancelFunc
	// written is key → bytes written under lease. Only Run's goroutine
	// changes it, holding mu (the Writer's), so Wrote can read it.
	written map[string][]byte
	mu      *sync.Mutex
	buckets map[string]*bucket
}

func (st *leaseState) setWritten(key string, val []byte) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if val == nil {
		delete(st.written, key)
	} else {
		st.written[key] = val
	}
}

// drop stops the keepalive, waits for its goroutine, and forgets the
// lease and everything written under it: the next sync registers again.
func (st *leaseState) drop() {
	if st.stopKA != nil {
		st.stopKA()
	}
	if st.alive != nil {
		for range st.alive { // wait for drainKeepAlive's goroutine
		}
	}
	st.lease, st.alive, st.stopKA = 0, nil, nil
	st.mu.Lock()
	clear(st.written)
	st.mu.Unlock()
	clear(st.buckets)
}

// lost counts and logs a lost lease, then drops it.
func (r *Writer) lost(st *leaseState, msg string) {
	r.leaseLost.Inc()
	r.log.Warn(msg, "lease_id", int64(st.lease))
	st.drop()
}

// forgetMissing drops from written every key that is no longer in etcd.
// It reads exactly those keys, so a role allowing only the registrar's own
// services suffices.
func (r *Writer) forgetMissing(ctx context.Context, st *leaseState) {
	present, err := r.present(ctx, slices.Collect(maps.Keys(st.written)))
	if err != nil {
		r.log.Warn("cannot check which records still exist", "err", err)
		return
	}
	for key := range st.written {
		if !present[key] {
			st.setWritten(key, nil)
			r.log.Warn("record deleted by someone else; writing it again", "key", key)
		}
	}
	r.kick()
}

// present returns which of keys exist, reading them in batched
// transactions of single-key gets.
func (r *Writer) present(ctx context.Context, keys []string) (map[string]bool, error) {
	out := make(map[string]bool, len(keys))
	for chunk := range slices.Chunk(keys, maxTxnOps) {
		ops := make([]etcd.Op, len(chunk))
		for i, k := range chunk {
			ops[i] = etcd.OpGet(k, etcd.WithKeysOnly())
		}
		tctx, cancel := withTimeout(ctx)
		resp, err := r.cli.Txn(tctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			return nil, err
		}
		for _, rr := range resp.Responses {
			for _, kv := range rr.GetResponseRange().Kvs {
				out[string(kv.Key)] = true
			}
		}
	}
	return out, nil
}

// syncOnce grants a lease when there is none, then writes every record that
// differs from what was last written under it, as the rate limit allows.
// It returns how long until a deferred write is due (an hour if none).
func (r *Writer) syncOnce(ctx context.Context, st *leaseState) (time.Duration, error) {
	written, buckets := st.written, st.buckets
	next := time.Hour
	r.mu.Lock()
	desired := maps.Clone(r.desired)
	r.mu.Unlock()
	if st.lease == 0 {
		if len(desired) == 0 {
			return next, nil
		}
		gctx, cancel := withTimeout(ctx)
		resp, err := r.cli.Grant(gctx, int64(r.ttl/time.Second))
		cancel()
		if IsPermission(err) {
			return next, r.denied.fail("grant", "lease", err)
		}
		if err != nil {
			return next, err
		}
		r.denied.ok("grant", "lease")
		kactx, kacancel := context.WithCancel(context.WithoutCancel(ctx))
		ch, err := r.cli.KeepAlive(kactx, resp.ID)
		if err != nil {
			kacancel()
			return next, err
		}
		st.lease, st.alive, st.stopKA = resp.ID, drainKeepAlive(ch), kacancel
		r.registers.Inc()
		r.log.Info("lease granted", "lease_id", int64(resp.ID), "ttl", r.ttl.String())
	}
	var ops []writeOp
	now := time.Now()
	for key, val := range desired {
		if bytes.Equal(written[key], val) {
			continue
		}
		if _, ok := written[key]; ok {
			b := buckets[key]
			if b == nil {
				b = r.limit.newBucket(now)
				buckets[key] = b
			}
			if wait := r.limit.take(b, now); wait > 0 {
				r.deferred.Inc()
				next = min(next, wait)
				continue
			}
		}
		ops = append(ops, writeOp{key, val})
	}
	for key := range written {
		if _, ok := desired[key]; !ok {
			ops = append(ops, writeOp{key: key})
		}
	}
	// Batch into transactions (etcd allows 128 operations per txn by
	// default): registering a thousand instances takes a few round trips,
	// not a thousand.
	for chunk := range slices.Chunk(ops, maxTxnOps) {
		err := r.commit(ctx, st, chunk)
		if IsPermission(err) && len(chunk) > 1 {
			// One refused key fails the whole transaction: write the
			// records one by one, to name it and let the others through.
			err = nil
			for _, o := range chunk {
				if e := r.commit(ctx, st, []writeOp{o}); e != nil && (err == nil || IsPermission(err)) {
					err = e
				}
			}
		}
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			// The lease expired before its keepalive channel said so.
			r.lost(st, "lease expired under a write; registering again under a new lease")
			return next, err
		}
		if err != nil {
			return next, err
		}
	}
	return next, nil
}

// writeOp is one record write of syncOnce.
type writeOp struct {
	key string
	val []byte // nil: delete
}

func (o writeOp) name() string {
	if o.val == nil {
		return "delete"
	}
	return "put"
}

// commit writes ops in one transaction under st's lease and records what
// was written. A single op that etcd refuses for lack of permission is
// recorded (and logged once) as a PermissionError naming its key.
func (r *Writer) commit(ctx context.Context, st *leaseState, chunk []writeOp) error {
	tops := make([]etcd.Op, len(chunk))
	for i, o := range chunk {
		if o.val == nil {
			tops[i] = etcd.OpDelete(o.key)
		} else {
			tops[i] = etcd.OpPut(o.key, string(o.val), etcd.WithLease(st.lease))
		}
	}
	tctx, cancel := withTimeout(ctx)
	_, err := r.cli.Txn(tctx).Then(tops...).Commit()
	cancel()
	if IsPermission(err) && len(chunk) == 1 {
		return r.denied.fail(chunk[0].name(), chunk[0].key, err)
	}
	if err != nil {
		return err
	}
	r.writes.Add(float64(len(chunk)))
	for _, o := range chunk {
		r.denied.ok(o.name(), o.key)
		if o.val == nil {
			st.setWritten(o.key, nil)
			delete(st.buckets, o.key)
			r.log.Info("record deleted", "key", o.key)
		} else {
			st.setWritten(o.key, o.val)
			r.log.Debug("record written", "key", o.key)
		}
	}
	return nil
}

// rateLimit is a token bucket per record.
type rateLimit struct {
	interval time.Duration // < 0: unlimited
	burst    float64
}

type bucket struct {
	tokens float64
	last   time.Time
}

func (l rateLimit) newBucket(now time.Time) *bucket { return &bucket{tokens: l.burst, last: now} }

// take spends a token from b, or returns how long until one is available.
func (l rateLimit) take(b *bucket, now time.Time) time.Duration {
	if l.interval < 0 {
		return 0
	}
	b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.last))/float64(l.interval))
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(l.interval))
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

// maxTxnOps bounds the operations of one write transaction.
const maxTxnOps = 100
