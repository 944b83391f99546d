package haproxy_test

import (
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/internal/haproxytest"
	"github.com/rewire/rewire/registry/schema"
	"github.com/rewire/rewire/render"
)

// backend is a real HTTP server standing in for one instance. It answers
// "<id> <path> <X-Forwarded-Prefix>" and counts its requests.
type backend struct {
	id   string
	srv  *httptest.Server
	hits atomic.Int64
}

func startBackend(t *testing.T, id string, l net.Listener) *backend {
	t.Helper()
	b := &backend{id: id}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		fmt.Fprintf(w, "%s %s %s", b.id, r.URL.Path, r.Header.Get("X-Forwarded-Prefix"))
	}))
	b.srv.Listener.Close()
	b.srv.Listener = l
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	return b
}

func listen(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// record returns the JSON record of an instance served by b.
func (b *backend) record(t *testing.T, service string, shallow health.Status, draining bool) string {
	t.Helper()
	host, port, err := net.SplitHostPort(b.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	v, err := schema.Instance{
		V: schema.Version, Service: service, ID: b.id, Address: host, Port: p, Weight: 100,
		Health: schema.Health{Shallow: shallow}, Draining: draining,
	}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

// TestEndToEnd renders the example with render.Target (checked by a real
// `haproxy -c`), runs haproxy on it in front of real backends, and sends
// requests through it: they reach routable instances only. It then changes
// the registry, applies and reloads, and checks the new routing.
func TestEndToEnd(t *testing.T) {
	bin := haproxytest.Binary(t)
	dir := t.TempDir()
	// A short directory: unix socket paths are limited to 107 bytes.
	sockDir, err := os.MkdirTemp("", "rewire-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	statsSock := filepath.Join(sockDir, "admin.sock")
	bind := listen(t, "tcp", "127.0.0.1:0")
	frontend := bind.Addr().String()
	bind.Close() // haproxy binds it

	backends := map[string]*backend{}
	for _, id := range []string{"web-1", "web-2", "web-3", "web-4", "web-5", "api-1"} {
		backends[id] = startBackend(t, id, listen(t, "tcp", "127.0.0.1:0"))
	}
	kv := map[string]string{
		"/rewire/haproxy/bind":          frontend,
		"/rewire/haproxy/stats_socket":  statsSock,
		"/rewire/services/web/web-1":    backends["web-1"].record(t, "web", health.Passing, false),
		"/rewire/services/web/web-2":    backends["web-2"].record(t, "web", health.Warning, false),
		"/rewire/services/web/web-3":    backends["web-3"].record(t, "web", health.Critical, false),
		"/rewire/services/web/web-4":    backends["web-4"].record(t, "web", health.Passing, true),
		"/rewire/services/web/web-5":    backends["web-5"].record(t, "web", health.Passing, false),
		"/rewire/maintenance/web/web-5": `{"reason":"test","by":"e2e","since":"2026-11-21T00:00:00Z"}`,
		"/rewire/services/api/api-1":    backends["api-1"].record(t, "api", health.Passing, false),
	}
	if l, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		backends["v6-1"] = startBackend(t, "v6-1", l)
		kv["/rewire/services/v6/v6-1"] = backends["v6-1"].record(t, "v6", health.Passing, false)
	} else {
		t.Logf("no IPv6 loopback (%v): not testing an IPv6 backend", err)
	}
	x := schema.NewIndex(keys)
	for k, v := range kv {
		if err := x.Put(k, []byte(v)); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
	}

	dest := filepath.Join(dir, "haproxy.cfg")
	target, err := render.NewTarget(render.TargetConfig{
		Name: "haproxy", Source: templatePath, Destination: dest, Mode: 0o644,
		Check: render.Command{Argv: []string{bin, "-c", "-f", "{{ .Staged }}"}},
	}, render.Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := target.Apply(t.Context(), x.Snapshot(1)); err != nil || !changed {
		t.Fatalf("Apply(rev 1) = %v, %v, want true, nil", changed, err)
	}
	p := haproxytest.Start(t, dest)

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	get := func(t *testing.T, path, host string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), "GET", "http://"+frontend+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s (Host %q): %v", path, host, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	// spread sends n requests to /web/hello and returns the hits per
	// instance id, failing on any answer not from a web instance.
	spread := func(t *testing.T, n int) map[string]int {
		t.Helper()
		hits := map[string]int{}
		for range n {
			code, body := get(t, "/web/hello", "")
			id, rest, _ := strings.Cut(body, " ")
			if code != http.StatusOK || rest != "/web/hello /web" {
				t.Fatalf("GET /web/hello = %d %q, want 200 \"<id> /web/hello /web\"", code, body)
			}
			hits[id]++
		}
		return hits
	}
	hitsOf := func() map[string]int64 {
		m := map[string]int64{}
		for id, b := range backends {
			m[id] = b.hits.Load()
		}
		return m
	}

	t.Run("only routable instances get traffic", func(t *testing.T) {
		before := hitsOf()
		hits := spread(t, 20)
		for _, id := range []string{"web-1", "web-2"} {
			if hits[id] == 0 {
				t.Errorf("GET /web/hello ×20 reached %v, want some requests on routable %s", hits, id)
			}
		}
		for _, id := range []string{"web-3", "web-4", "web-5"} {
			if n := backends[id].hits.Load() - before[id]; n != 0 {
				t.Errorf("disabled instance %s received %d requests, want 0", id, n)
			}
		}
	})

	t.Run("routing", func(t *testing.T) {
		type route struct {
			path, host string
			wantCode   int
			wantID     string // first word of the body
		}
		tests := []route{
			{path: "/api/v1/users", wantCode: 200, wantID: "api-1"},
			{path: "/api", wantCode: 200, wantID: "api-1"},
			{path: "/", host: "api", wantCode: 200, wantID: "api-1"},
			{path: "/", host: "API:8000", wantCode: 200, wantID: "api-1"},
			{path: "/apix", wantCode: 404, wantID: "no"},
			{path: "/nope/", wantCode: 404, wantID: "no"},
		}
		if backends["v6-1"] != nil {
			tests = append(tests, route{path: "/v6/x", wantCode: 200, wantID: "v6-1"})
		}
		for _, tc := range tests {
			code, body := get(t, tc.path, tc.host)
			if id, _, _ := strings.Cut(body, " "); code != tc.wantCode || id != tc.wantID {
				t.Errorf("GET %s (Host %q) = %d %q, want %d from %s", tc.path, tc.host, code, body, tc.wantCode, tc.wantID)
			}
		}
	})

	t.Run("stats socket shows disabled servers in maintenance", func(t *testing.T) {
		// web-4 is draining: weight 0, up (open sessions finish) but it gets no
		// new traffic, which "only routable instances get traffic" checks.
		want := map[string]string{"web-1": "no check", "web-2": "no check", "web-3": "MAINT", "web-4": "no check", "web-5": "MAINT"}
		got := serverStatus(t, statsSock, "web")
		for id, st := range want {
			if got[id] != st {
				t.Errorf("show stat: web/%s status = %q, want %q", id, got[id], st)
			}
		}
	})

	t.Run("apply and reload", func(t *testing.T) {
		// web-3 recovers; web-1 starts draining.
		for k, v := range map[string]string{
			"/rewire/services/web/web-3": backends["web-3"].record(t, "web", health.Passing, false),
			"/rewire/services/web/web-1": backends["web-1"].record(t, "web", health.Passing, true),
		} {
			if err := x.Put(k, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		if changed, err := target.Apply(t.Context(), x.Snapshot(2)); err != nil || !changed {
			t.Fatalf("Apply(rev 2) = %v, %v, want true, nil", changed, err)
		}
		if err := p.Reload(); err != nil {
			t.Fatal(err)
		}
		waitOldWorkersGone(t, p)
		before := hitsOf()
		hits := spread(t, 30)
		for _, id := range []string{"web-2", "web-3"} {
			if hits[id] == 0 {
				t.Errorf("after reload GET /web/hello ×30 reached %v, want some requests on routable %s", hits, id)
			}
		}
		for _, id := range []string{"web-1", "web-4", "web-5"} {
			if n := backends[id].hits.Load() - before[id]; n != 0 {
				t.Errorf("after reload disabled instance %s received %d requests, want 0", id, n)
			}
		}
		if changed, err := target.Apply(t.Context(), x.Snapshot(3)); err != nil || changed {
			t.Errorf("Apply(rev 3, same data) = %v, %v, want false, nil", changed, err)
		}
	})
}

// waitOldWorkersGone polls the master CLI until one worker is left, so
// that every new connection reaches the reloaded configuration.
func waitOldWorkersGone(t *testing.T, p *haproxytest.Proc) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := p.MasterCLI("show proc")
		if err == nil && strings.Count(out, " worker ") == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("old workers still running after 10s: show proc = %q, %v", out, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serverStatus returns the status column of `show stat` for every server
// of backend, read from the runtime API socket.
func serverStatus(t *testing.T, sock, backend string) map[string]string {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "show stat\n"); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(out), "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		t.Fatalf("show stat = %q: %v", out, err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	got := map[string]string{}
	for _, row := range rows[1:] {
		if len(row) > col["status"] && row[col["pxname"]] == backend && row[col["svname"]] != "BACKEND" {
			got[row[col["svname"]]] = row[col["status"]]
		}
	}
	return got
}
