package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

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
	load := func() (registrar.Config, error) {
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
	mux := http.NewServeMux()
	a.Register(mux)
	mux.Handle("GET /healthz", daemon.Healthz(a.Healthy))
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(c.Context))
	defer stopHTTP()
	addr, serve, err := daemon.Serve(httpCtx, cfg.Listen, mux, reg, log)
	if err != nil {
		return err
	}
	serveSocket := func() error { return nil }
	if so := cfg.Socket(); so != nil {
		l, err := registrar.ListenSocket(*so)
		if err != nil {
			return err
		}
		serveSocket = registrar.ServeSocket(httpCtx, l, mux, log)
		log.Info("local API on a unix socket", "path", so.Path, "mode", so.Mode.String())
	}
	log.Info("registrar started", "etcd", conn.Config.String(), "instances", len(cfg.Services), "listen", addr.String(), "config", path)

	var wg sync.WaitGroup
	var httpErr error
	wg.Go(func() { httpErr = errors.Join(serve(), serveSocket()) })
	agentDone := make(chan struct{})
	go func() {
		defer close(agentDone)
		a.Run(runCtx)
	}()
	reload := func(why string) {
		next, err := load()
		if err != nil {
			a.RejectReload()
			log.Error("config reload rejected; the running config stays", "path", path, "trigger", why, "err", err)
			return
		}
		if err := a.Reload(runCtx, next); err == nil {
			log.Info("config reloaded", "path", path, "trigger", why, "instances", len(next.Services))
		}
	}
	reloads := make(chan struct{}, 1)
	if c.Bool("watch-config") {
		wg.Go(func() {
			err := daemon.WatchFiles(runCtx, []string{path}, 200*time.Millisecond, func() {
				select {
				case reloads <- struct{}{}:
				default:
				}
			})
			if err != nil {
				log.Warn("not watching the config file; use SIGHUP to reload", "path", path, "err", err)
			}
		})
	}

	drainCtx, skipDrain := context.WithCancel(runCtx)
	defer skipDrain()
	draining := false
	drainDone := make(chan struct{})
loop:
	for {
		select {
		case <-agentDone:
			break loop
		case <-reloads:
			reload("file changed")
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				reload("SIGHUP")
			case !draining:
				draining = true
				log.Info("shutting down: draining, then deregistering (signal again to skip the drain)", "signal", sig.String())
				go func() {
					defer close(drainDone)
					a.Drain(drainCtx)
					stopRun()
				}()
			default:
				log.Info("second signal: deregistering now", "signal", sig.String())
				skipDrain()
				stopRun()
			}
		}
	}
	stopRun()
	if draining {
		<-drainDone
	}
	stopHTTP()
	wg.Wait()
	if errors.Is(httpErr, context.Canceled) {
		httpErr = nil
	}
	log.Info("registrar stopped")
	return httpErr
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
