// Command templater watches the registry in etcd and renders HAProxy and
// application configs from it, validating each file before it replaces the
// old one and reloading what uses it.
//
//	templater run -c templater.yaml
//	templater render -c templater.yaml --once [--dry-run]
//	templater check -c templater.yaml
//	templater status [-c templater.yaml | --listen ADDR]
//	templater completion bash|zsh
//	templater --version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rewire/rewire/internal/daemon"
	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/render"
	"github.com/rewire/rewire/templater"
	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdout, os.Stderr))
}

// run is main with injected arguments and streams; it returns the exit
// code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	configFlag := &cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"TEMPLATER_CONFIG"}, Required: true, Usage: "config file (YAML)"}
	app := &cli.App{
		Name:           "templater",
		Usage:          "render configs from the rewire registry and apply them safely",
		Writer:         stdout,
		ErrWriter:      stderr,
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			{
				Name:  "run",
				Usage: "render every template now and again on each registry change, until stopped",
				Flags: append(daemon.EtcdFlags("TEMPLATER"), configFlag,
					&cli.StringFlag{Name: "listen", EnvVars: []string{"TEMPLATER_LISTEN"}, Usage: "address for /healthz and /metrics (overrides the file)"}),
				Action: cmdRun,
			},
			{
				Name:  "render",
				Usage: "render every template once from the current registry and exit",
				Flags: append(daemon.EtcdFlags("TEMPLATER"), configFlag,
					&cli.BoolFlag{Name: "once", Value: true, Usage: "render once and exit (the only mode of this command)"},
					&cli.BoolFlag{Name: "dry-run", Usage: "print what would be written; write and run nothing"}),
				Action: cmdRender,
			},
			{
				Name:  "status",
				Usage: "show what a running templater is doing: each template's revision, last change, and why it is held or failing",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "listen", EnvVars: []string{"TEMPLATER_LISTEN"}, Value: templater.DefaultListen, Usage: "the running templater's listen address"},
					&cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"TEMPLATER_CONFIG"}, Usage: "read the listen address from this config file (--listen wins)"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				},
				Action: cmdStatus,
			},
			{
				Name:   "check",
				Usage:  "validate the config file and parse every template, without connecting to etcd",
				Flags:  []cli.Flag{configFlag},
				Action: cmdCheck,
			},
			daemon.CompletionCommand("templater"),
		},
	}
	app.Version, app.EnableBashCompletion = daemon.Version(), true
	if err := app.RunContext(ctx, daemon.InterspersedArgs(app, args)); err != nil {
		if msg := err.Error(); msg != "" {
			fmt.Fprintf(stderr, "templater: %s\n", msg)
		}
		var ec cli.ExitCoder
		if errors.As(err, &ec) && ec.ExitCode() != 0 {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}

// setup loads the config, applies the flags and parses the templates.
// Metrics go to promReg (nil: not registered).
func setup(c *cli.Context, reg *registry.Config, promReg prometheus.Registerer) (templater.Config, []*render.Target, *slog.Logger, error) {
	return setupWith(c, reg, templater.NewMetrics(promReg))
}

// setupWith is setup with metrics already registered (a config reload
// reuses them).
func setupWith(c *cli.Context, reg *registry.Config, metrics templater.Metrics) (templater.Config, []*render.Target, *slog.Logger, error) {
	level := "info"
	if c.IsSet(daemon.FlagLogLevel) || c.Command.Name != "check" {
		level = c.String(daemon.FlagLogLevel)
	}
	log, err := daemon.Logger(c.App.ErrWriter, level)
	if err != nil {
		return templater.Config{}, nil, nil, err
	}
	cfg, _, err := templater.LoadConfig(c.String("config"))
	if err != nil {
		return cfg, nil, log, cli.Exit(fmt.Sprintf("invalid config:\n%v", err), 2)
	}
	if reg != nil {
		cfg.Etcd = daemon.ApplyEtcdFlags(c, cfg.Etcd)
		*reg = cfg.Etcd
	}
	targets, err := cfg.Targets(cfg.Etcd.Keys(), log, metrics)
	if err != nil {
		return cfg, nil, log, cli.Exit(fmt.Sprintf("invalid template:\n%v", err), 2)
	}
	return cfg, targets, log, nil
}

func cmdCheck(c *cli.Context) error {
	cfg, _, _, err := setup(c, nil, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s: %d templates OK\n", c.String("config"), len(cfg.Templates))
	return nil
}

func cmdRender(c *cli.Context) error {
	if !c.Bool("once") {
		return errors.New("render only renders once; use `templater run` to keep rendering")
	}
	var etcdCfg registry.Config
	_, targets, log, err := setup(c, &etcdCfg, nil)
	if err != nil {
		return err
	}
	if c.Bool("dry-run") && etcdCfg.IsEmbedded() {
		// Write nothing: an embedded etcd whose data directory does not
		// exist yet keeps its data in a temporary one.
		cleanup, err := tempEmbeddedDir(c)
		if err != nil {
			return err
		}
		defer cleanup()
	}
	conn, err := daemon.Connect(c.Context, c, etcdCfg, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	w := registry.NewWatcher(registry.WatcherOptions{Client: conn.Client, Keys: etcdCfg.Keys(), Logger: log})
	snap, err := w.Snapshot(c.Context)
	if err != nil {
		return fmt.Errorf("read registry from %s: %w", conn.Config, err)
	}
	var errs []error
	for _, t := range targets {
		if c.Bool("dry-run") {
			out, err := t.Render(snap)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(c.App.Writer, "### template %s → %s (revision %d)\n%s", t.Name(), t.Destination(), snap.Rev, out)
			continue
		}
		changed, err := t.Apply(c.Context, snap)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		state := "unchanged"
		if changed {
			state = "written"
		}
		fmt.Fprintf(c.App.Writer, "%s → %s: %s (revision %d)\n", t.Name(), t.Destination(), state, snap.Rev)
	}
	return errors.Join(errs...)
}

// statusOf returns what reports the running templater's status: the
// registry watch and each template of the engine's current config.
func statusOf(w *registry.Watcher, endpoints []string, engine *templater.Engine) func() Status {
	return func() Status {
		cur, etcdRev := w.Revisions()
		st := Status{Etcd: strings.Join(endpoints, ","), Revision: cur, EtcdRevision: etcdRev,
			StaleSeconds: w.Staleness().Seconds(), ConfigError: engine.ConfigError(), StoreChange: w.StoreChanges(), GeneratedTime: time.Now()}
		for _, t := range engine.Targets() {
			st.Templates = append(st.Templates, t.Status())
		}
		return st
	}
}

// tempEmbeddedDir points --embedded-dir at a new temporary directory
// unless the one named exists, and returns what removes it.
func tempEmbeddedDir(c *cli.Context) (cleanup func(), err error) {
	if _, err := os.Stat(c.String(daemon.FlagEmbeddedDir)); err == nil {
		return func() {}, nil
	}
	dir, err := os.MkdirTemp("", "templater-dry-run-etcd")
	if err != nil {
		return nil, err
	}
	if err := c.Set(daemon.FlagEmbeddedDir, dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return func() { os.RemoveAll(dir) }, nil
}

func cmdRun(c *cli.Context) error {
	var etcdCfg registry.Config
	reg := daemon.NewRegistry()
	metrics := templater.NewMetrics(reg)
	cfg, targets, log, err := setupWith(c, &etcdCfg, metrics)
	if err != nil {
		return err
	}
	if c.IsSet("listen") {
		cfg.Listen = c.String("listen")
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	conn, err := daemon.Connect(ctx, c, etcdCfg, log)
	if err != nil {
		return err
	}
	defer conn.Close()

	w := registry.NewWatcher(registry.WatcherOptions{Client: conn.Client, Keys: etcdCfg.Keys(), Logger: log, Registerer: reg,
		// A full read of a large registry briefly needs several times the
		// memory the index keeps: hand it back to the OS at once rather than
		// over minutes, so RSS reflects the steady state.
		AfterSync: debug.FreeOSMemory})
	// A reload re-reads the file; etcd and listen stay as started.
	load := func() (templater.Loaded, error) {
		next, nextTargets, _, err := setupWith(c, &etcdCfg, metrics)
		if err != nil {
			return templater.Loaded{}, err
		}
		if c.IsSet("listen") {
			next.Listen = c.String("listen")
		}
		if next.Listen != cfg.Listen || !reflect.DeepEqual(next.Etcd, cfg.Etcd) {
			log.Warn("etcd and listen changes take effect only after a restart")
		}
		return templater.Loaded{Wait: next.Wait, Targets: nextTargets}, nil
	}
	engine := templater.New(templater.Options{Source: w, ConfigPath: c.String("config"), Load: load, Logger: log},
		templater.Loaded{Wait: cfg.Wait, Targets: targets})
	status := statusOf(w, conn.Config.Endpoints, engine)
	reg.MustRegister(newLagCollector(status))
	mux := http.NewServeMux()
	serveStatus(mux, status)
	mux.Handle("GET /healthz", daemon.Healthz(w.Denied)) // fails while etcd refuses the read
	addr, serve, err := daemon.Serve(ctx, cfg.Listen, mux, reg, log)
	if err != nil {
		return err
	}
	log.Info("templater started", "etcd", conn.Config.String(), "templates", len(targets), "listen", addr.String())

	var wg sync.WaitGroup
	var httpErr error
	wg.Go(func() { w.Run(ctx) })
	wg.Go(func() { httpErr = serve() })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				engine.Reload()
			}
		}
	})
	engine.Run(ctx)
	wg.Wait()
	log.Info("templater stopped")
	return httpErr
}
