package registry

import (
	"context"
	"slices"
	"sync"

	etcd "go.etcd.io/etcd/client/v3"
)

// scope is what a Watcher reads; Watcher.mu guards it.
type scope struct {
	services []string // empty: the whole prefix
	gen      int      // incremented by Rescope
	readGen  int      // gen of the last read
	cancel   func()   // ends the running watch, nil if none
}

// keyRange is a half-open etcd key range [from, end).
type keyRange struct{ from, end string }

// prefixRange is the range of every key starting with p.
func prefixRange(p string) keyRange { return keyRange{p, etcd.GetPrefixRangeEnd(p)} }

// Rescope changes the services a Watcher started with
// WatcherOptions.Services reads (after a config reload, say). A running
// watch ends and Run reads the new scope; Current keeps the old snapshot
// meanwhile. Safe for concurrent use.
func (w *Watcher) Rescope(services []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if slices.Equal(w.scope.services, services) {
		return
	}
	w.scope.services = slices.Clone(services)
	w.scope.gen++
	if w.scope.cancel != nil {
		w.scope.cancel()
	}
}

// ranges returns the key ranges the Watcher reads and watches: the whole
// prefix, or with WatcherOptions.Services only those services' instances,
// maintenance and expectations. A narrow etcd role (read on exactly these
// ranges) then suffices, since etcd checks a range request against the
// whole range asked for.
func (w *Watcher) ranges() []keyRange {
	w.mu.Lock()
	services := w.scope.services
	w.scope.readGen = w.scope.gen
	w.mu.Unlock()
	if len(services) == 0 {
		return []keyRange{prefixRange(w.keys.Root())}
	}
	out := make([]keyRange, 0, len(services)+2)
	for _, s := range services {
		out = append(out, prefixRange(w.keys.Service(s)))
	}
	return append(out,
		prefixRange(w.keys.Maintenance("", "")), // <prefix>/maintenance/
		prefixRange(w.keys.Expect("")))          // <prefix>/expect/
}

// watch watches every range of w.ranges from revision rev on w's client
// and returns one channel carrying the responses of all of them, and a
// function that ends the watches and waits until their goroutines have
// returned (call it once, before ctx's cancel). The channel closes as soon
// as any of the watches ends, or Rescope changes the scope, so the session
// resyncs as it does when its single watch ends. Each range's events
// arrive in order, but events of different ranges may interleave out of
// revision order.
func (w *Watcher) watch(ctx context.Context, rev int64) (etcd.WatchChan, func()) {
	ctx, cancel := context.WithCancel(ctx)
	w.mu.Lock()
	if w.scope.readGen != w.scope.gen {
		cancel() // rescoped since the read: its watch would not match it
	}
	w.scope.cancel = cancel
	w.mu.Unlock()
	rs := w.ranges()
	opts := []etcd.OpOption{etcd.WithRev(rev), etcd.WithProgressNotify()}
	out := make(chan etcd.WatchResponse)
	var wg sync.WaitGroup
	for _, r := range rs {
		// Watches with the same context share one gRPC stream, so one
		// RequestProgress on that context reaches all of them.
		ch := w.cli.Watch(ctx, r.from, append(opts, etcd.WithRange(r.end))...)
		wg.Go(func() {
			defer cancel() // one watch ending ends them all
			for resp := range ch {
				select {
				case out <- resp:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(out)
	}()
	return out, func() {
		cancel()
		for range out { // bounded: every forwarder returns once ctx is done
		}
		w.mu.Lock()
		w.scope.cancel = nil
		w.mu.Unlock()
	}
}
