package registrar

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/internal/etcdtest"
	"github.com/rewire/rewire/internal/testutil"
	"github.com/rewire/rewire/internal/yamlconf"
	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/registry/schema"
	"go.etcd.io/etcd/api/v3/mvccpb"
	etcd "go.etcd.io/etcd/client/v3"
)

// ---- harness ----

// waitFor is testutil.WaitFor with this package's argument order.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	testutil.WaitFor(t, timeout, msg, cond)
}

// newClient returns an etcd client configured like the daemon's
// (registry.Config.Client: reconnects within about a second after an
// outage), closed at cleanup.
func newClient(t testing.TB, e *etcdtest.Etcd) *etcd.Client {
	t.Helper()
	cli, err := registry.Config{Endpoints: e.Endpoints}.Client()
	if err != nil {
		t.Fatalf("registry.Config.Client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// opCtx bounds one etcd request made by a test.
func opCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const testPrefix = "/rewire"

var testKeys = schema.Keys{Prefix: testPrefix}

// testConfig returns a registrar config for the given services.
func testConfig(services ...ServiceConfig) Config {
	cfg := DefaultConfig()
	cfg.Etcd.Prefix = testPrefix
	cfg.Node = "test"
	cfg.Services = services
	return cfg
}

// service returns a service named name with id name-1 and checks.
func service(name string, checks ...CheckConfig) ServiceConfig {
	return ServiceConfig{Name: name, ID: name + "-1", Address: "127.0.0.1", Port: 8080, Checks: checks}
}

// httpCheck probes url every 100ms.
func httpCheck(url string) CheckConfig {
	return CheckConfig{Name: "http", HTTP: url, Interval: 100 * time.Millisecond, Timeout: time.Second}
}

// harness is an Agent running against an embedded etcd.
type harness struct {
	t    *testing.T
	cli  *etcd.Client // the test's own client, to observe etcd
	a    *Agent
	reg  *prometheus.Registry
	stop func() // cancels Run and waits for it; idempotent
}

// startAgent validates cfg, starts an Agent on e with a client of its own
// and runs it until stop or cleanup (which comes before the clients and
// etcd are closed).
func startAgent(t *testing.T, e *etcdtest.Etcd, cfg Config) *harness {
	t.Helper()
	if err := cfg.Validate(&yamlconf.Doc{File: "go"}); err != nil {
		t.Fatalf("test config is invalid: %v", err)
	}
	h := &harness{t: t, cli: newClient(t, e), reg: prometheus.NewRegistry()}
	h.a = New(cfg, Options{Client: newClient(t, e), Registerer: h.reg})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.a.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil", err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("Run did not return within 20s of its context being cancelled")
			}
		})
	}
	t.Cleanup(h.stop)
	return h
}

// kv returns the key's KeyValue, or nil if it does not exist.
func (h *harness) kv(key string) *mvccpb.KeyValue {
	h.t.Helper()
	resp, err := h.cli.Get(opCtx(h.t), key)
	if err != nil {
		h.t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	return resp.Kvs[0]
}

// record returns the stored record of service/id and whether it exists.
func (h *harness) record(svc, id string) (schema.Instance, bool) {
	h.t.Helper()
	kv := h.kv(testKeys.Instance(svc, id))
	if kv == nil {
		return schema.Instance{}, false
	}
	in, err := schema.DecodeInstance(kv.Value)
	if err != nil {
		h.t.Fatalf("decode %s: %v\n%s", kv.Key, err, kv.Value)
	}
	return in, true
}

// waitRecord waits until the stored record of service/id exists and
// satisfies cond, and returns it.
func (h *harness) waitRecord(timeout time.Duration, svc, id string, cond func(schema.Instance) bool, msg string) schema.Instance {
	h.t.Helper()
	var in schema.Instance
	waitFor(h.t, timeout, func() bool {
		var ok bool
		in, ok = h.record(svc, id)
		return ok && cond(in)
	}, fmt.Sprintf("record %s/%s: %s", svc, id, msg))
	return in
}

// metric returns the value of a counter or gauge without labels.
func (h *harness) metric(name string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	h.t.Fatalf("metric %s not registered", name)
	return 0
}

func checkNamed(in schema.Instance, name string) *schema.Check {
	for i := range in.Health.Checks {
		if in.Health.Checks[i].Name == name {
			return &in.Health.Checks[i]
		}
	}
	return nil
}

func checkStatus(in schema.Instance, name string) health.Status {
	if c := checkNamed(in, name); c != nil {
		return c.Status
	}
	return ""
}

// healthServer is an HTTP health endpoint whose status code the test sets.
type healthServer struct {
	*httptest.Server
	code atomic.Int32
	hits atomic.Int64
}

func newHealthServer(t *testing.T, code int) *healthServer {
	s := &healthServer{}
	s.code.Store(int32(code))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		w.WriteHeader(int(s.code.Load()))
	}))
	t.Cleanup(s.Close)
	return s
}

// events records the events under a prefix, from the revision current
// when it is called.
type events struct {
	mu  sync.Mutex
	evs []event
}

type event struct {
	at  time.Time
	typ mvccpb.Event_EventType
	key string
	rev int64
	rec schema.Instance // decoded for PUTs
}

func watchPrefix(t *testing.T, cli *etcd.Client, e *etcdtest.Etcd, prefix string) *events {
	t.Helper()
	rev := e.Rev(t, cli)
	ctx, cancel := context.WithCancel(context.Background())
	wch := cli.Watch(ctx, prefix, etcd.WithPrefix(), etcd.WithRev(rev+1))
	w := &events{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for resp := range wch {
			now := time.Now()
			w.mu.Lock()
			for _, ev := range resp.Events {
				x := event{at: now, typ: ev.Type, key: string(ev.Kv.Key), rev: ev.Kv.ModRevision}
				if ev.Type == mvccpb.PUT {
					x.rec, _ = schema.DecodeInstance(ev.Kv.Value)
				}
				w.evs = append(w.evs, x)
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("watch of %s did not end within 10s of its context being cancelled", prefix)
		}
	})
	return w
}

// of returns the events of key (every key if empty) and type.
func (w *events) of(key string, typ mvccpb.Event_EventType) []event {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []event
	for _, x := range w.evs {
		if (key == "" || x.key == key) && x.typ == typ {
			out = append(out, x)
		}
	}
	return out
}

// ---- 1. deep health ----

// TestDeepHealthFollowsDependencies: web depends on db; web's deep health
// follows db's routability in the registry while its shallow health stays
// its own.
func TestDeepHealthFollowsDependencies(t *testing.T) {
	e := etcdtest.Start(t)
	dbSrv := newHealthServer(t, http.StatusOK)
	webSrv := newHealthServer(t, http.StatusOK)
	db := service("db", httpCheck(dbSrv.URL))
	web := service("web", httpCheck(webSrv.URL))
	web.DependsOn = []string{"db"}
	orphan := service("orphan", httpCheck(webSrv.URL))
	orphan.DependsOn = []string{"ghost"}
	h := startAgent(t, e, testConfig(db, web, orphan))

	webOK := func(in schema.Instance) bool {
		return in.Health.Shallow == health.Passing && in.Health.Deep == health.Passing && checkStatus(in, "dep.db") == health.Passing
	}
	in := h.waitRecord(5*time.Second, "web", "web-1", webOK, "shallow, deep and dep.db passing")
	if c := checkNamed(in, "dep.db"); c.Kind != health.Deep || !strings.Contains(c.Output, "db") {
		t.Errorf("dep.db check = %+v, want kind deep and output naming db", *c)
	}

	// A dependency that is not registered at all.
	in = h.waitRecord(5*time.Second, "orphan", "orphan-1", func(in schema.Instance) bool {
		return in.Health.Deep == health.Critical
	}, "deep critical")
	if in.Health.Shallow != health.Passing {
		t.Errorf("orphan shallow = %s, want passing", in.Health.Shallow)
	}
	if c := checkNamed(in, "dep.ghost"); c == nil || c.Status != health.Critical || !strings.Contains(c.Output, "no instances") {
		t.Errorf("dep.ghost check = %+v, want critical with output containing %q", c, "no instances")
	}

	// db goes down: its own record is critical, web's deep health follows,
	// web's shallow health does not.
	dbSrv.code.Store(http.StatusServiceUnavailable)
	h.waitRecord(5*time.Second, "db", "db-1", func(in schema.Instance) bool {
		return in.Health.Shallow == health.Critical
	}, "shallow critical")
	in = h.waitRecord(5*time.Second, "web", "web-1", func(in schema.Instance) bool {
		return in.Health.Deep == health.Critical
	}, "deep critical")
	if in.Health.Shallow != health.Passing {
		t.Errorf("web shallow = %s while db is down, want passing", in.Health.Shallow)
	}
	if c := checkNamed(in, "dep.db"); c == nil || c.Status != health.Critical || !strings.Contains(c.Output, "db") {
		t.Errorf("dep.db check = %+v, want critical with output naming db", c)
	}
	if got := checkStatus(in, "http"); got != health.Passing {
		t.Errorf("web's own http check = %s, want passing", got)
	}

	// db recovers.
	dbSrv.code.Store(http.StatusOK)
	h.waitRecord(5*time.Second, "web", "web-1", webOK, "deep passing again after db recovered")
}

// ---- 2. write rate limit ----

// TestWriteRateLimit flaps a check on every probe for 10s and counts the
// writes of its record: at most the burst plus one per WriteInterval (plus
// slack for the registration), and the last state is never lost.
func TestWriteRateLimit(t *testing.T) {
	const (
		flapFor       = 10 * time.Second
		writeInterval = time.Second
		burst         = 3 // registry.WriterOptions.WriteBurst default
	)
	e := etcdtest.Start(t)
	var flapping atomic.Bool
	var hits atomic.Int64
	flapping.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := hits.Add(1); flapping.Load() && n%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	ch := httpCheck(srv.URL)
	ch.Rise, ch.Fall = 1, 1
	cfg := testConfig(service("flappy", ch))
	cfg.WriteInterval = writeInterval
	key := testKeys.Instance("flappy", "flappy-1")

	cli := newClient(t, e)
	w := watchPrefix(t, cli, e, key)
	h := startAgent(t, e, cfg)
	waitFor(t, 5*time.Second, func() bool { return len(w.of(key, mvccpb.PUT)) > 0 }, "the first write")
	start := w.of(key, mvccpb.PUT)[0].at

	select {
	case <-time.After(time.Until(start.Add(flapFor))): // the scenario's length, not a synchronisation
	case <-t.Context().Done():
		t.Fatal("test ended while flapping")
	}
	flapping.Store(false)
	stopped := time.Now()
	flapHits := hits.Load()

	// Convergence: the record in etcd becomes passing and equal to the
	// agent's latest record within 2*WriteInterval.
	waitFor(t, 2*writeInterval, func() bool {
		list := h.a.Instances()
		kv := h.kv(key)
		if len(list) != 1 || kv == nil || list[0].Health.Shallow != health.Passing {
			return false
		}
		want, err := list[0].Marshal()
		return err == nil && bytes.Equal(kv.Value, want)
	}, "the record to converge to passing after the flapping stopped")
	converged := time.Since(stopped)

	var during, after int
	for _, ev := range w.of(key, mvccpb.PUT) {
		if ev.at.Before(stopped) {
			during++
		} else {
			after++
		}
	}
	limit := burst + int(flapFor/writeInterval) + 2
	t.Logf("flapping %s (%d probes): %d writes during, %d after; converged %s after the flapping stopped; writes_total=%v deferred_total=%v",
		flapFor, flapHits, during, after, converged.Round(time.Millisecond),
		h.metric("registrar_etcd_writes_total"), h.metric("registrar_etcd_writes_deferred_total"))
	if flapHits < 40 {
		t.Errorf("only %d probes in %s: the check did not flap enough to test anything", flapHits, flapFor)
	}
	if during+after > limit {
		t.Errorf("%d writes of %s (%d during the flapping, %d after), want at most %d (burst %d + one per %s + 2)",
			during+after, key, during, after, limit, burst, writeInterval)
	}
	if h.metric("registrar_etcd_writes_deferred_total") == 0 {
		t.Errorf("registrar_etcd_writes_deferred_total = 0, want writes held back by the rate limit")
	}
}

// ---- 3. reload ----

// TestReload: changed instances are rewritten, removed ones deleted, new
// ones registered, and unchanged ones not touched at all.
func TestReload(t *testing.T) {
	e := etcdtest.Start(t)
	srv := newHealthServer(t, http.StatusOK)
	config := func(services ...string) Config {
		var ss []ServiceConfig
		for _, name := range services {
			s := service(name, httpCheck(srv.URL))
			s.Tags = []string{"v1"}
			if name == "b" && slices.Contains(services, "d") {
				s.Tags = []string{"v2", "canary"}
			}
			ss = append(ss, s)
		}
		return testConfig(ss...)
	}
	h := startAgent(t, e, config("a", "b", "c"))
	for _, s := range []string{"a", "b", "c"} {
		h.waitRecord(5*time.Second, s, s+"-1", func(in schema.Instance) bool {
			return in.Health.Shallow == health.Passing
		}, "registered passing")
	}
	modRev := map[string]int64{}
	for _, s := range []string{"a", "b", "c"} {
		modRev[s] = h.kv(testKeys.Instance(s, s+"-1")).ModRevision
	}

	newCfg := config("a", "b", "d")
	if err := newCfg.Validate(&yamlconf.Doc{File: "go"}); err != nil {
		t.Fatal(err)
	}
	if err := h.a.Reload(opCtx(t), newCfg); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	h.waitRecord(5*time.Second, "b", "b-1", func(in schema.Instance) bool {
		return slices.Equal(in.Tags, []string{"v2", "canary"})
	}, "rewritten with the new tags")
	h.waitRecord(5*time.Second, "d", "d-1", func(in schema.Instance) bool {
		return in.Health.Shallow == health.Passing
	}, "registered passing")
	waitFor(t, 5*time.Second, func() bool { return h.kv(testKeys.Instance("c", "c-1")) == nil }, "c's record to be deleted")
	if got := h.kv(testKeys.Instance("a", "a-1")).ModRevision; got != modRev["a"] {
		t.Errorf("a's mod_revision = %d after the reload, want %d (unchanged)", got, modRev["a"])
	}
	if got := len(h.a.Instances()); got != 3 {
		t.Errorf("Instances() has %d entries after the reload, want 3", got)
	}

	// Reloading the same config writes nothing while the checks keep running.
	rev := e.Rev(t, h.cli)
	hits := srv.hits.Load()
	if err := h.a.Reload(opCtx(t), config("a", "b", "d")); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	select {
	case <-time.After(time.Second): // an observation window: nothing may happen in it
	case <-t.Context().Done():
		t.Fatal("test ended")
	}
	if got := e.Rev(t, h.cli); got != rev {
		t.Errorf("store revision went from %d to %d after reloading an unchanged config, want no writes", rev, got)
	}
	if got := srv.hits.Load() - hits; got < 10 {
		t.Errorf("%d probes in the 1s after the reload, want the checks to keep running", got)
	}
	if got := h.metric("registrar_config_reloads_total"); got != 2 {
		t.Errorf("registrar_config_reloads_total = %v, want 2", got)
	}
}

// ---- 4. TTL checks and the local API ----

func TestTTLCheckAndLocalAPI(t *testing.T) {
	e := etcdtest.Start(t)
	const ttl = 2 * time.Second
	h := startAgent(t, e, testConfig(service("app", CheckConfig{Name: "push", TTL: ttl})))
	api := socketAPI(t, h)

	// Before any push the TTL check has reported "no status pushed yet",
	// so the record is published critical.
	in := h.waitRecord(5*time.Second, "app", "app-1", func(schema.Instance) bool { return true }, "published")
	if in.Health.Shallow != health.Critical {
		t.Errorf("shallow before any push = %s, want critical", in.Health.Shallow)
	}
	if c := checkNamed(in, "push"); c == nil || c.Output != "no status pushed yet" {
		t.Errorf("push check before any push = %+v, want output %q", c, "no status pushed yet")
	}

	pushed := time.Now()
	if code := apiCall(t, api, "PUT", "/v1/checks/app/push", `{"status":"passing","output":"ok"}`, nil); code != http.StatusOK {
		t.Fatalf("PUT /v1/checks/app/push = %d, want 200", code)
	}
	in = h.waitRecord(time.Second, "app", "app-1", func(in schema.Instance) bool {
		return in.Health.Shallow == health.Passing
	}, "passing within 1s of the push")
	t.Logf("record passing %s after the push", time.Since(pushed).Round(time.Millisecond))
	if c := checkNamed(in, "push"); c == nil || c.Output != "ok" {
		t.Errorf("push check = %+v, want output ok", c)
	}

	var list []schema.Instance
	if code := apiCall(t, api, "GET", "/v1/services", "", &list); code != http.StatusOK {
		t.Errorf("GET /v1/services = %d, want 200", code)
	}
	if len(list) != 1 || list[0].Service != "app" || list[0].ID != "app-1" || list[0].Health.Shallow != health.Passing {
		t.Errorf("GET /v1/services = %+v, want app/app-1 passing", list)
	}
	var raw []map[string]any
	apiCall(t, api, "GET", "/v1/services", "", &raw)
	for _, field := range []string{"meta", "tags", "depends_on"} {
		if len(raw) != 1 || raw[0][field] == nil {
			t.Errorf("GET /v1/services: %q is null or missing, want it as stored (empty, not null): %v", field, raw)
		}
	}

	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{name: "bad status", method: "PUT", path: "/v1/checks/app/push", body: `{"status":"fine"}`, want: http.StatusBadRequest},
		{name: "unknown field", method: "PUT", path: "/v1/checks/app/push", body: `{"status":"passing","colour":"green"}`, want: http.StatusBadRequest},
		{name: "unknown check", method: "PUT", path: "/v1/checks/app/nope", body: `{"status":"passing"}`, want: http.StatusNotFound},
		{name: "unknown service", method: "PUT", path: "/v1/checks/nope/push", body: `{"status":"passing"}`, want: http.StatusNotFound},
		{name: "unknown id", method: "PUT", path: "/v1/checks/app/push?id=app-2", body: `{"status":"passing"}`, want: http.StatusNotFound},
		{name: "maintenance of a service that is not local", method: "PUT", path: "/v1/maintenance/other", body: `{"reason":"x"}`, want: http.StatusNotFound},
		{name: "maintenance off for a service that is not local", method: "DELETE", path: "/v1/maintenance/other", want: http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := apiCall(t, api, tc.method, tc.path, tc.body, nil); got != tc.want {
				t.Errorf("%s %s %s = %d, want %d", tc.method, tc.path, tc.body, got, tc.want)
			}
		})
	}
	if kv := h.kv(testKeys.Maintenance("other", "")); kv != nil {
		t.Errorf("maintenance key for a non-local service was written: %s", kv.Value)
	}

	// Maintenance of the service's local instances, then of the instance:
	// both write the instance's entry, never the service-wide one.
	for _, path := range []string{"/v1/maintenance/app", "/v1/maintenance/app/app-1"} {
		tc := struct{ path string }{path}
		key := testKeys.Maintenance("app", "app-1")
		if code := apiCall(t, api, "PUT", tc.path, `{"reason":"testing the API"}`, nil); code != http.StatusOK {
			t.Fatalf("PUT %s = %d, want 200", tc.path, code)
		}
		kv := h.kv(key)
		if kv == nil {
			t.Fatalf("PUT %s: no key %s in etcd", tc.path, key)
		}
		var m schema.Maintenance
		if err := json.Unmarshal(kv.Value, &m); err != nil || m.Reason != "testing the API" || !strings.HasPrefix(m.By, "registrar-api@test uid=") {
			t.Errorf("%s = %s (%v), want reason %q and by the socket peer's uid", key, kv.Value, err, "testing the API")
		}
		if kv := h.kv(testKeys.Maintenance("app", "")); kv != nil {
			t.Errorf("PUT %s wrote the service-wide entry %s", tc.path, kv.Value)
		}
		var del struct{ Removed bool }
		if code := apiCall(t, api, "DELETE", tc.path, "", &del); code != http.StatusOK || !del.Removed {
			t.Errorf("DELETE %s = %d removed=%v, want 200 removed=true", tc.path, code, del.Removed)
		}
		if kv := h.kv(key); kv != nil {
			t.Errorf("DELETE %s: key %s still exists", tc.path, key)
		}
	}

	// No push for longer than the TTL: critical.
	in = h.waitRecord(ttl+3*time.Second, "app", "app-1", func(in schema.Instance) bool {
		return in.Health.Shallow == health.Critical
	}, "critical after the TTL expired")
	expired := time.Since(pushed)
	t.Logf("record critical %s after the last push (ttl %s)", expired.Round(time.Millisecond), ttl)
	if expired < ttl {
		t.Errorf("record critical %s after the push, before the %s TTL", expired, ttl)
	}
	if c := checkNamed(in, "push"); c == nil || !strings.Contains(c.Output, "TTL expired") {
		t.Errorf("push check = %+v, want output containing %q", c, "TTL expired")
	}
}

// ---- 5. drain ----

// TestDrain: Drain marks every record draining, then removes each instance
// after its own drain period.
func TestDrain(t *testing.T) {
	e := etcdtest.Start(t)
	srv := newHealthServer(t, http.StatusOK)
	quick := service("quick", httpCheck(srv.URL))
	quick.Drain = 300 * time.Millisecond
	slow := service("slow", httpCheck(srv.URL))
	slow.Drain = time.Second
	h := startAgent(t, e, testConfig(slow, quick))
	for _, s := range []string{"quick", "slow"} {
		h.waitRecord(5*time.Second, s, s+"-1", func(in schema.Instance) bool {
			return in.Health.Shallow == health.Passing && !in.Draining
		}, "registered passing")
	}
	w := watchPrefix(t, h.cli, e, testKeys.Services())

	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.a.Drain(context.Background())
	}()
	h.waitRecord(time.Second, "slow", "slow-1", func(in schema.Instance) bool { return in.Draining }, "draining")
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return within 10s")
	}
	took := time.Since(start)

	dels := map[string]time.Time{}
	for _, s := range []string{"quick", "slow"} {
		key := testKeys.Instance(s, s+"-1")
		var ds []event
		waitFor(t, 2*time.Second, func() bool { ds = w.of(key, mvccpb.DELETE); return len(ds) == 1 }, s+"'s record to be deleted")
		dels[s] = ds[0].at
		puts := w.of(key, mvccpb.PUT)
		if len(puts) == 0 || !puts[len(puts)-1].rec.Draining {
			t.Errorf("%s: the record was not marked draining before it was deleted (PUTs: %d)", s, len(puts))
		}
	}
	t.Logf("Drain took %s; quick deleted after %s, slow after %s", took.Round(time.Millisecond),
		dels["quick"].Sub(start).Round(time.Millisecond), dels["slow"].Sub(start).Round(time.Millisecond))
	if !dels["quick"].Before(dels["slow"]) {
		t.Errorf("quick (drain 300ms) deleted at %s, not before slow (drain 1s) at %s", dels["quick"], dels["slow"])
	}
	if d := dels["quick"].Sub(start); d < quick.Drain {
		t.Errorf("quick deleted %s after Drain started, before its drain period %s", d, quick.Drain)
	}
	if d := dels["slow"].Sub(start); d < slow.Drain {
		t.Errorf("slow deleted %s after Drain started, before its drain period %s", d, slow.Drain)
	}
	if took > slow.Drain+2*time.Second {
		t.Errorf("Drain took %s, want about %s", took, slow.Drain)
	}
}

// TestDrainCancelled: Drain with a context that has ended returns at once
// and leaves the records for Run's shutdown, which revokes the lease.
func TestDrainCancelled(t *testing.T) {
	e := etcdtest.Start(t)
	srv := newHealthServer(t, http.StatusOK)
	s1, s2 := service("one", httpCheck(srv.URL)), service("two", httpCheck(srv.URL))
	s1.Drain, s2.Drain = 5*time.Second, 10*time.Second
	h := startAgent(t, e, testConfig(s1, s2))
	for _, s := range []string{"one", "two"} {
		h.waitRecord(5*time.Second, s, s+"-1", func(in schema.Instance) bool {
			return in.Health.Shallow == health.Passing
		}, "registered passing")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	h.a.Drain(ctx)
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("Drain with an ended context took %s, want it to return at once", took)
	}
	for _, s := range []string{"one", "two"} {
		if _, ok := h.record(s, s+"-1"); !ok {
			t.Errorf("%s's record was deleted by a cut-short Drain, want it left for Run's shutdown", s)
		}
	}
	h.stop()
	resp, err := h.cli.Get(opCtx(t), testKeys.Services(), etcd.WithPrefix(), etcd.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 {
		t.Errorf("%d records left after Run returned, want 0 (lease revoked)", resp.Count)
	}
}

// ---- 6. lease loss ----

// TestLeaseLoss revokes the registrar's lease behind its back: the records
// come back under a new lease.
func TestLeaseLoss(t *testing.T) {
	e := etcdtest.Start(t)
	srv := newHealthServer(t, http.StatusOK)
	cfg := testConfig(service("x", httpCheck(srv.URL)), service("y", httpCheck(srv.URL)))
	h := startAgent(t, e, cfg)
	for _, s := range []string{"x", "y"} {
		h.waitRecord(5*time.Second, s, s+"-1", func(in schema.Instance) bool { return true }, "registered")
	}
	lease := etcd.LeaseID(h.kv(testKeys.Instance("x", "x-1")).Lease)
	if lease == 0 {
		t.Fatal("record has no lease")
	}
	if _, err := h.cli.Revoke(opCtx(t), lease); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	revoked := time.Now()
	for _, s := range []string{"x", "y"} {
		waitFor(t, 2*time.Second, func() bool { // the agent sees its records vanish and verifies the lease at once
			kv := h.kv(testKeys.Instance(s, s+"-1"))
			return kv != nil && kv.Lease != 0 && etcd.LeaseID(kv.Lease) != lease
		}, s+"'s record under a new lease")
	}
	back := time.Since(revoked)
	t.Logf("records back under a new lease %s after the revoke (lease_ttl %s, keepalive every ~%s)",
		back.Round(time.Millisecond), cfg.LeaseTTL, cfg.LeaseTTL/3)
	if got := h.metric("registrar_lease_keepalive_lost_total"); got != 1 {
		t.Errorf("registrar_lease_keepalive_lost_total = %v, want 1", got)
	}
}

// ---- 7. etcd outage ----

// TestEtcdOutage stops etcd, lets a check fail while it is down, and
// expects the record to catch up promptly once etcd is back.
func TestEtcdOutage(t *testing.T) {
	const outage = 30 * time.Second
	if testing.Short() {
		t.Skipf("stops etcd for %s; skipped with -short", outage)
	}
	testutil.Long(t, fmt.Sprintf("stops etcd for %s", outage))
	e := etcdtest.Start(t)
	srv := newHealthServer(t, http.StatusOK)
	h := startAgent(t, e, testConfig(service("svc", httpCheck(srv.URL))))
	h.waitRecord(5*time.Second, "svc", "svc-1", func(in schema.Instance) bool {
		return in.Health.Shallow == health.Passing
	}, "registered passing")

	e.Stop()
	stoppedAt := time.Now()
	srv.code.Store(http.StatusServiceUnavailable)
	waitFor(t, 3*time.Second, func() bool {
		list := h.a.Instances()
		return len(list) == 1 && list[0].Health.Shallow == health.Critical
	}, "Instances() to show critical while etcd is down")
	select {
	case <-time.After(time.Until(stoppedAt.Add(outage))): // the outage's length, not a synchronisation
	case <-t.Context().Done():
		t.Fatal("test ended during the outage")
	}

	e.Restart(t)
	restarted := time.Now()
	t.Cleanup(h.stop) // before the restarted etcd is closed
	cli := newClient(t, e)
	var in schema.Instance
	waitFor(t, 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		resp, err := cli.Get(ctx, testKeys.Instance("svc", "svc-1"))
		if err != nil || len(resp.Kvs) == 0 {
			return false
		}
		in, err = schema.DecodeInstance(resp.Kvs[0].Value)
		return err == nil && in.Health.Shallow == health.Critical
	}, "the record to show critical after etcd came back")
	caughtUp := time.Since(restarted)
	t.Logf("etcd down for %s; record critical in etcd %s after Restart returned; writes_total=%v write_errors_total=%v lease_lost_total=%v",
		restarted.Sub(stoppedAt).Round(time.Millisecond), caughtUp.Round(time.Millisecond),
		h.metric("registrar_etcd_writes_total"), h.metric("registrar_etcd_write_errors_total"),
		h.metric("registrar_lease_keepalive_lost_total"))
	testutil.Slow(t, "record critical after etcd came back", caughtUp, 2*time.Second)
}

// ---- concurrency regressions ----

// TestAPIWhilePublishing pushes TTL statuses through the local API while
// every instance keeps publishing (a check flapping on each probe): the
// API looks instances up under the agent's lock while instances publish
// under their own, so a lock-order inversion between the two would
// deadlock here.
func TestAPIWhilePublishing(t *testing.T) {
	e := etcdtest.Start(t)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	var services []ServiceConfig
	for _, name := range []string{"p1", "p2", "p3", "p4"} {
		flap := CheckConfig{Name: "flap", HTTP: srv.URL, Interval: 5 * time.Millisecond, Timeout: time.Second}
		services = append(services, service(name, flap, CheckConfig{Name: "push", TTL: time.Minute}))
	}
	h := startAgent(t, e, testConfig(services...))
	api := socketAPI(t, h)
	waitFor(t, 5*time.Second, func() bool { return len(h.a.Instances()) == len(services) }, "every instance to publish")

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var calls atomic.Int64
	for _, s := range services {
		wg.Go(func() {
			for ctx.Err() == nil {
				st := []string{"passing", "warning"}[calls.Add(1)%2]
				req, _ := http.NewRequestWithContext(ctx, "PUT", api.url+"/v1/checks/"+s.Name+"/push", strings.NewReader(`{"status":"`+st+`"}`))
				resp, err := api.c.Do(req)
				if err != nil {
					return
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	t.Logf("%d API calls, %d probes", calls.Load(), hits.Load())
	// A request the client gave up on may still be in the server: let it
	// finish, or its push could land after the final one.
	waitFor(t, 5*time.Second, func() bool { return api.inflight.Load() == 0 }, "the server to finish its requests")

	// Still responsive: a push goes through and reaches etcd.
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequestWithContext(t.Context(), "PUT", api.url+"/v1/checks/p1/push", strings.NewReader(`{"status":"critical","output":"final"}`))
		resp, err := api.c.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	select {
	case code := <-done:
		if code != http.StatusOK {
			t.Fatalf("PUT /v1/checks/p1/push = %d, want 200", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the local API hangs: instance publishing and the API deadlocked")
	}
	h.waitRecord(5*time.Second, "p1", "p1-1", func(in schema.Instance) bool {
		c := checkNamed(in, "push")
		return c != nil && c.Output == "final"
	}, "the last pushed status")
}

// TestReloadBackAndForth reloads A→B→A in quick succession: the instance
// must end up running A, even when it had not applied B yet when A came.
// With one P the instance's goroutine reliably runs only after both
// reloads, which is what the test needs.
func TestReloadBackAndForth(t *testing.T) {
	e := etcdtest.Start(t)
	srv := newHealthServer(t, http.StatusOK)
	config := func(tag string) Config {
		s := service("a", httpCheck(srv.URL))
		s.Tags = []string{tag}
		return testConfig(s)
	}
	h := startAgent(t, e, config("one"))
	h.waitRecord(5*time.Second, "a", "a-1", func(schema.Instance) bool { return true }, "registered")
	in := h.a.find("a", "")[0]
	settled := func() bool {
		in.mu.Lock()
		defer in.mu.Unlock()
		return in.pending == nil
	}

	prev := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	for i := range 20 {
		for _, tag := range []string{"two", "one"} {
			if err := h.a.Reload(opCtx(t), config(tag)); err != nil {
				t.Fatalf("Reload: %v", err)
			}
		}
		waitFor(t, 2*time.Second, settled, "the instance to apply the reload")
		if got := in.configSnapshot().Tags; !slices.Equal(got, []string{"one"}) {
			t.Fatalf("round %d: after Reload(two), Reload(one) the instance runs tags %v, want [one]", i, got)
		}
	}
	runtime.GOMAXPROCS(prev)
	h.waitRecord(5*time.Second, "a", "a-1", func(in schema.Instance) bool {
		return slices.Equal(in.Tags, []string{"one"})
	}, "tags [one]")
}
