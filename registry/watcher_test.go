package registry

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rewire/rewire/registry/schema"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	etcd "go.etcd.io/etcd/client/v3"
)

var testKeys = schema.Keys{Prefix: "/test"}

func newTestWatcher(t *testing.T, cli *etcd.Client) (*Watcher, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return NewWatcher(WatcherOptions{Client: cli, Keys: testKeys, Registerer: reg}), reg
}

// waitSnapshot waits on w.Updates until w.Current satisfies cond.
func waitSnapshot(t *testing.T, w *Watcher, msg string, cond func(*schema.Snapshot) bool) *schema.Snapshot {
	t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		if s := w.Current(); s != nil && cond(s) {
			return s
		}
		select {
		case <-w.Updates():
		case <-timeout.C:
			s := w.Current()
			t.Fatalf("timed out waiting for a snapshot with %s; current: %s", msg, describe(s))
		}
	}
}

// atRev waits for a snapshot at revision rev or later.
func atRev(t *testing.T, w *Watcher, rev int64) *schema.Snapshot {
	t.Helper()
	return waitSnapshot(t, w, fmt.Sprintf("revision >= %d", rev), func(s *schema.Snapshot) bool { return s.Rev >= rev })
}

// describe prints a snapshot for failure messages.
func describe(s *schema.Snapshot) string {
	if s == nil {
		return "<nil>"
	}
	out := fmt.Sprintf("rev %d", s.Rev)
	for _, name := range s.ServiceNames() {
		out += fmt.Sprintf(" %s%q", name, instanceIDs(s, name))
	}
	return out + fmt.Sprintf(" kv %q", s.List(""))
}

// instanceIDs returns the ids of a service's instances, nil when the
// service is unknown.
func instanceIDs(s *schema.Snapshot, service string) []string {
	sv := s.Service(service)
	if sv == nil {
		return nil
	}
	var ids []string
	for _, in := range sv.Instances {
		ids = append(ids, in.ID)
	}
	return ids
}

func TestWatcherFollowsChanges(t *testing.T) {
	e := startEtcd(t)
	cli := e.Client(t)
	// Before the watcher starts: read by its first Get.
	putRev(t, cli, testKeys.Instance("web", "web-1"), mustMarshal(t, testInstance("web", "web-1")))
	putRev(t, cli, "/test/config/maxconn", "100")
	putRev(t, cli, "/elsewhere/x", "outside the prefix")
	first := e.Rev(t, cli)

	w, reg := newTestWatcher(t, cli)
	if w.Current() != nil {
		t.Fatalf("Current() before Run = %v, want nil", describe(w.Current()))
	}
	stop := runInBackground(t, w.Run)
	s := waitSnapshot(t, w, "web-1", func(s *schema.Snapshot) bool { return s.Service("web") != nil })
	if s.Rev != first || !slices.Equal(instanceIDs(s, "web"), []string{"web-1"}) {
		t.Errorf("first snapshot = %s, want rev %d with web [web-1]", describe(s), first)
	}
	if v, ok := s.Get("/test/config/maxconn"); !ok || v != "100" {
		t.Errorf("first snapshot Get(maxconn) = %q, %t; want %q", v, ok, "100")
	}
	if _, ok := s.Get("/elsewhere/x"); ok {
		t.Errorf("first snapshot has a key outside the prefix")
	}
	revs := []int64{s.Rev}

	// Puts.
	putRev(t, cli, testKeys.Instance("web", "web-2"), mustMarshal(t, testInstance("web", "web-2")))
	putRev(t, cli, testKeys.Instance("api", "api-1"), mustMarshal(t, testInstance("api", "api-1")))
	putRev(t, cli, testKeys.Maintenance("web", "web-2"), `{"reason":"disk"}`)
	putRev(t, cli, testKeys.Expect("web"), `{"instances":3}`)
	putRev(t, cli, "/elsewhere/y", "outside the prefix")
	rev := putRev(t, cli, "/test/config/maxconn", "200")
	s = atRev(t, w, rev)
	revs = append(revs, s.Rev)
	if s.Rev != rev {
		t.Errorf("snapshot rev = %d, want %d", s.Rev, rev)
	}
	if got, want := s.ServiceNames(), []string{"api", "web"}; !slices.Equal(got, want) {
		t.Errorf("ServiceNames() = %q, want %q", got, want)
	}
	web := s.Service("web")
	if got, want := instanceIDs(s, "web"), []string{"web-1", "web-2"}; !slices.Equal(got, want) {
		t.Fatalf("web instances = %q, want %q", got, want)
	}
	if web.Instances[0].Maintenance || !web.Instances[1].Maintenance || web.Expect != 3 {
		t.Errorf("web = %+v, want web-2 in maintenance and Expect 3", web)
	}
	if v, _ := s.Get("/test/config/maxconn"); v != "200" {
		t.Errorf("Get(maxconn) = %q, want %q", v, "200")
	}
	if _, ok := s.Get("/elsewhere/y"); ok {
		t.Errorf("snapshot has a key outside the prefix")
	}

	// Deletes.
	deleteRev(t, cli, testKeys.Instance("web", "web-1"))
	deleteRev(t, cli, testKeys.Maintenance("web", "web-2"))
	deleteRev(t, cli, testKeys.Instance("api", "api-1"))
	rev = deleteRev(t, cli, "/test/config/maxconn")
	s = atRev(t, w, rev)
	revs = append(revs, s.Rev)
	if got, want := s.ServiceNames(), []string{"web"}; !slices.Equal(got, want) {
		t.Errorf("after deletes ServiceNames() = %q, want %q", got, want)
	}
	if got, want := instanceIDs(s, "web"), []string{"web-2"}; !slices.Equal(got, want) || s.Service("web").Instances[0].Maintenance {
		t.Errorf("after deletes web = %+v, want web-2 out of maintenance", s.Service("web"))
	}
	if _, ok := s.Get("/test/config/maxconn"); ok {
		t.Errorf("after delete Get(maxconn) still found")
	}
	for i := 1; i < len(revs); i++ {
		if revs[i] <= revs[i-1] {
			t.Errorf("snapshot revisions %v, want strictly increasing", revs)
		}
	}

	if got := metricValue(t, reg, "registry_revision"); got != float64(rev) {
		t.Errorf("registry_revision = %v, want %d", got, rev)
	}
	if got := metricValue(t, reg, "registry_watch_events_total"); got != 9 {
		t.Errorf("registry_watch_events_total = %v, want 9 (5 puts and 4 deletes under the prefix)", got)
	}
	if got := metricValue(t, reg, "registry_watch_resyncs_total"); got != 1 {
		t.Errorf("registry_watch_resyncs_total = %v, want 1 (the first read)", got)
	}
	if err := stop(); err != nil {
		t.Errorf("Run() = %v, want nil after its context was cancelled", err)
	}
}

func TestWatcherSkipsInvalidRecords(t *testing.T) {
	e := startEtcd(t)
	cli := e.Client(t)
	w, reg := newTestWatcher(t, cli)
	runInBackground(t, w.Run)
	rev := putRev(t, cli, testKeys.Instance("web", "good-1"), mustMarshal(t, testInstance("web", "good-1")))
	atRev(t, w, rev)

	tests := []struct {
		name  string
		id    string
		value string
	}{
		{name: "address newline", id: "bad-1", value: rawRecord(t, "web", "bad-1", map[string]any{"address": "10.0.0.1\nx"})},
		{name: "address space", id: "bad-2", value: rawRecord(t, "web", "bad-2", map[string]any{"address": "10.0.0.1 x"})},
		{name: "port 0", id: "bad-3", value: rawRecord(t, "web", "bad-3", map[string]any{"port": 0})},
		{name: "port 70000", id: "bad-4", value: rawRecord(t, "web", "bad-4", map[string]any{"port": 70000})},
		{name: "tag newline", id: "bad-5", value: rawRecord(t, "web", "bad-5", map[string]any{"tags": []string{"a\nb"}})},
		{name: "version 2", id: "bad-6", value: rawRecord(t, "web", "bad-6", map[string]any{"v": 2})},
		{name: "not JSON", id: "bad-7", value: "10.0.0.1:8080"},
		{name: "id of another key", id: "bad-8", value: rawRecord(t, "web", "good-1", nil)},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A valid record next to it, in the same service and write
			// sequence, does appear.
			good := fmt.Sprintf("good-%d", i+2)
			putRev(t, cli, testKeys.Instance("web", tc.id), tc.value)
			rev := putRev(t, cli, testKeys.Instance("web", good), mustMarshal(t, testInstance("web", good)))
			s := atRev(t, w, rev)
			ids := instanceIDs(s, "web")
			if slices.Contains(ids, tc.id) {
				t.Errorf("invalid record %s reached the snapshot: web %q", tc.id, ids)
			}
			if !slices.Contains(ids, good) || !slices.Contains(ids, "good-1") {
				t.Errorf("web %q, want the valid records good-1 and %s", ids, good)
			}
			if got := metricValue(t, reg, "registry_invalid_records_total"); got != float64(i+1) {
				t.Errorf("registry_invalid_records_total = %v, want %d", got, i+1)
			}
		})
	}

	// A one-shot read skips them too.
	s, err := w.Snapshot(opCtx(t))
	if err != nil {
		t.Fatalf("Snapshot() error = %v", err)
	}
	for _, id := range instanceIDs(s, "web") {
		if id[:4] != "good" {
			t.Errorf("Snapshot() has invalid record %s", id)
		}
	}
}

// An invalid record is counted every time it is written but logged only
// once until its error changes or it becomes valid.
func TestWatcherLogsInvalidRecordOnce(t *testing.T) {
	e := startEtcd(t)
	cli := e.Client(t)
	logs := &logRecorder{}
	reg := prometheus.NewRegistry()
	w := NewWatcher(WatcherOptions{Client: cli, Keys: testKeys, Registerer: reg, Logger: slog.New(logs)})
	runInBackground(t, w.Run)
	key := testKeys.Instance("web", "web-1")
	logged := func() int {
		n := 0
		for _, attrs := range logs.find("skipping invalid registry entry; it will not reach any rendered file") {
			if attrs["key"] == key {
				n++
			}
		}
		return n
	}
	steps := []struct {
		name        string
		value       string
		wantLogged  int
		wantInvalid float64
	}{
		{name: "invalid", value: rawRecord(t, "web", "web-1", map[string]any{"port": 0}), wantLogged: 1, wantInvalid: 1},
		{name: "same again", value: rawRecord(t, "web", "web-1", map[string]any{"port": 0}), wantLogged: 1, wantInvalid: 2},
		{name: "other error", value: rawRecord(t, "web", "web-1", map[string]any{"port": 70000}), wantLogged: 2, wantInvalid: 3},
		{name: "valid", value: mustMarshal(t, testInstance("web", "web-1")), wantLogged: 2, wantInvalid: 3},
		{name: "invalid after valid", value: rawRecord(t, "web", "web-1", map[string]any{"port": 70000}), wantLogged: 3, wantInvalid: 4},
	}
	for _, step := range steps {
		atRev(t, w, putRev(t, cli, key, step.value))
		if got := logged(); got != step.wantLogged {
			t.Errorf("%s: logged %d times, want %d", step.name, got, step.wantLogged)
		}
		if got := metricValue(t, reg, "registry_invalid_records_total"); got != step.wantInvalid {
			t.Errorf("%s: registry_invalid_records_total = %v, want %v", step.name, got, step.wantInvalid)
		}
	}
}

func TestWatcherValidRecordBecomesInvalid(t *testing.T) {
	e := startEtcd(t)
	cli := e.Client(t)
	w, _ := newTestWatcher(t, cli)
	runInBackground(t, w.Run)
	key := testKeys.Instance("web", "web-1")
	putRev(t, cli, key, mustMarshal(t, testInstance("web", "web-1")))
	rev := putRev(t, cli, testKeys.Instance("web", "web-2"), mustMarshal(t, testInstance("web", "web-2")))
	if s := atRev(t, w, rev); !slices.Equal(instanceIDs(s, "web"), []string{"web-1", "web-2"}) {
		t.Fatalf("web = %q, want [web-1 web-2]", instanceIDs(s, "web"))
	}

	rev = putRev(t, cli, key, rawRecord(t, "web", "web-1", map[string]any{"address": "10.0.0.1 x"}))
	if s := atRev(t, w, rev); !slices.Equal(instanceIDs(s, "web"), []string{"web-2"}) {
		t.Errorf("after web-1 became invalid, web = %q, want [web-2]", instanceIDs(s, "web"))
	}

	rev = putRev(t, cli, key, mustMarshal(t, testInstance("web", "web-1")))
	if s := atRev(t, w, rev); !slices.Equal(instanceIDs(s, "web"), []string{"web-1", "web-2"}) {
		t.Errorf("after web-1 became valid again, web = %q, want [web-1 web-2]", instanceIDs(s, "web"))
	}
}

// TestWatcherCompactionBehindWatch compacts the history while the watcher
// is up to date: its watch needs nothing compacted, so it goes on without a
// resync and keeps following.
func TestWatcherCompactionBehindWatch(t *testing.T) {
	e := startEtcd(t)
	cli := e.Client(t)
	w, reg := newTestWatcher(t, cli)
	runInBackground(t, w.Run)
	for i := range 5 {
		putRev(t, cli, testKeys.Instance("web", fmt.Sprintf("web-%d", i)), mustMarshal(t, testInstance("web", fmt.Sprintf("web-%d", i))))
	}
	rev := deleteRev(t, cli, testKeys.Instance("web", "web-0"))
	atRev(t, w, rev)
	if _, err := cli.Compact(opCtx(t), rev); err != nil {
		t.Fatalf("Compact(%d): %v", rev, err)
	}
	putRev(t, cli, testKeys.Instance("web", "web-5"), mustMarshal(t, testInstance("web", "web-5")))
	rev = deleteRev(t, cli, testKeys.Instance("web", "web-1"))
	s := atRev(t, w, rev)
	if got, want := instanceIDs(s, "web"), []string{"web-2", "web-3", "web-4", "web-5"}; !slices.Equal(got, want) {
		t.Errorf("after compaction web = %q, want %q", got, want)
	}
	if got := metricValue(t, reg, "registry_watch_resyncs_total"); got != 1 {
		t.Errorf("registry_watch_resyncs_total = %v, want 1", got)
	}
}

// TestWatcherResyncsAfterCompactedWatch makes the watcher's next watch
// revision compacted, deterministically: a partition cuts its client off
// from etcd while other writes happen and the history is compacted past
// them. When the partition heals, the client resumes the watch from the
// last revision it saw, etcd answers ErrCompacted, and the watcher must
// read everything again and converge.
func TestWatcherResyncsAfterCompactedWatch(t *testing.T) {
	e := startEtcd(t)
	direct := e.Client(t)
	p := newPartition(t, e.Endpoints[0])
	cli := p.client(t)

	putRev(t, direct, testKeys.Instance("web", "web-1"), mustMarshal(t, testInstance("web", "web-1")))
	seen := putRev(t, direct, "/test/config/maxconn", "100")
	logs := &logRecorder{}
	reg := prometheus.NewRegistry()
	w := NewWatcher(WatcherOptions{Client: cli, Keys: testKeys, Registerer: reg, Logger: slog.New(logs)})
	runInBackground(t, w.Run)
	atRev(t, w, seen)
	if got := metricValue(t, reg, "registry_watch_resyncs_total"); got != 1 {
		t.Fatalf("registry_watch_resyncs_total = %v before the partition, want 1", got)
	}

	p.Cut()
	putRev(t, direct, testKeys.Instance("web", "web-2"), mustMarshal(t, testInstance("web", "web-2")))
	deleteRev(t, direct, testKeys.Instance("web", "web-1"))
	putRev(t, direct, testKeys.Instance("api", "api-1"), mustMarshal(t, testInstance("api", "api-1")))
	rev := putRev(t, direct, "/test/config/maxconn", "200")
	if _, err := direct.Compact(opCtx(t), rev); err != nil {
		t.Fatalf("Compact(%d): %v", rev, err)
	}
	// Cut off, the watcher keeps its last snapshot.
	if s := w.Current(); s.Rev != seen || !slices.Equal(instanceIDs(s, "web"), []string{"web-1"}) {
		t.Errorf("during the partition Current() = %s, want the snapshot at %d", describe(s), seen)
	}
	p.Heal()

	s := atRev(t, w, rev)
	if s.Rev != rev {
		t.Errorf("after resync rev = %d, want %d", s.Rev, rev)
	}
	if got, want := s.ServiceNames(), []string{"api", "web"}; !slices.Equal(got, want) {
		t.Errorf("after resync ServiceNames() = %q, want %q", got, want)
	}
	if got, want := instanceIDs(s, "web"), []string{"web-2"}; !slices.Equal(got, want) {
		t.Errorf("after resync web = %q, want %q", got, want)
	}
	if v, _ := s.Get("/test/config/maxconn"); v != "200" {
		t.Errorf("after resync Get(maxconn) = %q, want %q", v, "200")
	}
	if got := metricValue(t, reg, "registry_watch_resyncs_total"); got != 2 {
		t.Errorf("registry_watch_resyncs_total = %v, want 2 (first read, then the compacted watch)", got)
	}
	warnings := logs.find("registry watch interrupted; resyncing")
	if len(warnings) != 1 {
		t.Fatalf("logged %d resync warnings %v, want 1", len(warnings), warnings)
	}
	if err, _ := warnings[0]["err"].(error); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("resync cause = %v, want %v", warnings[0]["err"], rpctypes.ErrCompacted)
	}

	// And it follows the new watch.
	rev = putRev(t, direct, testKeys.Instance("web", "web-3"), mustMarshal(t, testInstance("web", "web-3")))
	if s := atRev(t, w, rev); !slices.Equal(instanceIDs(s, "web"), []string{"web-2", "web-3"}) {
		t.Errorf("after resync and a put, web = %q, want [web-2 web-3]", instanceIDs(s, "web"))
	}
}

func TestWatcherSnapshotMatchesCurrent(t *testing.T) {
	e := startEtcd(t)
	cli := e.Client(t)
	w, _ := newTestWatcher(t, cli)
	runInBackground(t, w.Run)
	for _, id := range []string{"web-1", "web-2", "web-3"} {
		putRev(t, cli, testKeys.Instance("web", id), mustMarshal(t, testInstance("web", id)))
	}
	putRev(t, cli, testKeys.Instance("db", "db-1"), mustMarshal(t, testInstance("db", "db-1")))
	putRev(t, cli, testKeys.Instance("db", "db-bad"), rawRecord(t, "db", "db-bad", map[string]any{"port": 0}))
	putRev(t, cli, testKeys.Maintenance("web", ""), `{"reason":"upgrade"}`)
	putRev(t, cli, testKeys.Expect("db"), `{"instances":2}`)
	putRev(t, cli, "/test/config/a", "1")
	putRev(t, cli, "/test/config/b", "2")
	deleteRev(t, cli, testKeys.Instance("web", "web-3"))
	rev := putRev(t, cli, "/test/config/a", "3")
	cur := atRev(t, w, rev)

	snap, err := w.Snapshot(opCtx(t))
	if err != nil {
		t.Fatalf("Snapshot() error = %v", err)
	}
	if snap.Rev != cur.Rev {
		t.Errorf("Snapshot().Rev = %d, Current().Rev = %d; want equal", snap.Rev, cur.Rev)
	}
	if !slices.Equal(snap.ServiceNames(), cur.ServiceNames()) {
		t.Fatalf("Snapshot() services %q, Current() services %q", snap.ServiceNames(), cur.ServiceNames())
	}
	for _, name := range cur.ServiceNames() {
		if !reflect.DeepEqual(snap.Service(name), cur.Service(name)) {
			t.Errorf("service %s: Snapshot() = %+v\nCurrent() = %+v", name, snap.Service(name), cur.Service(name))
		}
	}
	if !reflect.DeepEqual(snap.List(""), cur.List("")) {
		t.Errorf("Snapshot() kv = %q, Current() kv = %q", snap.List(""), cur.List(""))
	}
	if got, want := describe(snap), fmt.Sprintf(`rev %d db["db-1"] web["web-1" "web-2"] kv [{"/test/config/a" "3"} {"/test/config/b" "2"}]`, rev); got != want {
		t.Errorf("Snapshot() = %s\nwant %s", got, want)
	}
}

// TestRegistrarToWatcher runs both halves: what a Writer writes, a
// Watcher sees, and it all goes when the Writer stops.
func TestRegistrarToWatcher(t *testing.T) {
	e := startEtcd(t)
	cli := e.Client(t)
	w, _ := newTestWatcher(t, cli)
	runInBackground(t, w.Run)
	r := NewWriter(WriterOptions{Client: cli, Keys: testKeys, TTL: testTTL})
	stopRegistrar := runInBackground(t, r.Run)

	web1, web2 := testInstance("web", "web-1"), testInstance("web", "web-2")
	web2.Draining = true
	for _, in := range []schema.Instance{web1, web2} {
		if err := r.Set(in); err != nil {
			t.Fatalf("Set: %v", err)
		}
	}
	s := waitSnapshot(t, w, "web-1 and web-2", func(s *schema.Snapshot) bool { return len(instanceIDs(s, "web")) == 2 })
	routable := s.Service("web").Routable()
	if len(routable) != 1 || routable[0].ID != "web-1" {
		t.Errorf("Routable() = %+v, want only web-1 (web-2 is draining)", routable)
	}

	if err := stopRegistrar(); err != nil {
		t.Fatalf("Writer.Run() = %v", err)
	}
	waitSnapshot(t, w, "no web service", func(s *schema.Snapshot) bool { return s.Service("web") == nil })
}
