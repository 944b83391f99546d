package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rewire/rewire/internal/daemon"
	"github.com/rewire/rewire/registrar"
	"github.com/urfave/cli/v2"
)

func cmdRun(c *cli.Context) error {
	log, err := daemon.Logger(c.App.ErrWriter, c.String(daemon.FlagLogLevel))
	if err != nil {
		return err
	}
	path := c.String("config")
	load := func() (registrar.Config, error) { return loadRunConfig(c, path) }
	cfg, err := load()
	if err != nil {
		return cli.Exit(fmt.Sprintf("invalid config:\n%v", err), 2)
	}

	// The first SIGINT/SIGTERM starts the drain; a second one cuts it
	// short; either way Run then deregisters by revoking the lease.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	runCtx, stopRun := context.WithCancel(c.Context)
	defer stopRun()

	conn, err := daemon.Connect(runCtx, c, cfg.Etcd, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	reg := daemon.NewRegistry()
	a := registrar.New(cfg, registrar.Options{Client: conn.Client, Logger: log, Registerer: reg})
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(c.Context))
	defer stopHTTP()
	addr, serve, err := serveAPI(httpCtx, cfg, a, reg, log)
	if err != nil {
		return err
	}
	log.Info("registrar started", "etcd", conn.Config.String(), "instances", len(cfg.Services), "listen", addr.String(), "config", path)

	var wg sync.WaitGroup
	var httpErr error
	wg.Go(func() { httpErr = serve() })
	agentDone := make(chan struct{})
	go func() {
		defer close(agentDone)
		a.Run(runCtx)
	}()
	reloads := make(chan struct{}, 1)
	if c.Bool("watch-config") {
		wg.Go(func() { watchConfig(runCtx, path, reloads, log) })
	}
	s := supervisor{a: a, log: log, path: path, load: load, stopRun: stopRun}
	s.run(runCtx, agentDone, reloads, sigs)
	stopHTTP()
	wg.Wait()
	if errors.Is(httpErr, context.Canceled) {
		httpErr = nil
	}
	log.Info("registrar stopped")
	return httpErr
}

// loadRunConfig reads the config file at path and lays the etcd and
// --listen flags over it, as run does at start and on every reload.
func loadRunConfig(c *cli.Context, path string) (registrar.Config, error) {
	cfg, err := registrar.LoadConfig(path)
	if err != nil {
		return cfg, err
	}
	cfg.Etcd = daemon.ApplyEtcdFlags(c, cfg.Etcd)
	if c.IsSet("listen") {
		cfg.Listen = c.String("listen")
		if err := cfg.CheckListen(); err != nil {
			return cfg, fmt.Errorf("--listen: %w", err)
		}
	}
	return cfg, nil
}

// serveAPI listens for the agent's HTTP API (records, /healthz, /metrics)
// on cfg.Listen and, when the config asks for it, on the local API's unix
// socket. The returned serve runs both until ctx ends and joins their
// errors.
func serveAPI(ctx context.Context, cfg registrar.Config, a *registrar.Agent, reg *prometheus.Registry, log *slog.Logger) (net.Addr, func() error, error) {
	mux := http.NewServeMux()
	a.Register(mux)
	mux.Handle("GET /healthz", daemon.Healthz(a.Healthy))
	addr, serve, err := daemon.Serve(ctx, cfg.Listen, mux, reg, log)
	if err != nil {
		return nil, nil, err
	}
	serveSocket := func() error { return nil }
	if so := cfg.Socket(); so != nil {
		l, err := registrar.ListenSocket(*so)
		if err != nil {
			return nil, nil, err
		}
		serveSocket = registrar.ServeSocket(ctx, l, mux, log)
		log.Info("local API on a unix socket", "path", so.Path, "mode", so.Mode.String())
	}
	return addr, func() error { return errors.Join(serve(), serveSocket()) }, nil
}

// watchConfig asks for a reload on reloads (without blocking: one pending
// request is enough) each time the config file changes, until ctx ends.
func watchConfig(ctx context.Context, path string, reloads chan<- struct{}, log *slog.Logger) {
	err := daemon.WatchFiles(ctx, []string{path}, 200*time.Millisecond, func() {
		select {
		case reloads <- struct{}{}:
		default:
		}
	})
	if err != nil {
		log.Warn("not watching the config file; use SIGHUP to reload", "path", path, "err", err)
	}
}

// supervisor turns signals and config changes into the agent's reloads,
// drain and shutdown while it runs.
type supervisor struct {
	a       *registrar.Agent
	log     *slog.Logger
	path    string
	load    func() (registrar.Config, error)
	stopRun context.CancelFunc // ends the agent's Run
}

// run reacts to reloads and sigs until the agent's Run returns
// (agentDone), then ends the run context and waits for a drain in
// progress. SIGHUP reloads; the first SIGINT/SIGTERM drains, then stops
// the agent; a second one skips what is left of the drain.
func (s *supervisor) run(ctx context.Context, agentDone, reloads <-chan struct{}, sigs <-chan os.Signal) {
	drainCtx, skipDrain := context.WithCancel(ctx)
	defer skipDrain()
	var drainDone chan struct{} // nil until the first stop signal
	for {
		select {
		case <-agentDone:
			s.stopRun()
			if drainDone != nil {
				<-drainDone
			}
			return
		case <-reloads:
			s.reload(ctx, "file changed")
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				s.reload(ctx, "SIGHUP")
			case drainDone == nil:
				s.log.Info("shutting down: draining, then deregistering (signal again to skip the drain)", "signal", sig.String())
				done := make(chan struct{})
				drainDone = done
				go func() {
					defer close(done)
					s.a.Drain(drainCtx)
					s.stopRun()
				}()
			default:
				s.log.Info("second signal: deregistering now", "signal", sig.String())
				skipDrain()
				s.stopRun()
			}
		}
	}
}

// reload loads the config again and hands it to the agent; a config that
// does not load is rejected and the running one stays.
func (s *supervisor) reload(ctx context.Context, why string) {
	next, err := s.load()
	if err != nil {
		s.a.RejectReload()
		s.log.Error("config reload rejected; the running config stays", "path", s.path, "trigger", why, "err", err)
		return
	}
	if err := s.a.Reload(ctx, next); err == nil {
		s.log.Info("config reloaded", "path", s.path, "trigger", why, "instances", len(next.Services))
	}
}

// cmdCheck validates a config file the way run loads it, without
// connecting to etcd or starting anything.
func cmdCheck(c *cli.Context) error {
	path := c.String("config")
	cfg, err := registrar.LoadConfig(path)
	if err != nil {
		return cli.Exit(fmt.Sprintf("invalid config:\n%v", err), 2)
	}
	checks := 0
	for _, s := range cfg.Services {
		checks += len(s.Checks)
	}
	fmt.Fprintf(c.App.Writer, "%s: %d services, %d checks OK\n", path, len(cfg.Services), checks)
	return nil
}
