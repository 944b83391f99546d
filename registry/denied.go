package registry

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// PermissionError is an etcd request refused because the client's etcd
// user lacks the permission: which operation, on which key. Retrying does
// not help until an operator changes the user's role.
type PermissionError struct {
	Op  string // put, delete, read, watch
	Key string // a key, or a prefix ending in "/"
	Err error
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("%s %s: %v (the etcd user's role does not allow it)", e.Op, e.Key, e.Err)
}

func (e *PermissionError) Unwrap() error { return e.Err }

// IsPermission reports whether err is etcd refusing a request for lack of
// permission or credentials, as opposed to etcd being unreachable.
func IsPermission(err error) bool {
	for _, target := range []error{rpctypes.ErrPermissionDenied,
		rpctypes.ErrUserEmpty, rpctypes.ErrAuthFailed} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// denials remembers the permission errors that are current, keyed by
// operation and key, so each is logged once (not on every retry) and can be
// reported by health checks until the operation succeeds again. Safe for
// concurrent use.
type denials struct {
	log   *slog.Logger
	gauge prometheus.Gauge // current denials; nil: none kept

	// mu guards m.
	mu sync.Mutex
	m  map[string]*PermissionError // "op key" → error
}

// fail records a refused op on key, logging it if it is new.
func (d *denials) fail(op, key string, err error) *PermissionError {
	pe := &PermissionError{Op: op, Key: key, Err: err}
	d.mu.Lock()
	_, seen := d.m[op+" "+key]
	if d.m == nil {
		d.m = map[string]*PermissionError{}
	}
	d.m[op+" "+key] = pe
	n := len(d.m)
	d.mu.Unlock()
	d.set(n)
	if !seen {
		d.log.Error("etcd refused a request: permission denied; retrying quietly until the role allows it",
			"op", op, "key", key, "err", err)
	}
	return pe
}

// ok forgets a denial of op on key after the op succeeded.
func (d *denials) ok(op, key string) {
	d.mu.Lock()
	_, had := d.m[op+" "+key]
	delete(d.m, op+" "+key)
	n := len(d.m)
	d.mu.Unlock()
	if had {
		d.set(n)
		d.log.Info("etcd permits the request again", "op", op, "key", key)
	}
}

// reset forgets every denial, after a request that needs all the
// permissions succeeded.
func (d *denials) reset() {
	d.mu.Lock()
	had := len(d.m) > 0
	clear(d.m)
	d.mu.Unlock()
	if had {
		d.set(0)
		d.log.Info("etcd permits the requests again")
	}
}

func (d *denials) set(n int) {
	if d.gauge != nil {
		d.gauge.Set(float64(n))
	}
}

// err joins the current denials, sorted, or returns nil.
func (d *denials) err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(d.m)) {
		errs = append(errs, d.m[k])
	}
	return errors.Join(errs...)
}

// Denied returns the permission errors of the Writer's writes that have
// not succeeded since, or nil: for a health check.
func (r *Writer) Denied() error { return r.denied.err() }

// Denied returns the permission error of the Watcher's last read or watch
// if it has not read successfully since, or nil: for a health check.
func (w *Watcher) Denied() error { return w.denied.err() }

// interrupted logs why a session ended: a permission error once until the
// Watcher reads again, anything else as a warning each time.
func (w *Watcher) interrupted(err error, retryIn time.Duration) {
	var pe *PermissionError
	if !errors.As(err, &pe) {
		w.log.Warn("registry watch interrupted; resyncing", "err", err, "retry_in", retryIn)
		return
	}
	w.denied.fail(pe.Op, pe.Key, pe.Err)
}

// deniedRead wraps a read error of the range from: a PermissionError if
// etcd refused it.
func deniedRead(from string, err error) error {
	if IsPermission(err) {
		return &PermissionError{Op: "read", Key: from, Err: err}
	}
	return fmt.Errorf("get %s: %w", from, err)
}
