// Command registrar registers a VM's service instances in etcd under a
// lease, keeps their shallow and deep health current, and answers
// operators' questions about the registry.
//
//	registrar run -c registrar.yaml
//	registrar ls [SERVICE] [--json]
//	registrar graph [--format text|json|dot|mermaid] [--order | --impact S | --service S]
//	registrar why SERVICE [--json]
//	registrar ui [--listen 127.0.0.1:9703]
//	registrar maint enable|disable SERVICE[/ID] [--reason TEXT]
//	registrar expect SERVICE N
//	registrar wait SERVICE... [--timeout D]
//	registrar check -c registrar.yaml
//	registrar completion bash|zsh
//	registrar --version
//
// See the README for the config file and key schema.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/rewire/rewire/internal/daemon"
	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdout, os.Stderr))
}

// run is main with injected arguments and streams; it returns the exit
// code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	etcdFlags := func(extra ...cli.Flag) []cli.Flag { return append(daemon.EtcdFlags("REGISTRAR"), extra...) }
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
				Description: "SIGTERM/SIGINT: mark every instance draining, wait its drain period, deregister " +
					"(a second signal skips the wait). SIGHUP or a change of the config file: reload it.",
				Flags: etcdFlags(
					&cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"REGISTRAR_CONFIG"}, Required: true, Usage: "config file (YAML)"},
					&cli.StringFlag{Name: "listen", EnvVars: []string{"REGISTRAR_LISTEN"}, Usage: "address of the local API, /healthz and /metrics (overrides the file)"},
					&cli.BoolFlag{Name: "watch-config", EnvVars: []string{"REGISTRAR_WATCH_CONFIG"}, Value: true, Usage: "reload when the config file changes"},
				),
				Action: cmdRun,
			},
			{
				Name:      "ls",
				Usage:     "list registered instances and their health",
				ArgsUsage: "[SERVICE]",
				Flags:     etcdFlags(&cli.BoolFlag{Name: "json", Usage: "print JSON"}),
				Action:    cmdLs,
			},
			{
				Name:      "graph",
				Usage:     "print the dependency graph, the start-up order, or what a service affects",
				ArgsUsage: " ",
				Flags:     etcdFlags(graphFlags()...),
				Action:    cmdGraph,
			},
			{
				Name:      "why",
				Usage:     "explain why a service is unhealthy: its root causes, and what else waits on them",
				ArgsUsage: "SERVICE",
				Flags:     etcdFlags(&cli.BoolFlag{Name: "json", Usage: "print JSON"}),
				Action:    cmdWhy,
			},
			{
				Name:      "ui",
				Usage:     "serve the registry map: a live web page of services, dependencies and root causes",
				ArgsUsage: " ",
				Flags:     etcdFlags(uiFlags()...),
				Action:    cmdUI,
			},
			{
				Name:  "maint",
				Usage: "put a service or one instance in maintenance, or take it out",
				Subcommands: []*cli.Command{
					{Name: "enable", ArgsUsage: "SERVICE[/ID]", Usage: "stop routing to it (survives registrar restarts)",
						Flags: etcdFlags(&cli.StringFlag{Name: "reason", Usage: "why, shown by ls and in records' views"},
							&cli.BoolFlag{Name: "force", Usage: "even for a service or instance nobody registered, or the last routable instance of a service"}),
						Action: cmdMaint(true)},
					{Name: "disable", ArgsUsage: "SERVICE[/ID]", Usage: "route to it again", Flags: etcdFlags(), Action: cmdMaint(false)},
				},
			},
			{
				Name:      "expect",
				Usage:     "record how many instances of a service should be reporting (0 removes it)",
				ArgsUsage: "SERVICE N",
				Flags:     etcdFlags(),
				Action:    cmdExpect,
			},
			{
				Name:      "wait",
				Usage:     "wait until every named service has a routable instance (for ExecStartPre and startup ordering)",
				ArgsUsage: "SERVICE...",
				Flags:     etcdFlags(&cli.DurationFlag{Name: "timeout", Value: 0, Usage: "give up after this long (0: wait forever)"}),
				Action:    cmdWait,
			},
			{
				Name:      "check",
				Usage:     "validate a config file without running it: exit 0 if run would accept it, 2 with every error otherwise",
				ArgsUsage: " ",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"REGISTRAR_CONFIG"}, Required: true, Usage: "config file (YAML)"}},
				Action:    cmdCheck,
			},
			daemon.CompletionCommand("registrar"),
		},
	}
	app.Version, app.EnableBashCompletion = daemon.Version(), true
	if err := app.RunContext(ctx, daemon.InterspersedArgs(app, args)); err != nil {
		if msg := err.Error(); msg != "" {
			fmt.Fprintf(stderr, "registrar: %s\n", msg)
		}
		var ec cli.ExitCoder
		if errors.As(err, &ec) && ec.ExitCode() != 0 {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}
