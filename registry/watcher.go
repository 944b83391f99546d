package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rewire/rewire/internal/backoff"
	"github.com/rewire/rewire/registry/schema"
	"go.etcd.io/etcd/api/v3/mvccpb"
	etcd "go.etcd.io/etcd/client/v3"
)

// WatcherOptions configures NewWatcher.
type WatcherOptions struct {
	Client     *etcd.Client
	Keys       schema.Keys
	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: metrics are not registered
	// ProgressInterval is how often the Watcher asks etcd for a progress
	// notification while the watch is quiet, to know it is still current;
	// a watch that answers neither events nor progress for three intervals
	// is treated as stalled and resynced. Default 5s.
	ProgressInterval time.Duration
	// AfterSync, if set, is called after each full read is published (the
	// first one and every resync), from Run's goroutine.
	AfterSync func()
	// Services, when not empty, scopes the Watcher to these services'
	// instances plus every maintenance and expect key, instead of the whole
	// prefix: what a registrar reads, under an etcd role that allows only
	// that. Free-form keys and other services are then absent. The first
	// read is one revision; afterwards each range's changes arrive in order
	// but different ranges' may interleave, and Current().Rev is the
	// newest revision applied.
	Services []string
}

// Watcher keeps a schema.Snapshot of the registry current. Run does the
// work; Current and Updates may be used from any goroutine.
type Watcher struct {
	cli       *etcd.Client
	keys      schema.Keys
	log       *slog.Logger
	updates   chan struct{}
	progress  time.Duration
	afterSync func()

	resyncs      prometheus.Counter
	invalid      prometheus.Counter
	events       prometheus.Counter
	revision     prometheus.Gauge
	storeChanges prometheus.Counter

	// mu guards the fields below.
	mu          sync.Mutex
	current     *schema.Snapshot
	reported    map[string]string // key → last invalid-record error logged
	lastContact time.Time         // etcd last answered the watch (event, progress or read)
	etcdRev     int64             // the newest store revision etcd reported
	cluster     uint64            // the cluster ID of the last full read
	storeChange StoreChange       // the last time etcd turned out to be another store
	scope       scope             // WatcherOptions.Services and Rescope
	denied      denials           // the last read's permission error
}

// NewWatcher returns a Watcher; call Run to start it.
func NewWatcher(opts WatcherOptions) *Watcher {
	f := promauto.With(opts.Registerer)
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 5 * time.Second
	}
	w := &Watcher{
		progress:  opts.ProgressInterval,
		afterSync: opts.AfterSync,
		scope:     scope{services: slices.Clone(opts.Services)},
		cli:       opts.Client,
		keys:      opts.Keys,
		log:       logger(opts.Logger).With("component", "registry.watcher"),
		updates:   make(chan struct{}, 1),
		reported:  map[string]string{},
		resyncs: f.NewCounter(prometheus.CounterOpts{Name: "registry_watch_resyncs_total",
			Help: "Full re-reads of the registry (start, compaction, broken watch)."}),
		invalid: f.NewCounter(prometheus.CounterOpts{Name: "registry_invalid_records_total",
			Help: "Keys skipped because their value failed validation."}),
		events: f.NewCounter(prometheus.CounterOpts{Name: "registry_watch_events_total",
			Help: "Watch events applied to the in-memory registry."}),
		revision: f.NewGauge(prometheus.GaugeOpts{Name: "registry_revision",
			Help: "etcd revision of the current in-memory registry."}),
		storeChanges: f.NewCounter(prometheus.CounterOpts{Name: "registry_store_changes_total",
			Help: "Times etcd turned out not to be the store the registry was read from (wiped, restored from a backup, replaced), each followed by a full read."}),
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "registry_staleness_seconds",
		Help: "Seconds since etcd last confirmed the in-memory registry is current (event, progress notification or read)."},
		func() float64 { return w.Staleness().Seconds() })
	w.denied = denials{log: w.log, gauge: f.NewGauge(prometheus.GaugeOpts{Name: "registry_permission_denied",
		Help: "1 while etcd refuses the registry read for lack of permission (the error names the key)."})}
	return w
}

// Staleness is how long ago etcd last confirmed that Current is up to
// date; it grows while etcd is unreachable. Zero before the first read.
func (w *Watcher) Staleness() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lastContact.IsZero() {
		return 0
	}
	return time.Since(w.lastContact)
}

// Revisions returns the revision of Current and the newest store revision
// etcd reported (they differ by changes outside the prefix, or while a
// change is being applied).
func (w *Watcher) Revisions() (current, etcd int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.current != nil {
		current = w.current.Rev
	}
	return current, w.etcdRev
}

func (w *Watcher) contact(rev int64) {
	w.mu.Lock()
	w.lastContact = time.Now()
	w.etcdRev = max(w.etcdRev, rev)
	w.mu.Unlock()
}

// Current returns the latest snapshot, or nil before the first read.
func (w *Watcher) Current() *schema.Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current
}

// Updates receives a value after Current changes. Its buffer is one: a
// slow reader sees one notification for many changes and reads the latest
// snapshot, which coalesces bursts for free.
func (w *Watcher) Updates() <-chan struct{} { return w.updates }

func (w *Watcher) publish(s *schema.Snapshot) {
	w.mu.Lock()
	w.current = s
	w.mu.Unlock()
	w.revision.Set(float64(s.Rev))
	select {
	case w.updates <- struct{}{}:
	default:
	}
}

// Run reads the registry and follows it until ctx ends. After compaction,
// a lost leader or a broken watch it reads everything again, retrying with
// backoff while etcd is unreachable; Current keeps the last good snapshot
// meanwhile. It returns nil when ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	b := backoff.New(100*time.Millisecond, time.Second)
	for {
		err := w.session(ctx, b)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrStoreChanged) {
			continue // reported; read the new store at once
		}
		d := b.Next()
		w.interrupted(err, d)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
}

// session does one Get and follows it with a Watch until the watch fails.
func (w *Watcher) session(ctx context.Context, b *backoff.Backoff) error {
	w.resyncs.Inc()
	x, rev, cluster, vers, err := w.read(ctx)
	if err != nil {
		return err
	}
	if err := w.sameStore(rev, cluster); err != nil {
		w.storeChanged(err)
	}
	w.publish(x.Snapshot(rev))
	w.denied.reset()
	b.Reset()
	if w.afterSync != nil {
		w.afterSync()
	}
	wctx, cancel := context.WithCancel(etcd.WithRequireLeader(ctx))
	defer cancel()
	wch, stopWatch := w.watch(wctx, rev+1)
	defer stopWatch()
	tick := time.NewTicker(w.progress)
	defer tick.Stop()
	// probe fires a moment after a progress request; if etcd has not
	// answered it by then, a cheap read checks that it is still the same
	// store (a watch resumed on a wiped one is silent, see ErrStoreChanged).
	probe := time.NewTimer(time.Hour)
	probe.Stop()
	defer probe.Stop()
	quiet := 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-probe.C:
			if quiet == 0 {
				continue // answered meanwhile
			}
			if err := w.probeStore(wctx, rev); err != nil {
				w.storeChanged(err)
				return err
			}
			continue
		case <-tick.C:
			// Ask for a progress notification: it proves the watch is
			// current even when nothing changes.
			if quiet++; quiet >= 3 {
				return fmt.Errorf("watch stalled: no event or progress notification for %s", 3*w.progress)
			}
			// Bounded: while etcd is down the call would block until the
			// stream reconnects, and stall detection would stall with it.
			pctx, cancel := context.WithTimeout(wctx, w.progress)
			w.cli.RequestProgress(pctx)
			cancel()
			probe.Reset(min(time.Second, w.progress/2))
			continue
		case resp, ok := <-wch:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return errors.New("watch channel closed")
			}
			if err := resp.Err(); err != nil {
				return fmt.Errorf("watch from revision %d: %w", rev+1, err)
			}
			quiet = 0
			if rev, err = w.follow(x, vers, resp, rev); err != nil {
				return err
			}
		}
	}
}

// follow applies one watch response to x and publishes the result; it
// returns the newest revision applied, or ErrStoreChanged when an event
// does not follow the versions read and watched so far.
func (w *Watcher) follow(x *schema.Index, vers versions, resp etcd.WatchResponse, rev int64) (int64, error) {
	w.contact(resp.Header.Revision)
	if resp.IsProgressNotify() || len(resp.Events) == 0 {
		return rev, nil
	}
	for _, ev := range resp.Events {
		if err := vers.fits(ev); err != nil {
			w.storeChanged(err)
			return rev, err
		}
		w.apply(x, ev.Kv.Key, ev.Kv.Value, ev.Type == mvccpb.DELETE)
	}
	w.events.Add(float64(len(resp.Events)))
	rev = max(rev, resp.Events[len(resp.Events)-1].Kv.ModRevision)
	w.publish(x.Snapshot(rev))
	return rev, nil
}

// readPage is how many keys one request of a full read returns: paging
// keeps the memory peak of a large registry's first read low.
const readPage = 1000

// read loads the whole registry (every range of w.ranges) at one revision
// into a new Index.
// It also returns the cluster ID etcd answered with and the version of
// every key read, to check the watch that follows against.
func (w *Watcher) read(ctx context.Context) (x *schema.Index, rev int64, cluster uint64, vers versions, err error) {
	x, vers = schema.NewIndex(w.keys), versions{}
	for _, r := range w.ranges() {
		if rev, cluster, err = w.readRange(ctx, x, vers, r, rev); err != nil {
			return nil, 0, 0, nil, err
		}
	}
	return x, rev, cluster, vers, nil
}

// readRange loads one range into x at revision rev, or at the current one
// when rev is 0, and returns the revision read. Pages after the first are
// read at the first one's revision, so the result is one consistent
// snapshot.
func (w *Watcher) readRange(ctx context.Context, x *schema.Index, vers versions, r keyRange, rev int64) (int64, uint64, error) {
	root, end := r.from, r.end
	from := root
	for {
		opts := []etcd.OpOption{etcd.WithRange(end), etcd.WithLimit(readPage)}
		if rev != 0 {
			opts = append(opts, etcd.WithRev(rev))
		}
		gctx, cancel := withTimeout(ctx)
		resp, err := w.cli.Get(gctx, from, opts...)
		cancel()
		if err != nil {
			return 0, 0, deniedRead(root, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
			w.contact(rev)
		}
		for _, kv := range resp.Kvs {
			w.apply(x, kv.Key, kv.Value, false)
			vers[keyHash(kv.Key)] = kv.Version
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, resp.Header.ClusterId, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

func (w *Watcher) apply(x *schema.Index, key, value []byte, deleted bool) {
	k := string(key)
	if deleted {
		x.Delete(k)
		w.forget(k)
		return
	}
	if err := x.Put(k, value); err != nil {
		w.invalid.Inc()
		w.mu.Lock()
		first := w.reported[k] != err.Error()
		w.reported[k] = err.Error()
		w.mu.Unlock()
		if first {
			w.log.Error("skipping invalid registry entry; it will not reach any rendered file", "key", k, "err", err)
		}
		return
	}
	w.forget(k)
}

func (w *Watcher) forget(k string) {
	w.mu.Lock()
	delete(w.reported, k)
	w.mu.Unlock()
}

// Snapshot reads the registry once, at one revision, without watching: for
// one-shot renders and queries. Invalid entries are skipped and logged.
func (w *Watcher) Snapshot(ctx context.Context) (*schema.Snapshot, error) {
	x, rev, _, _, err := w.read(ctx)
	if err != nil {
		return nil, err
	}
	return x.Snapshot(rev), nil
}
