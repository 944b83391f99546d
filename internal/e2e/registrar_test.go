package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const ttl = 2 * time.Second

func registrarConfig(endpoint, listen, healthURL string) string {
	return fmt.Sprintf(`etcd: {endpoints: [%q], prefix: /rw}
node: vm1
lease_ttl: %s
listen: %s
services:
  - name: web
    id: web-1
    address: 127.0.0.1
    port: 8080
    tags: [v2]
    meta: {version: "1.4.2"}
    depends_on: [db]
    checks:
      - {name: alive, http: %q, interval: 100ms, timeout: 1s}
  - name: db
    id: db-1
    address: 127.0.0.1
    port: 5432
`, endpoint, ttl, listen, healthURL)
}

// record reads one instance record as generic JSON, or nil.
func record(t *testing.T, cli *clientv3.Client, key string) map[string]any {
	t.Helper()
	resp := get(t, cli, key)
	if len(resp.Kvs) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(resp.Kvs[0].Value, &m); err != nil {
		t.Fatalf("record %s is not JSON: %v\n%s", key, err, resp.Kvs[0].Value)
	}
	return m
}

func shallow(rec map[string]any) string {
	h, _ := rec["health"].(map[string]any)
	s, _ := h["shallow"].(string)
	return s
}

func TestRegistrarLifecycle(t *testing.T) {
	skipShort(t)
	e := etcdtest.Start(t)
	cli := e.Client(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer app.Close()
	cfg := writeFile(t, filepath.Join(t.TempDir(), "registrar.yaml"),
		registrarConfig(e.Endpoints[0], freeAddr(t), app.URL+"/healthz"))
	p := start(t, bins.registrar, "run", "-c", cfg)

	const webKey, dbKey = "/rw/services/web/web-1", "/rw/services/db/db-1"
	// web depends on db: its deep health settles once db's record is in
	// the registry the registrar watches.
	waitFor(t, 10*time.Second, "web passing (shallow and deep) and db registered", func() bool {
		rec := record(t, cli, webKey)
		h, _ := rec["health"].(map[string]any)
		return shallow(rec) == "passing" && h["deep"] == "passing" && record(t, cli, dbKey) != nil
	})

	t.Run("v1 format", func(t *testing.T) {
		rec := record(t, cli, webKey)
		want := map[string]any{
			"v": 1.0, "service": "web", "id": "web-1", "node": "vm1", "address": "127.0.0.1", "port": 8080.0,
			"weight": 100.0, "draining": false,
		}
		for k, v := range want {
			if rec[k] != v {
				t.Errorf("record[%q] = %v, want %v", k, rec[k], v)
			}
		}
		if got := fmt.Sprint(rec["tags"], rec["meta"], rec["depends_on"]); got != "[v2] map[version:1.4.2] [db]" {
			t.Errorf("tags, meta, depends_on = %s", got)
		}
		h := rec["health"].(map[string]any)
		checks := h["checks"].([]any)
		c := checks[0].(map[string]any)
		if h["deep"] != "passing" || c["name"] != "alive" || c["kind"] != "shallow" || c["status"] != "passing" || c["output"] != "HTTP 200 OK" {
			t.Errorf("health = %v", h)
		}
		for _, f := range []string{"registered_at"} {
			if _, err := time.Parse(time.RFC3339, rec[f].(string)); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
		if lease := get(t, cli, webKey).Kvs[0].Lease; lease == 0 {
			t.Errorf("record has no lease")
		}
	})

	t.Run("steady state makes no writes", func(t *testing.T) {
		// Several keepalive rounds (every TTL/3) and 15+ check runs: the
		// store's revision must not move.
		rev := e.Rev(t, cli)
		deadline := time.Now().Add(ttl + ttl/2)
		for time.Now().Before(deadline) {
			if now := e.Rev(t, cli); now != rev {
				t.Fatalf("revision moved from %d to %d while nothing changed", rev, now)
			}
			time.Sleep(100 * time.Millisecond) // sampling interval of a bounded observation window
		}
	})

	t.Run("dead endpoint turns critical", func(t *testing.T) {
		app.Close()
		waitFor(t, 5*time.Second, "web critical", func() bool { return shallow(record(t, cli, webKey)) == "critical" })
		h := record(t, cli, webKey)["health"].(map[string]any)
		if h["deep"] != "critical" {
			t.Errorf("deep = %v, want critical (deep includes shallow)", h["deep"])
		}
	})

	t.Run("SIGTERM deregisters at once", func(t *testing.T) {
		p.signal(t, syscall.SIGTERM)
		if code := p.wait(t, 10*time.Second); code != 0 {
			t.Errorf("exit code = %d, want 0", code)
		}
		if n := get(t, cli, "/rw/services/", clientv3.WithPrefix()).Count; n != 0 {
			t.Errorf("%d records left right after exit, want 0", n)
		}
	})
}

func TestRegistrarSIGKILLExpiresWithinTTL(t *testing.T) {
	skipShort(t)
	e := etcdtest.Start(t)
	cli := e.Client(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer app.Close()
	cfg := writeFile(t, filepath.Join(t.TempDir(), "registrar.yaml"),
		registrarConfig(e.Endpoints[0], freeAddr(t), app.URL))
	p := start(t, bins.registrar, "run", "-c", cfg)
	waitFor(t, 10*time.Second, "records", func() bool {
		return get(t, cli, "/rw/services/", clientv3.WithPrefix()).Count == 2
	})
	p.signal(t, syscall.SIGKILL)
	p.wait(t, 5*time.Second)
	t0 := time.Now()
	// etcd expires a lease at most TTL after its last keepalive; allow one
	// second for the leader's expiry sweep.
	waitFor(t, ttl+time.Second, "records to expire with the lease", func() bool {
		return get(t, cli, "/rw/services/", clientv3.WithPrefix()).Count == 0
	})
	t.Logf("records gone %v after SIGKILL (lease TTL %s)", time.Since(t0).Round(time.Millisecond), ttl)
}

func TestRegistrarLsHidesInvalidRecords(t *testing.T) {
	skipShort(t)
	e := etcdtest.Start(t)
	cli := e.Client(t)
	put(t, cli, "/rw/services/web/good-1", `{"v":1,"service":"web","id":"good-1","address":"10.0.0.1","port":80,"health":{"shallow":"passing"}}`)
	put(t, cli, "/rw/services/web/bad-1", `{"v":1,"service":"web","id":"bad-1","address":"10.0.0.1\nserver evil 1.2.3.4:80","port":80,"health":{"shallow":"passing"}}`)
	cmd := exec.Command(bins.registrar, "ls", "--etcd", e.Endpoints[0], "--prefix", "/rw")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("registrar ls: %v\n%s", err, stderr.String())
	}
	if s := string(out); !strings.Contains(s, "good-1") || !strings.Contains(s, "10.0.0.1:80") || strings.Contains(s, "bad-1") || strings.Contains(s, "evil") {
		t.Errorf("ls output should list good-1 and not bad-1:\n%s", s)
	}
	if !strings.Contains(stderr.String(), "skipping invalid registry entry") || !strings.Contains(stderr.String(), "/rw/services/web/bad-1") {
		t.Errorf("ls should warn about bad-1 on stderr, got:\n%s", stderr.String())
	}
}
