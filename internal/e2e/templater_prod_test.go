package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/etcdtest"
	"github.com/rewire/rewire/internal/testutil"
	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/render"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// prodStatus is the part of the templater's /v1/status these tests read.
type prodStatus struct {
	Revision     int64                 `json:"revision"`
	StaleSeconds float64               `json:"stale_seconds"`
	ConfigError  string                `json:"config_error"`
	StoreChange  registry.StoreChange  `json:"store_change"`
	Templates    []render.TargetStatus `json:"templates"`
}

// templaterStatus fetches /v1/status from the templater at addr.
func templaterStatus(t *testing.T, addr string) (prodStatus, error) {
	t.Helper()
	var st prodStatus
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /v1/status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func mustStatus(t *testing.T, addr string) prodStatus {
	t.Helper()
	st, err := templaterStatus(t, addr)
	if err != nil {
		t.Fatalf("status of the templater on %s: %v", addr, err)
	}
	return st
}

// templateStatus returns the named template's status, or false.
func (st prodStatus) template(name string) (render.TargetStatus, bool) {
	for _, ts := range st.Templates {
		if ts.Name == name {
			return ts, true
		}
	}
	return render.TargetStatus{}, false
}

func instanceRecord(svc, id, addr string) string {
	return fmt.Sprintf(`{"v":1,"service":%q,"id":%q,"address":%q,"port":80,"health":{"shallow":"passing"}}`, svc, id, addr)
}

// replaceFile writes content to path the way editors save: a new file
// renamed over the old one, so a reader never sees it half written.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := writeFile(t, path+".new", content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func alive(t *testing.T, p *proc) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("templater exited: %v\n%s", p.err, p.out)
	default:
	}
}

const webServers = `{{ range service "web" }}server {{ .ID }} {{ .Address }}:{{ .Port }}
{{ end }}`

// prodRun is a templater process on an etcd of its own, rendering one
// template "web" (webServers, from dir/web.tmpl unless the test wrote one)
// into dir/out/web.conf under the prefix /rw; extra is appended to the
// template's config.
type prodRun struct {
	etcd      *etcdtest.Etcd
	cli       *clientv3.Client
	listen    string // the templater's HTTP address
	cfg, dest string
	p         *proc
}

func startProd(t *testing.T, dir, extra string) prodRun {
	t.Helper()
	r := prodRun{etcd: etcdtest.Start(t), listen: freeAddr(t)}
	r.cli = r.etcd.Client(t)
	if _, err := os.Stat(filepath.Join(dir, "web.tmpl")); err != nil {
		writeFile(t, filepath.Join(dir, "web.tmpl"), webServers)
	}
	if err := os.MkdirAll(filepath.Join(dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.cfg = writeFile(t, filepath.Join(dir, "templater.yaml"), fmt.Sprintf(`etcd: {endpoints: [%q], prefix: /rw}
listen: %s
templates:
  - name: web
    source: web.tmpl
    destination: out/web.conf
%s`, r.etcd.Endpoints[0], r.listen, extra))
	r.dest = filepath.Join(dir, "out", "web.conf")
	r.p = start(t, bins.templater, "run", "-c", r.cfg)
	return r
}

func TestTemplaterMinServersHoldsFile(t *testing.T) {
	skipShort(t)
	// min_servers alone: the fraction guards are off, so that the release
	// of the hold is min_servers' own.
	r := startProd(t, t.TempDir(), "    guards: {min_servers: 1, max_removed_fraction: 0, mass_expiry_fraction: 0}\n")
	cli, listen, dest, p := r.cli, r.listen, r.dest, r.p
	put(t, cli, "/rw/services/web/web-1", instanceRecord("web", "web-1", "10.0.0.1"))
	put(t, cli, "/rw/services/web/web-2", instanceRecord("web", "web-2", "10.0.0.2"))
	want := "server web-1 10.0.0.1:80\nserver web-2 10.0.0.2:80\n"
	waitFor(t, 10*time.Second, "both instances rendered", func() bool { return readFile(dest) == want })
	before, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}

	// Every instance of web vanishes in one revision, as when their leases
	// expire together.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, "/rw/services/web/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	trips := func() float64 {
		return metric(listen, `templater_guard_trips_total{guard="min_servers",template="web"}`)
	}
	waitFor(t, 10*time.Second, "min_servers guard trip counted", func() bool { return trips() > 0 })
	if got := readFile(dest); got != want {
		t.Errorf("destination after every web instance vanished = %q, want the previous %q", got, want)
	}
	if after, err := os.Stat(dest); err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("destination was replaced while held (err %v)", err)
	}
	st := mustStatus(t, listen)
	ts, ok := st.template("web")
	if !ok || ts.Held == "" || ts.HeldBy != render.GuardMinServers {
		t.Errorf("/v1/status template web = %+v, want held by %s", ts, render.GuardMinServers)
	}

	ctx, cancel = context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins.templater, "status", "--listen", listen).CombinedOutput()
	if err != nil {
		t.Errorf("templater status --listen %s: %v\n%s", listen, err, out)
	}
	if !strings.Contains(string(out), "held by min_servers") || !strings.Contains(string(out), "web") {
		t.Errorf("templater status --listen %s =\n%s\nwant it to say held by min_servers", listen, out)
	}
	if n := trips(); n < 1 {
		t.Errorf("templater_guard_trips_total{guard=min_servers} = %v, want > 0", n)
	}

	// One instance back: the hold ends.
	put(t, cli, "/rw/services/web/web-2", instanceRecord("web", "web-2", "10.0.0.2"))
	waitFor(t, 10*time.Second, "release rendered", func() bool { return readFile(dest) == "server web-2 10.0.0.2:80\n" })
	waitFor(t, 5*time.Second, "hold cleared in /v1/status", func() bool {
		ts, _ := mustStatus(t, listen).template("web")
		return ts.Held == ""
	})
	alive(t, p)
}

// outage is how long etcd stays down in TestTemplaterEtcdOutage: longer
// than the watcher's stall bound (3 progress intervals of 5s).
const outage = 30 * time.Second

func TestTemplaterEtcdOutage(t *testing.T) {
	skipShort(t)
	testutil.Long(t, fmt.Sprintf("stops etcd for %s", outage))
	r := startProd(t, t.TempDir(), "")
	e, cli, listen, dest, p := r.etcd, r.cli, r.listen, r.dest, r.p
	put(t, cli, "/rw/services/web/web-1", instanceRecord("web", "web-1", "10.0.0.1"))
	want := "server web-1 10.0.0.1:80\n"
	waitFor(t, 10*time.Second, "first render", func() bool { return readFile(dest) == want })
	staleness := func() float64 { return metric(listen, "registry_staleness_seconds") }

	e.Stop()
	t0 := time.Now()
	var lastStale, lastMetric float64
	tick := time.NewTicker(time.Second) // sampling during the outage
	defer tick.Stop()
	for time.Since(t0) < outage {
		<-tick.C
		alive(t, p)
		if got := readFile(dest); got != want {
			t.Fatalf("destination %v into the outage = %q, want the last good %q", time.Since(t0).Round(time.Second), got, want)
		}
		st, err := templaterStatus(t, listen)
		if err != nil {
			t.Fatalf("/v1/status %v into the outage: %v", time.Since(t0).Round(time.Second), err)
		}
		if st.StaleSeconds < lastStale {
			t.Errorf("stale_seconds went from %.1f down to %.1f during the outage", lastStale, st.StaleSeconds)
		}
		lastStale = st.StaleSeconds
		if m := staleness(); m >= lastMetric {
			lastMetric = m
		} else {
			t.Errorf("registry_staleness_seconds went from %.1f down to %.1f during the outage", lastMetric, m)
		}
		if ts, _ := st.template("web"); ts.Error != "" {
			t.Errorf("template web failing during the outage: %s", ts.Error)
		}
	}
	t.Logf("after %v of outage: stale_seconds %.1f, registry_staleness_seconds %.1f", outage, lastStale, lastMetric)
	if min := outage.Seconds() - 10; lastStale < min || lastMetric < min {
		t.Errorf("after %v of outage: stale_seconds %.1f, registry_staleness_seconds %.1f, want both at least %.0f", outage, lastStale, lastMetric, min)
	}

	e.Restart(t)
	restarted := time.Now()
	cli = e.Client(t) // the old client may be deep in its reconnect backoff
	put(t, cli, "/rw/services/web/web-2", instanceRecord("web", "web-2", "10.0.0.2"))
	put2 := time.Since(restarted)
	waitFor(t, 30*time.Second, "a change after the restart rendered", func() bool { return strings.Contains(readFile(dest), "web-2") })
	d := time.Since(restarted)
	t.Logf("change rendered %v after etcd's restart returned (the put itself took %v)", d.Round(time.Millisecond), put2.Round(time.Millisecond))
	testutil.Slow(t, "change rendered after etcd's restart", d, time.Second)
	waitFor(t, 10*time.Second, "staleness back to normal", func() bool { return mustStatus(t, listen).StaleSeconds < 10 })
	alive(t, p)
}

func TestTemplaterSourceEdit(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	r := startProd(t, dir, "")
	cli, listen, dest, p := r.cli, r.listen, r.dest, r.p
	src := filepath.Join(dir, "web.tmpl")
	put(t, cli, "/rw/services/web/web-1", instanceRecord("web", "web-1", "10.0.0.1"))
	waitFor(t, 10*time.Second, "first render", func() bool { return readFile(dest) == "server web-1 10.0.0.1:80\n" })

	replaceFile(t, src, "# v2\n"+webServers)
	waitFor(t, 10*time.Second, "edited source rendered", func() bool { return readFile(dest) == "# v2\nserver web-1 10.0.0.1:80\n" })

	replaceFile(t, src, "# v3\n{{ range service \"web\" }\n")
	waitFor(t, 10*time.Second, "parse_error in /v1/status", func() bool {
		ts, _ := mustStatus(t, listen).template("web")
		return ts.ParseError != ""
	})
	ts, _ := mustStatus(t, listen).template("web")
	if !strings.Contains(ts.ParseError, "web.tmpl:2") {
		t.Errorf("parse_error = %q, want it to name web.tmpl:2", ts.ParseError)
	}
	// The previous template keeps rendering registry changes.
	put(t, cli, "/rw/services/web/web-2", instanceRecord("web", "web-2", "10.0.0.2"))
	want := "# v2\nserver web-1 10.0.0.1:80\nserver web-2 10.0.0.2:80\n"
	waitFor(t, 10*time.Second, "change rendered with the previous template", func() bool { return readFile(dest) == want })

	replaceFile(t, src, "# v4\n"+webServers)
	waitFor(t, 10*time.Second, "fixed source rendered", func() bool { return strings.HasPrefix(readFile(dest), "# v4\n") })
	waitFor(t, 5*time.Second, "parse_error cleared", func() bool {
		ts, _ := mustStatus(t, listen).template("web")
		return ts.ParseError == ""
	})
	alive(t, p)
}

func TestTemplaterSIGHUP(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	r := startProd(t, dir, "")
	cli, listen, cfg, dest, p := r.cli, r.listen, r.cfg, r.dest, r.p
	put(t, cli, "/rw/services/web/web-1", instanceRecord("web", "web-1", "10.0.0.1"))
	waitFor(t, 10*time.Second, "first render", func() bool { return readFile(dest) == "server web-1 10.0.0.1:80\n" })
	good := readFileString(t, cfg)

	// A second template.
	writeFile(t, filepath.Join(dir, "count.tmpl"), `web: {{ len (service "web") }}`+"\n")
	second := good + `  - name: count
    source: count.tmpl
    destination: out/count.conf
`
	replaceFile(t, cfg, second)
	p.signal(t, syscall.SIGHUP)
	count := filepath.Join(dir, "out", "count.conf")
	waitFor(t, 10*time.Second, "second template rendered", func() bool { return readFile(count) == "web: 1\n" })
	waitFor(t, 5*time.Second, "two templates in /v1/status", func() bool { return len(mustStatus(t, listen).Templates) == 2 })

	// An invalid config is rejected; the running one stays.
	replaceFile(t, cfg, second+"    reload_cmd: nope\n")
	p.signal(t, syscall.SIGHUP)
	waitFor(t, 10*time.Second, "config_error in /v1/status", func() bool { return mustStatus(t, listen).ConfigError != "" })
	if st := mustStatus(t, listen); !strings.Contains(st.ConfigError, "reload_cmd") {
		t.Errorf("config_error = %q, want it to name the unknown field reload_cmd", st.ConfigError)
	}
	alive(t, p)
	put(t, cli, "/rw/services/web/web-2", instanceRecord("web", "web-2", "10.0.0.2"))
	waitFor(t, 10*time.Second, "both templates still rendering", func() bool {
		return readFile(count) == "web: 2\n" && strings.Contains(readFile(dest), "web-2")
	})

	// Back to the running config: nothing to reload, and nothing rejected.
	replaceFile(t, cfg, second)
	p.signal(t, syscall.SIGHUP)
	waitFor(t, 10*time.Second, "config_error cleared", func() bool { return mustStatus(t, listen).ConfigError == "" })
	alive(t, p)
}

func readFileString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
