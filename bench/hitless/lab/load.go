package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rewire/rewire/internal/freeport"
	"github.com/rewire/rewire/internal/promtext"
)

// Load keeps keep-alive connections to a URL busy.
type Load struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	ok      atomic.Int64
	non2xx  atomic.Int64
	errs    atomic.Int64
	mu      sync.Mutex
	lat     []time.Duration
	samples []string // the first few errors and bad statuses
}

// LoadResult is what a Load counted.
type LoadResult struct {
	Requests, OK, Non2xx, Errors int64
	P50, P99, Max                time.Duration
	Samples                      []string
}

// StartLoad starts conns workers, each with its own http.Transport (one
// keep-alive connection, reused), sending requests to url until Stop or
// limit. Requests are POSTs with an empty body: Go's client silently
// retries an idempotent request whose reused connection was closed, which
// would hide the errors a reload causes (wrk and most other clients do
// not retry).
func StartLoad(ctx context.Context, url string, conns int, limit time.Duration) *Load {
	ctx, cancel := context.WithTimeout(ctx, limit)
	ld := &Load{cancel: cancel}
	for range conns {
		ld.wg.Go(func() { ld.worker(ctx, url) })
	}
	return ld
}

func (ld *Load) worker(ctx context.Context, url string) {
	tr := &http.Transport{MaxIdleConns: 100, MaxIdleConnsPerHost: 100, IdleConnTimeout: time.Minute,
		DisableCompression: true, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var lat []time.Duration
	defer func() {
		ld.mu.Lock()
		ld.lat = append(ld.lat, lat...)
		ld.mu.Unlock()
	}()
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, http.NoBody)
		if err != nil {
			ld.sample(err.Error())
			ld.errs.Add(1)
			return
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		d := time.Since(t0)
		switch {
		case ctx.Err() != nil && err != nil:
			return // stopped in flight: not a failure
		case err != nil:
			ld.errs.Add(1)
			ld.sample(err.Error())
		case resp.StatusCode/100 != 2:
			ld.non2xx.Add(1)
			ld.sample(resp.Status)
		default:
			ld.ok.Add(1)
		}
		lat = append(lat, d)
	}
}

func (ld *Load) sample(s string) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	if len(ld.samples) < 10 {
		ld.samples = append(ld.samples, time.Now().Format("15:04:05.000")+" "+s)
	}
}

// Counts returns the requests answered so far: 2xx, other, errors.
func (ld *Load) Counts() (ok, non2xx, errs int64) {
	return ld.ok.Load(), ld.non2xx.Load(), ld.errs.Load()
}

// Stop ends the load and returns what it counted.
func (ld *Load) Stop() LoadResult {
	ld.cancel()
	ld.wg.Wait()
	r := LoadResult{OK: ld.ok.Load(), Non2xx: ld.non2xx.Load(), Errors: ld.errs.Load(), Samples: ld.samples}
	r.Requests = r.OK + r.Non2xx + r.Errors
	slices.Sort(ld.lat)
	if n := len(ld.lat); n > 0 {
		r.P50, r.P99, r.Max = ld.lat[n/2], ld.lat[max(0, (n*99+99)/100-1)], ld.lat[n-1]
	}
	return r
}

// MetricSamples returns the templater's metric samples whose line starts with
// prefix, keyed by name and labels (for example
// `templater_haproxy_reloads_total{reason="refused",template="haproxy"}`).
func (l *Lab) MetricSamples(prefix string) (map[string]float64, error) {
	return promtext.Scrape(l.Metrics, prefix)
}

// Metric sums the samples whose line starts with prefix.
func (l *Lab) Metric(prefix string) (float64, error) {
	m, err := l.MetricSamples(prefix)
	return promtext.Sum(m), err
}

// Delta is after minus before, for the samples of either.
func Delta(before, after map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	for k, v := range before {
		if _, ok := after[k]; !ok {
			d[k] = -v
		}
	}
	return d
}

// poll calls cond until it returns nil, ctx ends or timeout passes.
func poll(ctx context.Context, timeout time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s: %w", timeout, what, err)
		}
		time.Sleep(2 * time.Millisecond) // polling interval of a condition with a deadline
	}
}

// Poll is poll, for callers: cond until nil, ctx ends or timeout passes.
func Poll(ctx context.Context, timeout time.Duration, what string, cond func() error) error {
	return poll(ctx, timeout, what, cond)
}

func freeAddr() (string, error) { return freeport.Addr() }
