package registry

import (
	"context"
	"sync"

	etcd "go.etcd.io/etcd/client/v3"
)

// keyRange is a half-open etcd key range [from, end).
type keyRange struct{ from, end string }

// prefixRange is the range of every key starting with p.
func prefixRange(p string) keyRange { return keyRange{p, etcd.GetPrefixRangeEnd(p)} }

// ranges returns the key ranges the Watcher reads and watches: the whole
// prefix, or with WatcherOptions.Services only those services' instances,
// maintenance and expectations. A narrow etcd role (read on exactly these
// ranges) then suffices, since etcd checks a range request against the
// whole range asked for.
func (w *Watcher) ranges() []keyRange {
	if len(w.services) == 0 {
		return []keyRange{prefixRange(w.keys.Root())}
	}
	out := make([]keyRange, 0, len(w.services)+2)
	for _, s := range w.services {
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
// as any of the watches ends, so the session resyncs as it does when its
// single watch ends; each range's events arrive in order, but events of
// different ranges may interleave out of revision order.
func (w *Watcher) watch(ctx context.Context, rev int64) (etcd.WatchChan, func()) {
	rs := w.ranges()
	ctx, cancel := context.WithCancel(ctx)
	opts := []etcd.OpOption{etcd.WithRev(rev), etcd.WithProgressNotify()}
	if len(rs) == 1 {
		return w.cli.Watch(ctx, rs[0].from, append(opts, etcd.WithRange(rs[0].end))...), cancel
	}
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
	}
}
