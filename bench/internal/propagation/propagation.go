package propagation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// FloorPrefix is where Floor puts and watches: outside any registry
// prefix, so no templater sees its keys.
const FloorPrefix = "/raw/"

// Floor times etcd put → watch event on keys under FloorPrefix, with its
// own client for the watch. Sample is not safe for concurrent use.
type Floor struct {
	cli    *clientv3.Client
	cancel context.CancelFunc
	events chan time.Time
	wg     sync.WaitGroup
}

// NewFloor connects to endpoints and starts watching FloorPrefix. Close
// stops it.
func NewFloor(ctx context.Context, endpoints []string) (*Floor, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	f := &Floor{cli: cli, cancel: cancel, events: make(chan time.Time, 16)}
	wch := cli.Watch(clientv3.WithRequireLeader(wctx), FloorPrefix, clientv3.WithPrefix())
	f.wg.Go(func() {
		for resp := range wch {
			at := time.Now()
			for range resp.Events {
				select {
				case f.events <- at:
				case <-wctx.Done():
					return
				}
			}
		}
	})
	return f, nil
}

// Close stops the watch and waits for its goroutine.
func (f *Floor) Close() {
	f.cancel()
	f.wg.Wait()
	f.cli.Close()
}

// Sample puts value with put (another client: the writer's) and returns
// the time until the watch reports it.
func (f *Floor) Sample(ctx context.Context, put *clientv3.Client, value []byte) (time.Duration, error) {
	t0 := time.Now()
	if _, err := put.Put(ctx, FloorPrefix+"k", string(value)); err != nil {
		return 0, err
	}
	select {
	case at := <-f.events:
		return at.Sub(t0), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(10 * time.Second):
		return 0, errors.New("raw watch: no event after 10s")
	}
}

// WatchDir reports the events of dir until the returned stop is called.
func WatchDir(dir string) (<-chan fsnotify.Event, func(), error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, nil, err
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, nil, err
	}
	return w.Events, func() { w.Close() }, nil
}

// Drain discards the events already reported.
func Drain(ev <-chan fsnotify.Event) {
	for {
		select {
		case <-ev:
		default:
			return
		}
	}
}

// WaitFile waits for an event on dest (the rename of a staged file onto
// it) after which its content satisfies ok, for at most timeout.
func WaitFile(ev <-chan fsnotify.Event, dest string, timeout time.Duration, ok func([]byte) bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case e, open := <-ev:
			if !open {
				return errors.New("fsnotify watcher closed")
			}
			if e.Name != dest || !e.Has(fsnotify.Create|fsnotify.Write) {
				continue
			}
			if b, err := os.ReadFile(dest); err == nil && ok(b) {
				return nil
			}
		case <-deadline.C:
			return fmt.Errorf("%s not updated after %s", dest, timeout)
		}
	}
}

// Pct returns the p-th percentile of s (nearest rank), 0 for none.
func Pct(s []time.Duration, p int) time.Duration {
	if len(s) == 0 {
		return 0
	}
	s = slices.Sorted(slices.Values(s))
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}

// MS formats d in milliseconds with two decimals.
func MS(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// CPUSeconds reads the user+system CPU time of process pid from /proc (in
// clock ticks of 1/100 s); 0 when it cannot.
func CPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// LoadAvg returns /proc/loadavg's 1, 5 and 15-minute load averages, as
// written there.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}
