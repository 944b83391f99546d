package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/etcdtest"
)

// listTemplate renders one line per registered instance, and can be told
// through app/mode to fail its check or its execution.
const listTemplate = `mode={{ keyOrDefault "app/mode" "ok" }}
{{- if eq (keyOrDefault "app/mode" "") "explode" }}{{ fail "exploding on purpose" }}{{ end }}
{{ range services }}{{ range instances .Name }}server {{ .Service }}/{{ .ID }} {{ .Address }}:{{ .Port }} {{ .Health.Shallow }}
{{ end }}{{ end }}`

func templaterConfig(t *testing.T, endpoint string) (cfgPath, dest string) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "list.tmpl"), listTemplate)
	dest = filepath.Join(dir, "out", "list.conf")
	if err := os.Mkdir(filepath.Dir(dest), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`etcd: {endpoints: [%q], prefix: /rw}
templates:
  - name: list
    source: list.tmpl
    destination: out/list.conf
    check: "! grep -q mode=reject {{ .Staged }}"
    reload: "echo reloaded >> %s"
    # These tests deregister every instance on purpose: no self-preservation.
    guards: {max_removed_fraction: 0, mass_expiry_fraction: 0}
`, endpoint, filepath.Join(dir, "reloads.log"))
	return writeFile(t, filepath.Join(dir, "templater.yaml"), cfg), dest
}

func TestTemplaterNeverRendersInvalidRecords(t *testing.T) {
	skipShort(t)
	e := etcdtest.Start(t)
	cli := e.Client(t)
	cfg, dest := templaterConfig(t, e.Endpoints[0])
	start(t, bins.templater, "run", "-c", cfg, "--listen", freeAddr(t))
	rec := func(id, addr string, port int) string {
		return fmt.Sprintf(`{"v":1,"service":"web","id":%q,"address":%q,"port":%d,"health":{"shallow":"passing"}}`, id, addr, port)
	}
	put(t, cli, "/rw/services/web/good-1", rec("good-1", "10.0.0.1", 80))
	bad := map[string]string{
		"bad-newline": rec("bad-newline", "10.0.0.2\n  server evil 6.6.6.6:80", 80),
		"bad-space":   rec("bad-space", "10.0.0.3 backup", 80),
		"bad-port0":   rec("bad-port0", "10.0.0.4", 0),
		"bad-port":    rec("bad-port", "10.0.0.5", 70000),
	}
	for id, v := range bad {
		put(t, cli, "/rw/services/web/"+id, v)
	}
	// A valid record written after the invalid ones: once it shows, every
	// earlier revision has been processed.
	put(t, cli, "/rw/services/web/good-2", rec("good-2", "10.0.0.9", 81))
	waitFor(t, 5*time.Second, "good-2 rendered", func() bool { return strings.Contains(readFile(dest), "good-2") })
	got := readFile(dest)
	if !strings.Contains(got, "server web/good-1 10.0.0.1:80 passing") {
		t.Errorf("rendered file lacks good-1:\n%s", got)
	}
	for id := range bad {
		if strings.Contains(got, id) {
			t.Errorf("rendered file contains invalid record %s:\n%s", id, got)
		}
	}
	for _, s := range []string{"evil", "6.6.6.6", "backup", "70000"} {
		if strings.Contains(got, s) {
			t.Errorf("rendered file contains %q from an invalid record:\n%s", s, got)
		}
	}
}

func TestTemplaterKeepsLastGoodFile(t *testing.T) {
	skipShort(t)
	e := etcdtest.Start(t)
	cli := e.Client(t)
	cfg, dest := templaterConfig(t, e.Endpoints[0])
	listen := freeAddr(t)
	p := start(t, bins.templater, "run", "-c", cfg, "--listen", listen)
	put(t, cli, "/rw/services/web/web-1", `{"v":1,"service":"web","id":"web-1","address":"10.0.0.1","port":80,"health":{"shallow":"passing"}}`)
	waitFor(t, 5*time.Second, "first render", func() bool { return strings.Contains(readFile(dest), "web-1") })
	good, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	failures := func(stage string) float64 {
		return metric(listen, `templater_render_failures_total{stage="`+stage+`",template="list"}`)
	}
	for _, tc := range []struct{ mode, stage string }{
		{"reject", "check"},    // the check command fails on the staged file
		{"explode", "execute"}, // the template fails while executing
	} {
		t.Run(tc.stage, func(t *testing.T) {
			before := max(failures(tc.stage), 0)
			put(t, cli, "/rw/app/mode", tc.mode)
			waitFor(t, 5*time.Second, tc.stage+" failure counted", func() bool { return failures(tc.stage) > before })
			if now, _ := os.ReadFile(dest); string(now) != string(good) {
				t.Errorf("destination changed after a failed %s:\n%s\nwant\n%s", tc.stage, now, good)
			}
			if entries, _ := os.ReadDir(filepath.Dir(dest)); len(entries) != 1 {
				t.Errorf("staged files left behind: %v", entries)
			}
		})
	}
	put(t, cli, "/rw/app/mode", "fixed")
	waitFor(t, 5*time.Second, "recovery render", func() bool { return strings.HasPrefix(readFile(dest), "mode=fixed") })
	// The reload runs after the file is renamed into place: wait for it.
	reloadLog := filepath.Join(filepath.Dir(cfg), "reloads.log")
	waitFor(t, 5*time.Second, "the recovery reload", func() bool { return strings.Count(readFile(reloadLog), "reloaded") >= 2 })
	if reloads := readFile(reloadLog); strings.Count(reloads, "reloaded") != 2 {
		t.Logf("templater output:\n%s", p.out)
		t.Errorf("reloads = %d, want 2 (first render and recovery only)", strings.Count(reloads, "reloaded"))
	}
	select {
	case <-p.done:
		t.Fatalf("templater exited: %v", p.err)
	default:
	}
}

// TestDebianEtcd34 runs the registrar and the templater against the etcd
// operators install from Debian (3.4), started from its binary.
func TestDebianEtcd34(t *testing.T) {
	skipShort(t)
	e := etcdtest.StartBinary(t)
	cli := e.Client(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer app.Close()
	regCfg := writeFile(t, filepath.Join(t.TempDir(), "registrar.yaml"),
		registrarConfig(e.Endpoints[0], freeAddr(t), app.URL))
	tplCfg, dest := templaterConfig(t, e.Endpoints[0])
	reg := start(t, bins.registrar, "run", "-c", regCfg)
	start(t, bins.templater, "run", "-c", tplCfg, "--listen", freeAddr(t))

	waitFor(t, 10*time.Second, "both instances rendered passing", func() bool {
		s := readFile(dest)
		return strings.Contains(s, "server web/web-1 127.0.0.1:8080 passing") && strings.Contains(s, "server db/db-1 127.0.0.1:5432 passing")
	})
	if lease := get(t, cli, "/rw/services/web/web-1").Kvs[0].Lease; lease == 0 {
		t.Error("record has no lease on etcd 3.4")
	}
	app.Close()
	waitFor(t, 5*time.Second, "web critical rendered", func() bool {
		return strings.Contains(readFile(dest), "server web/web-1 127.0.0.1:8080 critical")
	})
	reg.signal(t, syscall.SIGTERM)
	if code := reg.wait(t, 10*time.Second); code != 0 {
		t.Errorf("registrar exit code = %d, want 0", code)
	}
	waitFor(t, 5*time.Second, "deregistration rendered", func() bool { return !strings.Contains(readFile(dest), "server ") })
}
