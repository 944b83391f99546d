package registry

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rewire/rewire/internal/etcdtest"
	"github.com/rewire/rewire/internal/testutil"
	"github.com/rewire/rewire/registry/schema"
	"go.etcd.io/etcd/api/v3/mvccpb"
	etcd "go.etcd.io/etcd/client/v3"
)

// startEtcd starts an embedded etcd, or skips the test with -short.
func startEtcd(t *testing.T) *etcdtest.Etcd {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd; skipped with -short")
	}
	return etcdtest.Start(t)
}

// waitFor is testutil.WaitFor with this package's argument order.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	testutil.WaitFor(t, timeout, msg, cond)
}

// runInBackground runs run(ctx) in a goroutine. The returned stop cancels
// ctx, waits (bounded) for run to return and returns its error; it also runs
// at cleanup, before the etcd client and server started earlier are closed.
func runInBackground(t *testing.T, run func(context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var (
		once sync.Once
		err  error
	)
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Errorf("Run did not return within 20s of its context being cancelled")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// opCtx bounds one etcd request made by a test.
func opCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// getKV returns the key's KeyValue, or nil when it does not exist.
func getKV(t testing.TB, cli *etcd.Client, key string) *mvccpb.KeyValue {
	t.Helper()
	resp, err := cli.Get(opCtx(t), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	return resp.Kvs[0]
}

// keysUnder returns every key under prefix.
func keysUnder(t testing.TB, cli *etcd.Client, prefix string) []string {
	t.Helper()
	resp, err := cli.Get(opCtx(t), prefix, etcd.WithPrefix(), etcd.WithKeysOnly())
	if err != nil {
		t.Fatalf("get %s: %v", prefix, err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return keys
}

// putRev writes key=value and returns the revision of the write.
func putRev(t testing.TB, cli *etcd.Client, key, value string) int64 {
	t.Helper()
	resp, err := cli.Put(opCtx(t), key, value)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return resp.Header.Revision
}

func deleteRev(t testing.TB, cli *etcd.Client, key string) int64 {
	t.Helper()
	resp, err := cli.Delete(opCtx(t), key)
	if err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
	return resp.Header.Revision
}

// metricValue returns the value of an unlabelled counter or gauge in reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("metric %s is not registered", name)
	return 0
}

// testInstance returns a valid instance of svc.
func testInstance(svc, id string) schema.Instance {
	return schema.Instance{
		V: schema.Version, Service: svc, ID: id, Address: "10.0.0.5", Port: 8080,
		Weight: schema.DefaultWeight, Health: schema.Health{Shallow: "passing"},
	}
}

func mustMarshal(t testing.TB, in schema.Instance) string {
	t.Helper()
	b, err := in.Marshal()
	if err != nil {
		t.Fatalf("Marshal(%+v): %v", in, err)
	}
	return string(b)
}

// rawRecord returns a record of svc/id with fields overridden, unvalidated:
// for writing invalid records straight to etcd.
func rawRecord(t testing.TB, svc, id string, fields map[string]any) string {
	t.Helper()
	m := map[string]any{
		"v": 1, "service": svc, "id": id, "address": "10.0.0.5", "port": 8080,
		"health": map[string]any{"shallow": "passing"},
	}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// logRecorder is a slog.Handler that keeps every record, to check what a
// component logged.
type logRecorder struct {
	// mu guards records.
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

// find returns the attributes of every record logged with message msg.
func (h *logRecorder) find(msg string) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, r := range h.records {
		if r.Message != msg {
			continue
		}
		attrs := map[string]any{}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.Any()
			return true
		})
		out = append(out, attrs)
	}
	return out
}
