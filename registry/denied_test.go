package registry

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rewire/rewire/internal/etcdtest"
	etcd "go.etcd.io/etcd/client/v3"
)

// TestRegistrarPermissionDenied runs a Writer as a user that may write
// only web's keys: web's record is written (and rewritten after someone
// deletes it), db's is refused with an error naming the key and the
// operation, logged once however often it is retried, reported by Denied
// and counted in registrar_etcd_permission_denied until the role allows it.
func TestRegistrarPermissionDenied(t *testing.T) {
	e := startEtcd(t)
	root := e.EnableAuth(t, e.Client(t))
	etcdtest.AddUser(t, root, "reg-web", "pw",
		etcdtest.Perm{Key: testKeys.Service("web"), Prefix: true, Type: etcdtest.ReadWrite})
	logs := &logRecorder{}
	reg := prometheus.NewRegistry()
	r := NewWriter(WriterOptions{Client: e.ClientAs(t, "reg-web", "pw"), Keys: testKeys, TTL: testTTL,
		Registerer: reg, Logger: slog.New(logs)})
	runInBackground(t, r.Run)
	web, db := testInstance("web", "web-1"), testInstance("db", "db-1")
	if err := r.Set(web); err != nil {
		t.Fatal(err)
	}
	if err := r.Set(db); err != nil {
		t.Fatal(err)
	}
	webKey, dbKey := testKeys.Instance("web", "web-1"), testKeys.Instance("db", "db-1")
	waitFor(t, 10*time.Second, func() bool { return getKV(t, root, webKey) != nil }, "web's record written")
	waitFor(t, 10*time.Second, func() bool { return r.Denied() != nil }, "db's write denied")
	var pe *PermissionError
	if err := r.Denied(); !errors.As(err, &pe) || pe.Op != "put" || pe.Key != dbKey || !IsPermission(err) {
		t.Fatalf("Denied() = %v, want a PermissionError for put %s", err, dbKey)
	}
	if got := metricValue(t, reg, "registrar_etcd_permission_denied"); got != 1 {
		t.Errorf("registrar_etcd_permission_denied = %v, want 1", got)
	}
	// Several retries later the denial is still logged once, with its key.
	retries := metricValue(t, reg, "registrar_etcd_write_errors_total")
	waitFor(t, 20*time.Second, func() bool {
		return metricValue(t, reg, "registrar_etcd_write_errors_total") >= retries+3
	}, "three more retries")
	logged := logs.find("etcd refused a request: permission denied; retrying quietly until the role allows it")
	if len(logged) != 1 || logged[0]["key"] != dbKey || logged[0]["op"] != "put" {
		t.Errorf("permission errors logged %v, want once with key %s and op put", logged, dbKey)
	}
	if got := logs.find("etcd write failed; retrying"); len(got) != 0 {
		t.Errorf("permission errors also logged per retry: %v", got)
	}

	// Someone deletes web's record: told to verify, the Writer rewrites
	// it, reading only its own keys.
	deleteRev(t, root, webKey)
	r.VerifyLease()
	waitFor(t, 10*time.Second, func() bool { return getKV(t, root, webKey) != nil }, "web's record rewritten")

	// The role is fixed: db is written and the denial clears.
	ctx := opCtx(t)
	if _, err := root.RoleGrantPermission(ctx, "reg-web", testKeys.Service("db"), etcd.GetPrefixRangeEnd(testKeys.Service("db")), etcdtest.ReadWrite); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return getKV(t, root, dbKey) != nil && r.Denied() == nil }, "db written once allowed")
	if got := metricValue(t, reg, "registrar_etcd_permission_denied"); got != 0 {
		t.Errorf("registrar_etcd_permission_denied = %v after the role allowed it, want 0", got)
	}
}

// TestWatcherPermissionDenied reads as a user lacking read on a dependency:
// the error names the range and is logged once, Denied reports it, and the
// Watcher recovers when the role is fixed.
func TestWatcherPermissionDenied(t *testing.T) {
	e := startEtcd(t)
	root := e.EnableAuth(t, e.Client(t))
	etcdtest.AddUser(t, root, "reg-web", "pw",
		etcdtest.Perm{Key: testKeys.Service("web"), Prefix: true, Type: etcdtest.ReadWrite},
		etcdtest.Perm{Key: testKeys.Maintenance("", ""), Prefix: true, Type: etcdtest.Read},
		etcdtest.Perm{Key: testKeys.Expect(""), Prefix: true, Type: etcdtest.Read})
	logs := &logRecorder{}
	reg := prometheus.NewRegistry()
	w := NewWatcher(WatcherOptions{Client: e.ClientAs(t, "reg-web", "pw"), Keys: testKeys, Registerer: reg,
		Logger: slog.New(logs), Services: []string{"web", "db"}})
	runInBackground(t, w.Run)
	waitFor(t, 10*time.Second, func() bool { return metricValue(t, reg, "registry_watch_resyncs_total") >= 4 }, "three retries")
	var pe *PermissionError
	if err := w.Denied(); !errors.As(err, &pe) || pe.Op != "read" || pe.Key != testKeys.Service("db") {
		t.Fatalf("Denied() = %v, want a PermissionError for read %s", err, testKeys.Service("db"))
	}
	if got := metricValue(t, reg, "registry_permission_denied"); got != 1 {
		t.Errorf("registry_permission_denied = %v, want 1", got)
	}
	if got := logs.find("etcd refused a request: permission denied; retrying quietly until the role allows it"); len(got) != 1 {
		t.Errorf("logged %d times, want once: %v", len(got), got)
	}
	if got := logs.find("registry watch interrupted; resyncing"); len(got) != 0 {
		t.Errorf("permission errors also logged per retry: %v", got)
	}
	if _, err := root.RoleGrantPermission(opCtx(t), "reg-web", testKeys.Service("db"), etcd.GetPrefixRangeEnd(testKeys.Service("db")), etcdtest.Read); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return w.Current() != nil && w.Denied() == nil }, "a read once allowed")
	if got := metricValue(t, reg, "registry_permission_denied"); got != 0 {
		t.Errorf("registry_permission_denied = %v after the role allowed it, want 0", got)
	}
}
