package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rewire/rewire/internal/etcdtest"
	"github.com/rewire/rewire/internal/testutil"
	"github.com/rewire/rewire/registrar"
)

var screenshot = flag.String("screenshot", "", "TestBrowserUI: save a screenshot of the page, db failing, to this file (docs/ui.png)")

// chromium returns the path of Debian's chromium: skipped loudly when it
// is missing, failed under CI (which installs it).
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: not starting chromium")
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed, and $CI is set: install it (Debian: apt-get install chromium)")
	}
	t.Skip("*** SKIPPING: chromium is not installed ***")
	return ""
}

func TestUIRefusesNonLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		allow bool
		ok    bool
	}{
		{"127.0.0.1:0", false, true},
		{"[::1]:9703", false, true},
		{"localhost:9703", false, true},
		{"0.0.0.0:9703", false, false},
		{":9703", false, false},
		{"10.0.0.5:9703", false, false},
		{"10.0.0.5:9703", true, true},
		{"nonsense", false, false},
	} {
		if err := checkLoopback(tc.addr, tc.allow); (err == nil) != tc.ok {
			t.Errorf("checkLoopback(%q, %v) = %v, want ok=%v", tc.addr, tc.allow, err, tc.ok)
		}
	}
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"registrar", "ui", "--listen", "0.0.0.0:9703", "--etcd", "127.0.0.1:1"}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "pass --allow-remote") {
		t.Errorf("ui --listen 0.0.0.0:9703: exit %d, stderr %q; want a refusal naming --allow-remote", code, stderr.String())
	}
}

// sampleApp is an HTTP service whose /healthz follows up.
func sampleApp(t *testing.T, up *atomic.Bool) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

// startStack runs, in this process, the registrar's agent for five sample
// services (web → api → db, web → cache, admin) against an embedded etcd,
// and `registrar ui` on a free loopback port. It returns the page's URL
// and the switch of db's health.
func startStack(t *testing.T) (string, *atomic.Bool) {
	e := etcdtest.Start(t)
	var dbUp, up atomic.Bool
	up.Store(true)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "etcd: {endpoints: [%q], prefix: /t}\nnode: test\nlease_ttl: 5s\nlisten: 127.0.0.1:0\nservices:\n", e.Endpoints[0])
	for _, s := range []struct{ name, deps string }{{"db", ""}, {"api", "db"}, {"web", "api, cache"}, {"cache", ""}, {"admin", ""}} {
		app := sampleApp(t, map[bool]*atomic.Bool{true: &dbUp, false: &up}[s.name == "db"])
		fmt.Fprintf(&cfg, "  - {name: %s, address: 127.0.0.1, port: %s, depends_on: [%s], checks: [{name: http, http: %q, interval: 100ms, timeout: 1s}]}\n",
			s.name, app.URL[strings.LastIndex(app.URL, ":")+1:], s.deps, app.URL+"/healthz")
	}
	path := filepath.Join(t.TempDir(), "registrar.yaml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgv, err := registrar.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var uiErr, uiOut testutil.Buffer
	// The registrar's agent runs as `registrar run` would run it; only
	// `registrar ui` goes through the command line (two command lines
	// parsed at once in one process race on urfave/cli's global help
	// flag).
	a := registrar.New(cfgv, registrar.Options{Client: e.Client(t)})
	wg.Go(func() { a.Run(ctx) })
	wg.Go(func() {
		run(ctx, []string{"registrar", "ui", "--listen", "127.0.0.1:0", "--etcd", e.Endpoints[0], "--prefix", "/t"}, &uiOut, &uiErr)
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if t.Failed() {
			t.Logf("registrar ui stderr:\n%s", uiErr.String())
		}
	})
	addr := regexp.MustCompile(`registry map: (http://\S+/)`)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := addr.FindStringSubmatch(uiOut.String()); m != nil {
			return m[1], &dbUp
		}
		if time.Now().After(deadline) {
			t.Fatalf("registrar ui did not print its address:\n%s\n%s", uiOut.String(), uiErr.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the output for a condition, bounded above
	}
}

// pageState is what the page shows, read from its DOM.
const pageState = `(() => {
  const rows = [...document.querySelectorAll('#services tr.svc')].map(r => r.dataset.service + ':' + r.dataset.state);
  const nodes = [...document.querySelectorAll('#graph svg g.node')].map(g => g.id + ':' + g.getAttribute('class'));
  const roots = [...document.querySelectorAll('#causes [data-root]')].map(c => c.dataset.root);
  return JSON.stringify({rows: rows.sort(), nodes: nodes.sort(), roots: roots.sort(),
    rev: window.rewireMap.rev, rendered: window.rewireMap.rendered});
})()`

func TestBrowserUI(t *testing.T) {
	chrome := chromium(t)
	url, dbUp := startStack(t)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 960),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true))
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	// Everything the page writes to the console, exceptions and the
	// browser's log (CSP violations, failed loads) included.
	cctx, stopConsole := context.WithCancel(bctx)
	messages := chromedp.Console(cctx)
	var jsErrors testutil.Buffer
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning {
				fmt.Fprintf(&jsErrors, "%s (%s:%d)\n", m, m.URL, m.Line)
			}
		}
	}()
	defer func() { stopConsole(); <-consoleDone }()
	if err := chromedp.Do(bctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}

	// 1. db fails: every service in the table, one SVG node each, db the
	// root cause in the graph and in the causes list. api's deep checks
	// fail because of db; web's pass, as api is still routable (deep
	// health looks one dependency deep, so a failure does not cascade).
	failing := `{"rows":["admin:healthy","api:waiting","cache:healthy","db:root","web:healthy"],` +
		`"nodes":["svc-admin:node svc healthy","svc-api:node svc waiting","svc-cache:node svc healthy","svc-db:node svc root","svc-web:node svc healthy"],` +
		`"roots":["db"]`
	waitPage(t, bctx, failing, "db failing")
	if *screenshot != "" {
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*screenshot, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// 2. db recovers: the page follows without a reload (a reload would
	// drop the marker set here).
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	dbUp.Store(true)
	healthy := `{"rows":["admin:healthy","api:healthy","cache:healthy","db:healthy","web:healthy"],` +
		`"nodes":["svc-admin:node svc healthy","svc-api:node svc healthy","svc-cache:node svc healthy","svc-db:node svc healthy","svc-web:node svc healthy"],` +
		`"roots":[]`
	waitPage(t, bctx, healthy, "db recovered")
	if notReloaded, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`window.notReloaded === true`)); err != nil || !notReloaded {
		t.Errorf("the page was reloaded to show the change (marker gone: %v, %v)", notReloaded, err)
	}
	if s := jsErrors.String(); s != "" {
		t.Errorf("JavaScript errors or warnings in the page:\n%s", s)
	}
}

// waitPage waits until pageState starts with want and the graph drawn is
// the latest received.
func waitPage(t *testing.T, ctx context.Context, want, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](pageState))
		if err != nil {
			t.Fatalf("%s: reading the page: %v", what, err)
		}
		if strings.HasPrefix(got, want) && rendered(got) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the page shows\n%s\nwant it to start with\n%s", what, got, want)
		}
		time.Sleep(50 * time.Millisecond) // polling the page for a condition, bounded above
	}
}

// rendered reports whether the state's graph is drawn for the revision
// last received.
func rendered(state string) bool {
	m := regexp.MustCompile(`"rev":(\d+),"rendered":(\d+)`).FindStringSubmatch(state)
	return m != nil && m[1] == m[2] && m[1] != "0"
}
