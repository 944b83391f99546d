package registry

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rewire/rewire/internal/etcdtest"
	"github.com/rewire/rewire/registry/schema"
)

// TestWatcherScopedToServices runs a Watcher scoped to web and db as a user
// that may read only those services, maintenance/ and expect/: it reads and
// follows exactly those ranges, at one revision, with no permission error.
// An unscoped Watcher (the whole prefix) fails under the same role.
func TestWatcherScopedToServices(t *testing.T) {
	e := startEtcd(t)
	root := e.EnableAuth(t, e.Client(t))
	etcdtest.AddUser(t, root, "reg-web", "pw",
		etcdtest.Perm{Key: testKeys.Service("web"), Prefix: true, Type: etcdtest.ReadWrite},
		etcdtest.Perm{Key: testKeys.Service("db"), Prefix: true, Type: etcdtest.Read},
		etcdtest.Perm{Key: testKeys.Maintenance("", ""), Prefix: true, Type: etcdtest.Read},
		etcdtest.Perm{Key: testKeys.Expect(""), Prefix: true, Type: etcdtest.Read})
	putRev(t, root, testKeys.Instance("web", "web-1"), mustMarshal(t, testInstance("web", "web-1")))
	putRev(t, root, testKeys.Instance("db", "db-1"), mustMarshal(t, testInstance("db", "db-1")))
	putRev(t, root, testKeys.Instance("api", "api-1"), mustMarshal(t, testInstance("api", "api-1")))
	putRev(t, root, testKeys.Maintenance("db", "db-1"), `{"reason":"disk"}`)
	putRev(t, root, "/test/config/maxconn", "100")
	first := putRev(t, root, testKeys.Expect("web"), `{"instances":3}`)

	cli := e.ClientAs(t, "reg-web", "pw")
	logs := &logRecorder{}
	reg := prometheus.NewRegistry()
	w := NewWatcher(WatcherOptions{Client: cli, Keys: testKeys, Registerer: reg,
		Logger: slog.New(logs), Services: []string{"web", "db"}})
	stop := runInBackground(t, w.Run)
	s := atRev(t, w, first)
	if s.Rev != first {
		t.Errorf("first snapshot rev = %d, want %d", s.Rev, first)
	}
	if got, want := s.ServiceNames(), []string{"db", "web"}; !slices.Equal(got, want) {
		t.Errorf("ServiceNames() = %q, want %q (api is out of scope)", got, want)
	}
	if db := s.Service("db"); db == nil || !db.Instances[0].Maintenance {
		t.Errorf("db = %+v, want db-1 in maintenance", db)
	}
	if web := s.Service("web"); web == nil || web.Expect != 3 {
		t.Errorf("web = %+v, want Expect 3", web)
	}
	if _, ok := s.Get("/test/config/maxconn"); ok {
		t.Errorf("scoped snapshot has a free-form key")
	}

	// Changes in every watched range arrive; the unwatched ones do not.
	putRev(t, root, testKeys.Instance("api", "api-2"), mustMarshal(t, testInstance("api", "api-2")))
	putRev(t, root, testKeys.Instance("web", "web-2"), mustMarshal(t, testInstance("web", "web-2")))
	deleteRev(t, root, testKeys.Maintenance("db", "db-1"))
	putRev(t, root, testKeys.Expect("db"), `{"instances":2}`)
	// Each range's events arrive in order, different ranges' possibly not:
	// wait for the content, not a revision.
	s = waitSnapshot(t, w, "web-2, db-1 out of maintenance, db expecting 2", func(s *schema.Snapshot) bool {
		db := s.Service("db")
		return slices.Equal(instanceIDs(s, "web"), []string{"web-1", "web-2"}) &&
			db != nil && !db.Instances[0].Maintenance && db.Expect == 2
	})
	if s.Service("api") != nil {
		t.Errorf("api appeared in a snapshot scoped to web and db")
	}
	if got := metricValue(t, reg, "registry_watch_resyncs_total"); got != 1 {
		t.Errorf("registry_watch_resyncs_total = %v, want 1: the scoped watch must not fail", got)
	}
	if got := logs.find("registry watch interrupted; resyncing"); len(got) != 0 {
		t.Errorf("watch interrupted %d times: %v", len(got), got)
	}
	if err := stop(); err != nil {
		t.Errorf("Run() = %v, want nil", err)
	}

	// The same role cannot read the whole prefix: what scoping avoids.
	whole := NewWatcher(WatcherOptions{Client: cli, Keys: testKeys})
	if _, err := whole.Snapshot(t.Context()); err == nil {
		t.Errorf("unscoped Snapshot as reg-web = nil error, want permission denied")
	}
}

// TestWatcherScopedResyncsAfterCompactedWatch cuts a scoped Watcher off
// while its ranges change and the history is compacted: when the partition
// heals, its watches answer ErrCompacted and it reads every range again,
// once, and follows all of them afterwards.
func TestWatcherScopedResyncsAfterCompactedWatch(t *testing.T) {
	e := startEtcd(t)
	direct := e.Client(t)
	p := newPartition(t, e.Endpoints[0])
	seen := putRev(t, direct, testKeys.Instance("web", "web-1"), mustMarshal(t, testInstance("web", "web-1")))
	reg := prometheus.NewRegistry()
	w := NewWatcher(WatcherOptions{Client: p.client(t), Keys: testKeys, Registerer: reg, Services: []string{"web", "db"}})
	runInBackground(t, w.Run)
	atRev(t, w, seen)

	p.Cut()
	deleteRev(t, direct, testKeys.Instance("web", "web-1"))
	putRev(t, direct, testKeys.Instance("db", "db-1"), mustMarshal(t, testInstance("db", "db-1")))
	rev := putRev(t, direct, testKeys.Expect("db"), `{"instances":2}`)
	if _, err := direct.Compact(opCtx(t), rev); err != nil {
		t.Fatalf("Compact(%d): %v", rev, err)
	}
	p.Heal()
	s := atRev(t, w, rev)
	if got, want := s.ServiceNames(), []string{"db"}; !slices.Equal(got, want) || s.Service("db").Expect != 2 {
		t.Errorf("after resync %s, want only db expecting 2", describe(s))
	}
	if got := metricValue(t, reg, "registry_watch_resyncs_total"); got != 2 {
		t.Errorf("registry_watch_resyncs_total = %v, want 2 (first read, then the compacted watches)", got)
	}
	putRev(t, direct, testKeys.Maintenance("web", ""), `{"reason":"x"}`)
	putRev(t, direct, testKeys.Instance("web", "web-2"), mustMarshal(t, testInstance("web", "web-2")))
	waitSnapshot(t, w, "web-2 with service maintenance", func(s *schema.Snapshot) bool {
		web := s.Service("web")
		return web != nil && len(web.Instances) == 1 && web.Maintenance != nil
	})
}

// TestWatcherRescope changes a running Watcher's scope: it reads the new
// services, drops the old ones, and follows the new ranges.
func TestWatcherRescope(t *testing.T) {
	e := startEtcd(t)
	cli := e.Client(t)
	putRev(t, cli, testKeys.Instance("web", "web-1"), mustMarshal(t, testInstance("web", "web-1")))
	rev := putRev(t, cli, testKeys.Instance("api", "api-1"), mustMarshal(t, testInstance("api", "api-1")))
	w := NewWatcher(WatcherOptions{Client: cli, Keys: testKeys, Services: []string{"web"}})
	runInBackground(t, w.Run)
	if s := atRev(t, w, rev); !slices.Equal(s.ServiceNames(), []string{"web"}) {
		t.Fatalf("scoped to web: %s", describe(s))
	}
	w.Rescope([]string{"api"})
	waitSnapshot(t, w, "only api", func(s *schema.Snapshot) bool { return slices.Equal(s.ServiceNames(), []string{"api"}) })
	putRev(t, cli, testKeys.Instance("web", "web-2"), mustMarshal(t, testInstance("web", "web-2")))
	rev = putRev(t, cli, testKeys.Instance("api", "api-2"), mustMarshal(t, testInstance("api", "api-2")))
	s := atRev(t, w, rev)
	if !slices.Equal(s.ServiceNames(), []string{"api"}) || !slices.Equal(instanceIDs(s, "api"), []string{"api-1", "api-2"}) {
		t.Errorf("after rescope and puts: %s, want only api [api-1 api-2]", describe(s))
	}
}
