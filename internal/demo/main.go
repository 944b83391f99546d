// Command demo runs the whole rewire chain on one machine with no setup:
// an embedded etcd, three sample HTTP services (web-2 flaps on a timer), a
// registrar registering them, a templater rendering examples/haproxy, and
// haproxy itself when it is installed. `make demo` builds and starts it;
// Ctrl-C stops everything cleanly.
//
// It prints what it started, then one line each time a health flip of
// web-2 reaches the rendered haproxy.cfg, with the delay.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hap "github.com/rewire/rewire/haproxy"
	"github.com/rewire/rewire/internal/embedetcd"
	"github.com/rewire/rewire/internal/freeport"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type options struct {
	dir      string
	bins     string
	example  string
	flap     time.Duration
	duration time.Duration
}

func parseFlags() options {
	var o options
	self, _ := os.Executable()
	flag.StringVar(&o.dir, "dir", "demo-run", "working directory for configs, logs and the etcd data (recreated)")
	flag.StringVar(&o.bins, "bin", filepath.Dir(self), "directory holding the registrar and templater binaries")
	flag.StringVar(&o.example, "example", "examples/haproxy", "directory of the haproxy example")
	flag.DurationVar(&o.flap, "flap", 6*time.Second, "how often web-2 flips between healthy and failing")
	flag.DurationVar(&o.duration, "duration", 0, "stop by itself after this long (0: run until Ctrl-C)")
	flag.Parse()
	return o
}

func run() error {
	o := parseFlags()
	// SIGHUP: the terminal went away. SIGPIPE is ignored so that a closed
	// stdout fails a write (and stops the demo, see output) instead of
	// killing it before it stops its daemons.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	ctx, stdoutGone := context.WithCancel(ctx)
	defer stdoutGone()
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	out := &output{w: os.Stdout, gone: stdoutGone}
	d := &demo{o: o, out: out, procs: &procGroup{out: out}}
	if err := d.prepareDirs(); err != nil {
		return err
	}

	// 1. etcd, in this process.
	etcd, err := embedetcd.Start(ctx, embedetcd.Options{Dir: filepath.Join(d.dir, "etcd.data")})
	if err != nil {
		return err
	}
	defer etcd.Close()
	d.endpoint = etcd.Endpoints()[0]
	cli, err := etcd.NewClient()
	if err != nil {
		return err
	}
	defer cli.Close()

	// 2. Sample services; web-2 flaps. They declare dependencies
	// (web → api → db), so `registrar graph`, `why` and the page have a
	// map to show.
	var web2Healthy atomic.Bool
	web2Healthy.Store(true)
	d.apps = sampleApps(web2Healthy.Load)
	stopApps, err := startApps(d.apps)
	defer stopApps()
	if err != nil {
		return err
	}

	// 3. Configs. 4. The daemons.
	if err := d.writeConfigs(ctx, cli); err != nil {
		return err
	}
	defer d.procs.stop()
	if err := d.startDaemons(ctx); err != nil {
		return err
	}
	d.printBanner()

	// 5. Flap web-2 and report when each flip reaches the rendered file.
	return d.flap(ctx, &web2Healthy)
}

// demo is one run of the demo: where it writes, what it started and the
// addresses it handed out.
type demo struct {
	o        options
	out      io.Writer
	dir      string // the working directory, absolute
	example  string // the haproxy example's directory, absolute
	endpoint string // etcd's client endpoint
	apps     []*sampleApp
	procs    *procGroup

	haproxy    string // the haproxy binary; "" when it is not installed
	lbAddr     string // where haproxy serves the sample services
	adminSock  string // haproxy's runtime API socket
	regCfg     string // registrar.yaml
	tplCfg     string // templater.yaml
	rendered   string // the haproxy.cfg the templater renders
	regMetrics string // the registrar's listen address
	tplMetrics string // the templater's listen address
	uiAddr     string // the registry map page
}

// prepareDirs makes the working directory absolute and empty, and the
// example's directory absolute.
func (d *demo) prepareDirs() error {
	dir, err := filepath.Abs(d.o.dir)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	example, err := filepath.Abs(d.o.example)
	if err != nil {
		return err
	}
	d.dir, d.example = dir, example
	return nil
}

// writeConfigs puts the haproxy settings the example's template reads into
// etcd and writes registrar.yaml and templater.yaml.
func (d *demo) writeConfigs(ctx context.Context, cli *clientv3.Client) error {
	d.lbAddr = freeAddr()
	d.haproxy, _ = exec.LookPath("haproxy")
	put := func(k, v string) error {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := cli.Put(pctx, k, v)
		return err
	}
	if err := put("/rewire/haproxy/bind", d.lbAddr); err != nil {
		return err
	}
	d.adminSock = filepath.Join(d.dir, "admin.sock")
	if d.haproxy != "" {
		// An admin socket lets the templater change servers live.
		if err := put("/rewire/haproxy/stats_socket", d.adminSock); err != nil {
			return err
		}
		// Servers keep their health and drain across reloads.
		if err := put("/rewire/haproxy/state_file", filepath.Join(d.dir, "server-state")); err != nil {
			return err
		}
	}
	d.regCfg = filepath.Join(d.dir, "registrar.yaml")
	if err := os.WriteFile(d.regCfg, []byte(registrarYAML(d.endpoint, d.apps)), 0o644); err != nil {
		return err
	}
	d.rendered = filepath.Join(d.dir, "haproxy.cfg")
	d.tplCfg = filepath.Join(d.dir, "templater.yaml")
	// listen in the file, not a flag: `templater status -c` finds it there.
	d.regMetrics, d.tplMetrics = freeAddr(), freeAddr()
	tplYAML := templaterYAML(d.endpoint, d.example, d.dir, d.haproxy) + "listen: " + d.tplMetrics + "\n"
	return os.WriteFile(d.tplCfg, []byte(tplYAML), 0o644)
}

// startDaemons starts the registrar, the templater, the registry map page
// and haproxy (when installed), and waits until the first config is
// rendered and haproxy listens.
func (d *demo) startDaemons(ctx context.Context) error {
	if err := d.procs.start(d.dir, "registrar", filepath.Join(d.o.bins, "registrar"), "run", "-c", d.regCfg, "--listen", d.regMetrics); err != nil {
		return err
	}
	if err := d.procs.start(d.dir, "templater", filepath.Join(d.o.bins, "templater"), "run", "-c", d.tplCfg); err != nil {
		return err
	}
	d.uiAddr = freeAddr()
	if err := d.procs.start(d.dir, "ui", filepath.Join(d.o.bins, "registrar"), "ui", "--listen", d.uiAddr, "--etcd", d.endpoint); err != nil {
		return err
	}
	if err := waitFor(ctx, 15*time.Second, func() bool { return strings.Contains(readFile(d.rendered), "web-2") }); err != nil {
		return fmt.Errorf("the templater did not render %s (see %s/*.log): %w", d.rendered, d.dir, err)
	}
	if d.haproxy == "" {
		return nil
	}
	if err := d.procs.start(d.dir, "haproxy", d.haproxy, "-W", "-db", "-f", d.rendered, "-p", filepath.Join(d.dir, "haproxy.pid")); err != nil {
		return err
	}
	listening := func() bool {
		c, err := net.DialTimeout("tcp", d.lbAddr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	if err := waitFor(ctx, 10*time.Second, listening); err != nil {
		return fmt.Errorf("haproxy is not listening on %s (see %s/haproxy.log): %w", d.lbAddr, d.dir, err)
	}
	return nil
}

// printBanner tells what runs where and what to try.
func (d *demo) printBanner() {
	apps := d.apps
	fmt.Fprintf(d.out, `
rewire demo is running (working directory %s)

  etcd (embedded)   %s
  sample services   web-1 %s, web-2 %s (flaps every %s), api-1 %s, db-1 %s
                    web depends on api, api on db
  registrar         pid %d, metrics http://%s/metrics, log registrar.log
  templater         pid %d, metrics http://%s/metrics, log templater.log
  registry map      open http://%s/ in a browser (live: services, dependencies, root causes)
  rendered config   %s
`, d.dir, d.endpoint, apps[0].addr, apps[1].addr, d.o.flap, apps[2].addr, apps[3].addr,
		d.procs.pid("registrar"), d.regMetrics, d.procs.pid("templater"), d.tplMetrics, d.uiAddr, d.rendered)
	if d.haproxy != "" {
		fmt.Fprintf(d.out, "  haproxy           pid %d, try: curl http://%s/web/   (and /api/)\n", d.procs.pid("haproxy"), d.lbAddr)
	} else {
		fmt.Fprintln(d.out, "  haproxy           not installed (apt-get install haproxy): the config is rendered but not served")
	}
	fmt.Fprintf(d.out, `
Try:  export REWIRE_ETCD=%[1]s      # every registrar/templater command then uses this etcd
      bin/registrar ls
      bin/registrar graph                      (--format dot|mermaid|json, --order, --impact db)
      bin/registrar maint enable db --reason test
        then: bin/registrar why api, and the page shows db as the root cause
        (bin/registrar maint disable db to undo)
      bin/templater status -c %[2]s
      ETCDCTL_API=3 etcdctl --endpoints %[1]s get --prefix /rewire/services/
Ctrl-C stops everything.

`, d.endpoint, d.tplCfg)
}

// flap flips web-2's health every o.flap and reports when each flip
// reaches the rendered file (and haproxy), until ctx ends or a daemon
// exits.
func (d *demo) flap(ctx context.Context, web2Healthy *atomic.Bool) error {
	ticker := time.NewTicker(d.o.flap)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(d.out, "\nstopping: %s, sample services, etcd\n", strings.Join(d.procs.stopOrder(), ", "))
			return nil
		case <-d.procs.exited:
			return fmt.Errorf("a daemon exited unexpectedly; see the logs in %s", d.dir)
		case <-ticker.C:
		}
		healthy := !web2Healthy.Load()
		web2Healthy.Store(healthy)
		d.reportFlip(ctx, healthy)
	}
}

// reportFlip waits for web-2's new health to reach the rendered file and,
// when haproxy runs, its live server state, and prints how long each took.
func (d *demo) reportFlip(ctx context.Context, healthy bool) {
	t0 := time.Now()
	state := map[bool]string{true: "healthy", false: "failing"}[healthy]
	err := waitFor(ctx, 10*time.Second, func() bool { return web2Enabled(readFile(d.rendered)) == healthy })
	fileMs := time.Since(t0).Milliseconds()
	live := ""
	if err == nil && d.haproxy != "" {
		client := hap.NewClient(d.adminSock)
		inState := func() bool {
			st, err := client.ShowServersState(ctx, "web")
			if err != nil {
				return false
			}
			for _, s := range st {
				if s.Name == "web-2" {
					return s.AdminMaint() != healthy
				}
			}
			return false
		}
		if waitFor(ctx, 10*time.Second, inState) == nil {
			live = fmt.Sprintf(", haproxy serving it in %d ms", time.Since(t0).Milliseconds())
		}
	}
	switch {
	case ctx.Err() != nil:
	case err != nil:
		fmt.Fprintf(d.out, "%s  web-2 %s: NOT reflected in haproxy.cfg after 10s (see templater.log)\n", time.Now().Format("15:04:05"), state)
	default:
		fmt.Fprintf(d.out, "%s  web-2 %s → haproxy.cfg updated in %d ms%s\n", time.Now().Format("15:04:05"), state, fileMs, live)
	}
}

// web2Enabled reports whether the rendered config routes to web-2.
func web2Enabled(cfg string) bool {
	for line := range strings.SplitSeq(cfg, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "server" && f[1] == "web-2" {
			return !strings.Contains(line, " disabled")
		}
	}
	return false
}

type sampleApp struct {
	service, id string
	healthy     func() bool
	deps        string // depends_on, comma-separated
	addr        string
	l           net.Listener
	srv         *http.Server
}

func (a *sampleApp) start() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	a.l, a.addr = l, l.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.healthy() {
			http.Error(w, "failing on purpose", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s (%s), path %s\n", a.id, a.service, r.URL.Path)
	})
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return nil
}

// sampleApps are the demo's services: web (two instances, web-2's health
// from web2Healthy) depends on api, which depends on db.
func sampleApps(web2Healthy func() bool) []*sampleApp {
	return []*sampleApp{
		{service: "web", id: "web-1", healthy: func() bool { return true }, deps: "api"},
		{service: "web", id: "web-2", healthy: web2Healthy, deps: "api"},
		{service: "api", id: "api-1", healthy: func() bool { return true }, deps: "db"},
		{service: "db", id: "db-1", healthy: func() bool { return true }},
	}
}

// startApps starts serving apps. The returned stop, to call even when
// startApps fails, closes those that started and waits for them.
func startApps(apps []*sampleApp) (stop func(), err error) {
	var wg sync.WaitGroup
	stop = func() {
		for _, a := range apps {
			if a.srv != nil {
				a.srv.Close()
			}
		}
		wg.Wait()
	}
	for _, a := range apps {
		if err := a.start(); err != nil {
			return stop, err
		}
		wg.Go(func() { a.srv.Serve(a.l) })
	}
	return stop, nil
}

func registrarYAML(endpoint string, apps []*sampleApp) string {
	var b strings.Builder
	fmt.Fprintf(&b, "etcd: {endpoints: [%q], prefix: /rewire}\nnode: demo\nlease_ttl: 5s\nservices:\n", endpoint)
	for _, a := range apps {
		host, port, _ := net.SplitHostPort(a.addr)
		fmt.Fprintf(&b, "  - name: %s\n    id: %s\n    address: %s\n    port: %s\n    tags: [demo]\n", a.service, a.id, host, port)
		if a.deps != "" {
			fmt.Fprintf(&b, "    depends_on: [%s]\n", a.deps)
		}
		fmt.Fprintf(&b, "    checks:\n      - {name: http, http: \"http://%s/healthz\", interval: 250ms, timeout: 200ms}\n", a.addr)
	}
	return b.String()
}

func templaterYAML(endpoint, example, dir, haproxy string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "etcd: {endpoints: [%q], prefix: /rewire}\ntemplates:\n  - name: haproxy\n", endpoint)
	fmt.Fprintf(&b, "    source: %s\n    destination: %s\n", filepath.Join(example, "haproxy.cfg.tmpl"), filepath.Join(dir, "haproxy.cfg"))
	if haproxy != "" {
		pid := filepath.Join(dir, "haproxy.pid")
		fmt.Fprintf(&b, "    check: %q\n", haproxy+" -c -q -f {{ .Staged }}")
		// Before haproxy has started there is nothing to reload.
		fmt.Fprintf(&b, "    reload: %q\n", fmt.Sprintf("if [ -s %s ]; then kill -USR2 $(cat %s); fi", pid, pid))
		// Server changes go through the runtime API: no reload.
		fmt.Fprintf(&b, "    haproxy: {}\n")
	}
	return b.String()
}

func freeAddr() string {
	addr, err := freeport.Addr()
	if err != nil {
		panic(err)
	}
	return addr
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// waitFor polls cond until it holds, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
