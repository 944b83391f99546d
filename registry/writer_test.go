package registry

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/internal/etcdtest"
	"github.com/rewire/rewire/registry/schema"
	etcd "go.etcd.io/etcd/client/v3"
)

const testTTL = 2 * time.Second

type registrarTest struct {
	e   *etcdtest.Etcd
	cli *etcd.Client
	reg *prometheus.Registry
	r   *Writer
	k   schema.Keys
}

func newRegistrarTest(t *testing.T) *registrarTest {
	t.Helper()
	e := startEtcd(t)
	cli := e.Client(t)
	reg := prometheus.NewRegistry()
	k := schema.Keys{Prefix: "/test"}
	r := NewWriter(WriterOptions{Client: cli, Keys: k, TTL: testTTL, Registerer: reg})
	return &registrarTest{e: e, cli: cli, reg: reg, r: r, k: k}
}

// set calls Set and fails the test on error.
func (rt *registrarTest) set(t *testing.T, in schema.Instance) {
	t.Helper()
	if err := rt.r.Set(in); err != nil {
		t.Fatalf("Set(%s/%s) error = %v", in.Service, in.ID, err)
	}
}

// waitRecord waits until the key holds the record in.
func (rt *registrarTest) waitRecord(t *testing.T, in schema.Instance) {
	t.Helper()
	key, want := rt.k.Instance(in.Service, in.ID), mustMarshal(t, in)
	waitFor(t, 10*time.Second, func() bool {
		kv := getKV(t, rt.cli, key)
		return kv != nil && string(kv.Value) == want
	}, "record "+key)
}

// revStays fails the test if the store revision moves from rev within d:
// a bounded observation window for "no writes".
func (rt *registrarTest) revStays(t *testing.T, rev int64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if got := rt.e.Rev(t, rt.cli); got != rev {
			t.Fatalf("store revision moved from %d to %d with nothing to write", rev, got)
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			return
		}
	}
}

func TestRegistrarWritesV1Record(t *testing.T) {
	rt := newRegistrarTest(t)
	since := time.Date(2026, 11, 21, 19, 0, 0, 0, time.UTC)
	in := schema.Instance{
		Service: "web", ID: "web-app1-8080", Node: "app1",
		Address: "10.0.0.5", Port: 8080,
		Tags: []string{"v2"}, Meta: map[string]string{"version": "1.4.2"}, Weight: 100,
		DependsOn: []string{"api", "db"},
		Health: schema.Health{
			Shallow: health.Passing, Deep: health.Critical, Since: since,
			Checks: []schema.Check{{Name: "http", Kind: health.Shallow, Status: health.Passing, Output: "HTTP 200 OK", Since: since}},
		},
		RegisteredAt: since,
	}
	rt.set(t, in)
	runInBackground(t, rt.r.Run)
	rt.waitRecord(t, in)

	if got, want := keysUnder(t, rt.cli, "/"), []string{"/test/services/web/web-app1-8080"}; !slices.Equal(got, want) {
		t.Fatalf("keys in etcd = %q, want %q", got, want)
	}
	kv := getKV(t, rt.cli, "/test/services/web/web-app1-8080")
	var got map[string]any
	if err := json.Unmarshal(kv.Value, &got); err != nil {
		t.Fatalf("record %s is not JSON: %v", kv.Value, err)
	}
	want := map[string]any{
		"v": 1.0, "service": "web", "id": "web-app1-8080", "node": "app1",
		"address": "10.0.0.5", "port": 8080.0,
		"tags": []any{"v2"}, "meta": map[string]any{"version": "1.4.2"}, "weight": 100.0,
		"depends_on": []any{"api", "db"},
		"health": map[string]any{
			"shallow": "passing", "deep": "critical", "since": "2026-11-21T19:00:00Z",
			"checks": []any{map[string]any{"name": "http", "kind": "shallow", "status": "passing",
				"output": "HTTP 200 OK", "since": "2026-11-21T19:00:00Z"}},
		},
		"draining":      false,
		"registered_at": "2026-11-21T19:00:00Z",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("record = %s\nwant %v", kv.Value, want)
	}
	if _, err := schema.DecodeInstance(kv.Value); err != nil {
		t.Errorf("DecodeInstance(record) error = %v", err)
	}

	if kv.Lease == 0 {
		t.Fatalf("record has no lease")
	}
	ttl, err := rt.cli.TimeToLive(opCtx(t), etcd.LeaseID(kv.Lease))
	if err != nil {
		t.Fatalf("TimeToLive(%x): %v", kv.Lease, err)
	}
	if ttl.GrantedTTL != int64(testTTL/time.Second) || ttl.TTL < 1 || ttl.TTL > ttl.GrantedTTL {
		t.Errorf("lease TTL = %ds of %ds granted, want about %s", ttl.TTL, ttl.GrantedTTL, testTTL)
	}
	if got := metricValue(t, rt.reg, "registrar_etcd_writes_total"); got != 1 {
		t.Errorf("registrar_etcd_writes_total = %v, want 1", got)
	}
	if got := metricValue(t, rt.reg, "registrar_registrations_total"); got != 1 {
		t.Errorf("registrar_registrations_total = %v, want 1", got)
	}
}

func TestRegistrarWritesOnlyChanges(t *testing.T) {
	rt := newRegistrarTest(t)
	web1 := testInstance("web", "web-1")
	rt.set(t, web1)
	runInBackground(t, rt.r.Run)
	rt.waitRecord(t, web1)
	rev := rt.e.Rev(t, rt.cli)
	writes := metricValue(t, rt.reg, "registrar_etcd_writes_total")

	// Identical content, twice: nothing to write. The window is longer
	// than the TTL, so the record also shows that keepalives hold the lease
	// (an expired lease would delete the key and move the revision).
	rt.set(t, web1)
	same := web1
	same.Tags = []string{} // marshals to the same bytes as nil
	rt.set(t, same)
	rt.revStays(t, rev, testTTL+500*time.Millisecond)
	if got := metricValue(t, rt.reg, "registrar_etcd_writes_total"); got != writes {
		t.Errorf("registrar_etcd_writes_total = %v after identical Sets, want %v", got, writes)
	}
	if got := metricValue(t, rt.reg, "registrar_registrations_total"); got != 1 {
		t.Errorf("registrar_registrations_total = %v, want 1 (the lease was kept)", got)
	}

	// One changed record: one write.
	web1.Health.Shallow = health.Critical
	rt.set(t, web1)
	rt.waitRecord(t, web1)
	if got := rt.e.Rev(t, rt.cli); got != rev+1 {
		t.Errorf("after one changed record, revision = %d, want %d", got, rev+1)
	}

	// A changed and a new record: two writes.
	web1.Weight = 10
	web2 := testInstance("web", "web-2")
	rt.set(t, web1)
	rt.set(t, web2)
	rt.waitRecord(t, web1)
	rt.waitRecord(t, web2)
	// Writes are batched into transactions: the two records take one
	// revision if they were written together, two if not.
	after := rt.e.Rev(t, rt.cli)
	if after != rev+2 && after != rev+3 {
		t.Errorf("after two changed records, revision = %d, want %d or %d", after, rev+2, rev+3)
	}
	rt.revStays(t, after, time.Second)
	if got := metricValue(t, rt.reg, "registrar_etcd_writes_total"); got != writes+3 {
		t.Errorf("registrar_etcd_writes_total = %v, want %v", got, writes+3)
	}
	if got := metricValue(t, rt.reg, "registrar_etcd_write_errors_total"); got != 0 {
		t.Errorf("registrar_etcd_write_errors_total = %v, want 0", got)
	}
}

func TestRegistrarSetRejectsInvalidRecord(t *testing.T) {
	rt := newRegistrarTest(t)
	bad := testInstance("web", "web-1")
	bad.Address = "10.0.0.1\nserver evil 6.6.6.6:80"
	err := rt.r.Set(bad)
	var fe *schema.FieldError
	if !errors.As(err, &fe) || fe.Field != "address" {
		t.Fatalf("Set(address %q) error = %v, want field %q", bad.Address, err, "address")
	}

	good := testInstance("web", "web-2")
	rt.set(t, good)
	runInBackground(t, rt.r.Run)
	rt.waitRecord(t, good)
	if got, want := keysUnder(t, rt.cli, "/test/"), []string{rt.k.Instance("web", "web-2")}; !slices.Equal(got, want) {
		t.Errorf("keys = %q, want %q: the rejected record must not be written", got, want)
	}
}

func TestRegistrarRemove(t *testing.T) {
	rt := newRegistrarTest(t)
	web1, web2 := testInstance("web", "web-1"), testInstance("web", "web-2")
	runInBackground(t, rt.r.Run)
	rt.set(t, web1)
	rt.set(t, web2)
	rt.waitRecord(t, web1)
	rt.waitRecord(t, web2)
	lease := getKV(t, rt.cli, rt.k.Instance("web", "web-2")).Lease
	rev := rt.e.Rev(t, rt.cli)

	rt.r.Remove("web", "web-1")
	key := rt.k.Instance("web", "web-1")
	waitFor(t, 10*time.Second, func() bool { return getKV(t, rt.cli, key) == nil }, "deletion of "+key)
	if got := rt.e.Rev(t, rt.cli); got != rev+1 {
		t.Errorf("after Remove, revision = %d, want %d (one delete)", got, rev+1)
	}
	if kv := getKV(t, rt.cli, rt.k.Instance("web", "web-2")); kv == nil || kv.Lease != lease || kv.ModRevision > rev {
		t.Errorf("web-2 after removing web-1 = %v, want it untouched", kv)
	}

	// Removing what is not registered writes nothing.
	rt.r.Remove("web", "web-1")
	rt.r.Remove("nope", "nope-1")
	rt.revStays(t, rev+1, 500*time.Millisecond)

	rt.r.Remove("web", "web-2")
	waitFor(t, 10*time.Second, func() bool { return len(keysUnder(t, rt.cli, "/test/")) == 0 }, "no keys left")
}

func TestRegistrarRevokesLeaseWhenRunEnds(t *testing.T) {
	rt := newRegistrarTest(t)
	web1, api1 := testInstance("web", "web-1"), testInstance("api", "api-1")
	rt.set(t, web1)
	rt.set(t, api1)
	stop := runInBackground(t, rt.r.Run)
	rt.waitRecord(t, web1)
	rt.waitRecord(t, api1)
	lease := getKV(t, rt.cli, rt.k.Instance("web", "web-1")).Lease

	if err := stop(); err != nil {
		t.Fatalf("Run() = %v, want nil after its context was cancelled", err)
	}
	// Gone at once, not after the TTL.
	if got := keysUnder(t, rt.cli, "/test/"); len(got) != 0 {
		t.Errorf("keys right after Run returned = %q, want none", got)
	}
	ttl, err := rt.cli.TimeToLive(opCtx(t), etcd.LeaseID(lease))
	if err != nil {
		t.Fatalf("TimeToLive(%x): %v", lease, err)
	}
	if ttl.TTL != -1 {
		t.Errorf("lease TTL after Run returned = %d, want -1 (revoked)", ttl.TTL)
	}
}

func TestRegistrarReregistersAfterLeaseLoss(t *testing.T) {
	rt := newRegistrarTest(t)
	web1, api1 := testInstance("web", "web-1"), testInstance("api", "api-1")
	rt.set(t, web1)
	rt.set(t, api1)
	runInBackground(t, rt.r.Run)
	rt.waitRecord(t, web1)
	rt.waitRecord(t, api1)
	old := getKV(t, rt.cli, rt.k.Instance("web", "web-1")).Lease

	// Lose the lease from under the registrar, as an expiry during a
	// partition would.
	if _, err := rt.cli.Revoke(opCtx(t), etcd.LeaseID(old)); err != nil {
		t.Fatalf("Revoke(%x): %v", old, err)
	}
	if got := keysUnder(t, rt.cli, "/test/"); len(got) != 0 {
		t.Fatalf("keys after revoke = %q, want none", got)
	}

	var lease int64
	waitFor(t, 10*time.Second, func() bool {
		a, b := getKV(t, rt.cli, rt.k.Instance("web", "web-1")), getKV(t, rt.cli, rt.k.Instance("api", "api-1"))
		if a == nil || b == nil || a.Lease == 0 || a.Lease == old || b.Lease != a.Lease {
			return false
		}
		lease = a.Lease
		return true
	}, "both records under a new lease")
	rt.waitRecord(t, web1)
	rt.waitRecord(t, api1)

	ttl, err := rt.cli.TimeToLive(opCtx(t), etcd.LeaseID(lease))
	if err != nil {
		t.Fatalf("TimeToLive(%x): %v", lease, err)
	}
	if ttl.GrantedTTL != int64(testTTL/time.Second) {
		t.Errorf("new lease granted TTL = %ds, want %s", ttl.GrantedTTL, testTTL)
	}
	if got := metricValue(t, rt.reg, "registrar_lease_keepalive_lost_total"); got < 1 {
		t.Errorf("registrar_lease_keepalive_lost_total = %v, want >= 1", got)
	}
	if got := metricValue(t, rt.reg, "registrar_registrations_total"); got != 2 {
		t.Errorf("registrar_registrations_total = %v, want 2", got)
	}
}

// TestRegistrarSurvivesPartition cuts the registrar off from etcd for longer
// than the TTL: etcd expires the lease and deletes the records, Run keeps
// going, and when the partition heals it registers everything again under
// a new lease, including a change made during the partition.
func TestRegistrarSurvivesPartition(t *testing.T) {
	e := startEtcd(t)
	direct := e.Client(t)
	p := newPartition(t, e.Endpoints[0])
	reg := prometheus.NewRegistry()
	k := schema.Keys{Prefix: "/test"}
	r := NewWriter(WriterOptions{Client: p.client(t), Keys: k, TTL: testTTL, Registerer: reg})
	rt := &registrarTest{e: e, cli: direct, reg: reg, r: r, k: k}

	web1 := testInstance("web", "web-1")
	rt.set(t, web1)
	stop := runInBackground(t, r.Run)
	rt.waitRecord(t, web1)
	old := getKV(t, direct, k.Instance("web", "web-1")).Lease

	p.Cut()
	web1.Health.Shallow = health.Warning
	rt.set(t, web1)
	waitFor(t, 10*time.Second, func() bool { return getKV(t, direct, k.Instance("web", "web-1")) == nil },
		"etcd to expire the lease of the cut-off registrar")
	p.Heal()

	rt.waitRecord(t, web1)
	if kv := getKV(t, direct, k.Instance("web", "web-1")); kv.Lease == old {
		t.Errorf("record after the partition has the expired lease %x, want a new one", old)
	}
	if got := metricValue(t, reg, "registrar_lease_keepalive_lost_total"); got < 1 {
		t.Errorf("registrar_lease_keepalive_lost_total = %v, want >= 1", got)
	}
	if err := stop(); err != nil {
		t.Errorf("Run() = %v, want nil", err)
	}
	if got := keysUnder(t, direct, "/test/"); len(got) != 0 {
		t.Errorf("keys after Run returned = %q, want none", got)
	}
}
