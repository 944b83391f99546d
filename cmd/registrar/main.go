// Command registrar registers a VM's service instances in etcd under a
// lease, keeps their health current, and answers operators' questions
// about the registry.
//
//	registrar run -c registrar.yaml
//	registrar ls [SERVICE] [--json]
//
// See DESIGN.md for the config file and key schema.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/rewire/rewire/internal/daemon"
	"github.com/rewire/rewire/registry"
	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdout, os.Stderr))
}

// run is main with injected arguments and streams; it returns the exit
// code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := &cli.App{
		Name:           "registrar",
		Usage:          "register service instances in etcd and keep their health current",
		Writer:         stdout,
		ErrWriter:      stderr,
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			{
				Name:      "run",
				Usage:     "register the configured services and run their checks until stopped",
				ArgsUsage: " ",
				Flags: append(daemon.EtcdFlags("REGISTRAR"),
					&cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"REGISTRAR_CONFIG"}, Required: true, Usage: "config file (YAML)"},
					&cli.StringFlag{Name: "listen", EnvVars: []string{"REGISTRAR_LISTEN"}, Usage: "address for /healthz and /metrics (overrides the file)"},
				),
				Action: cmdRun,
			},
			{
				Name:      "ls",
				Usage:     "list registered instances and their health",
				ArgsUsage: "[SERVICE]",
				Flags: append(daemon.EtcdFlags("REGISTRAR"),
					&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				),
				Action: cmdLs,
			},
		},
	}
	if err := app.RunContext(ctx, args); err != nil {
		fmt.Fprintf(stderr, "registrar: %v\n", err)
		var ec cli.ExitCoder
		if errors.As(err, &ec) && ec.ExitCode() != 0 {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}

func cmdRun(c *cli.Context) error {
	log, err := daemon.Logger(c.App.ErrWriter, c.String(daemon.FlagLogLevel))
	if err != nil {
		return err
	}
	cfg, _, err := loadConfig(c.String("config"))
	if err != nil {
		return cli.Exit(fmt.Sprintf("invalid config:\n%v", err), 2)
	}
	cfg.Etcd = daemon.ApplyEtcdFlags(c, cfg.Etcd)
	if c.IsSet("listen") {
		cfg.Listen = c.String("listen")
	}

	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	conn, err := daemon.Connect(ctx, c, cfg.Etcd, log)
	if err != nil {
		return err
	}
	defer conn.Close()

	reg := daemon.NewRegistry()
	r := registry.NewRegistrar(registry.RegistrarOptions{
		Client: conn.Client, Keys: cfg.Etcd.Keys(), TTL: cfg.LeaseTTL, Logger: log, Registerer: reg,
	})
	addr, serve, err := daemon.Serve(ctx, cfg.Listen, http.NewServeMux(), reg, log)
	if err != nil {
		return err
	}
	log.Info("registrar started", "etcd", conn.Config.String(), "services", len(cfg.Services), "listen", addr.String())

	// Checks stop first; the Registrar then revokes the lease (which
	// deregisters everything at once) before the client closes.
	checksCtx, stopChecks := context.WithCancel(ctx)
	var checks sync.WaitGroup
	for _, s := range cfg.Services {
		in := newInstance(s, cfg.Node, r, log)
		checks.Go(func() { in.run(checksCtx) })
	}
	regDone := make(chan error, 1)
	go func() { regDone <- r.Run(ctx) }()
	var httpErr error
	var httpWG sync.WaitGroup
	httpWG.Go(func() { httpErr = serve() })

	<-ctx.Done()
	log.Info("shutting down: deregistering")
	stopChecks()
	checks.Wait()
	err = <-regDone
	httpWG.Wait()
	return errors.Join(err, httpErr)
}
