package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rewire/rewire/internal/daemon"
	"github.com/rewire/rewire/internal/etcdtest"
	"github.com/rewire/rewire/internal/promtext"
	"github.com/rewire/rewire/registrar"
	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/templater"
	"gopkg.in/yaml.v3"
)

const monitoringDir = "../../deploy/monitoring"

// TestAlertingRules runs promtool on deploy/monitoring's rules: they must
// load, and their unit tests (rewire-alerts.test.yml) must pass.
func TestAlertingRules(t *testing.T) {
	skipShort(t)
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed, and $CI is set: install it in .ci/run (Debian: apt-get install prometheus)")
		}
		t.Skip("\n\n*** SKIPPING: promtool is not installed (Debian: apt-get install prometheus) ***\n\n")
	}
	for _, args := range [][]string{{"check", "rules", "rewire-alerts.yml"}, {"test", "rules", "rewire-alerts.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = monitoringDir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestMonitoringReferencesRealMetrics checks that every metric the
// alerting rules and the dashboard query is one the daemons export. The
// names come from the daemons themselves: a scrape of a running registrar
// and templater, plus the descriptors of the metric families they
// register (a family with labels shows in a scrape only once something
// happened to it, such as a failed reload).
func TestMonitoringReferencesRealMetrics(t *testing.T) {
	skipShort(t)
	have := exportedMetrics(t)
	for _, name := range []string{"registrar_checks_total", "templater_revision_lag", "templater_render_failures_total", "go_goroutines"} {
		if !have[name] {
			t.Fatalf("metric %s not found among the daemons' metrics: the collection below is broken", name)
		}
	}
	queries := map[string][]string{} // file → expressions
	queries["rewire-alerts.yml"] = ruleQueries(t)
	queries["rewire-dashboard.json"] = dashboardQueries(t)
	for file, exprs := range queries {
		if len(exprs) < 5 {
			t.Errorf("%s: found only %d queries; the parsing below is broken", file, len(exprs))
		}
		for _, expr := range exprs {
			names := metricNames(expr)
			if len(names) == 0 {
				t.Errorf("%s: query %q references no metric", file, expr)
			}
			for _, n := range names {
				if !have[n] && !have[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")] {
					t.Errorf("%s: query %q uses %s, which neither daemon exports", file, strings.TrimSpace(expr), n)
				}
			}
		}
	}
}

// metricNames returns the names in a PromQL expression that are metrics:
// rewire's prefixes, Go and process metrics, and Prometheus' own `up`.
// Label names and values, functions and keywords never match these.
func metricNames(expr string) []string {
	expr = regexp.MustCompile(`"[^"]*"`).ReplaceAllString(expr, `""`) // label values
	var out []string
	for _, m := range regexp.MustCompile(`\b(?:(?:registrar|registry|templater|go|process)_[a-z0-9_]+|up)\b`).FindAllString(expr, -1) {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

func ruleQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(monitoringDir, "rewire-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Expr string }
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("rewire-alerts.yml: %v", err)
	}
	var out []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}

func dashboardQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(monitoringDir, "rewire-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("rewire-dashboard.json: %v", err)
	}
	var out []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	return out
}

// exportedMetrics returns the names of every metric family the daemons
// export, plus `up`, which Prometheus adds to every scrape.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	have := map[string]bool{"up": true}
	// Scrape a registrar and a templater that are running.
	e := etcdtest.Start(t)
	regAddr, tplAddr := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	regCfg := writeFile(t, filepath.Join(dir, "registrar.yaml"), `etcd: {endpoints: [`+e.Endpoints[0]+`], prefix: /rw}
services:
  - {name: web, id: web-1, address: 127.0.0.1, port: 8080, checks: [{name: port, tcp: "`+regAddr+`", interval: 100ms}]}
`)
	tplCfg, _ := templaterConfig(t, e.Endpoints[0])
	start(t, bins.registrar, "run", "-c", regCfg, "--listen", regAddr)
	start(t, bins.templater, "run", "-c", tplCfg, "--listen", tplAddr)
	for _, addr := range []string{regAddr, tplAddr} {
		waitFor(t, 20*time.Second, "metrics of "+addr, func() bool {
			m, err := promtext.Scrape(addr, "")
			for sample := range m {
				name, _, _ := strings.Cut(sample, "{")
				have[name] = true
			}
			return err == nil && (have["registrar_checks_total"] || addr == tplAddr) && (have["templater_revision_lag"] || addr == regAddr)
		})
	}
	// The families the daemons register, from the constructors they call.
	rec := descRecorder(have)
	registrar.New(registrar.Config{}, registrar.Options{Registerer: rec})
	registry.NewWatcher(registry.WatcherOptions{Registerer: rec})
	templater.NewMetrics(rec) // the render pipeline's and the HAProxy runtime's
	families, err := daemon.NewRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		have[f.GetName()] = true
	}
	return have
}

// descRecorder is a prometheus.Registerer that records the name of each
// metric family registered with it.
type descRecorder map[string]bool

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r descRecorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r[m[1]] = true
		}
	}
	return nil
}

func (r descRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		r.Register(c)
	}
}

func (r descRecorder) Unregister(prometheus.Collector) bool { return true }
