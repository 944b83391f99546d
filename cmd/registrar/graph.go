package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/rewire/rewire/graph"
	"github.com/rewire/rewire/internal/daemon"
	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/registry/schema"
	"github.com/urfave/cli/v2"
)

// graphFlags are the flags of `registrar graph`.
func graphFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "format", Value: "text", Usage: "text, json, dot (Graphviz) or mermaid"},
		&cli.BoolFlag{Name: "order", Usage: "print the start-up order, dependencies first (fails naming the cycle if there is one)"},
		&cli.StringFlag{Name: "impact", Usage: "print everything that depends on `SERVICE`, directly or not"},
		&cli.StringFlag{Name: "service", Usage: "print only `SERVICE`, what it depends on and what depends on it"},
	}
}

// readGraph reads the registry once and builds its graph.
func readGraph(c *cli.Context) (*graph.Graph, error) {
	conn, keys, err := connect(c)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	log, _ := daemon.Logger(c.App.ErrWriter, c.String(daemon.FlagLogLevel))
	w := registry.NewWatcher(registry.WatcherOptions{Client: conn.Client, Keys: keys, Logger: log})
	snap, err := w.Snapshot(c.Context)
	if err != nil {
		return nil, fmt.Errorf("read registry from %s: %w", conn.Config, err)
	}
	return graph.Build(snap), nil
}

// serviceArg validates a service name given to flag.
func serviceArg(flag, name string) error {
	if err := schema.ValidateName(name); err != nil {
		return fmt.Errorf("--%s: %w", flag, err)
	}
	return nil
}

func cmdGraph(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("graph takes no arguments, got %q (use --service or --impact)", c.Args().Slice())
	}
	format := c.String("format")
	if !strings.Contains(" text json dot mermaid ", " "+format+" ") {
		return fmt.Errorf("--format %q: want text, json, dot or mermaid", format)
	}
	modes := 0
	for _, f := range []string{"order", "impact", "service"} {
		if c.IsSet(f) {
			modes++
		}
	}
	if modes > 1 {
		return errors.New("--order, --impact and --service are alternatives: pass one")
	}
	for _, f := range []string{"impact", "service"} {
		if c.IsSet(f) {
			if err := serviceArg(f, c.String(f)); err != nil {
				return err
			}
		}
	}
	if c.Bool("order") && (format == "dot" || format == "mermaid") {
		return fmt.Errorf("--order prints a list: use --format text or json, not %s", format)
	}
	g, err := readGraph(c)
	if err != nil {
		return err
	}
	out := c.App.Writer
	switch {
	case c.Bool("order"):
		return printOrder(out, g, format)
	case c.IsSet("impact"):
		return printImpact(out, g, c.String("impact"), format)
	case c.IsSet("service"):
		sub, err := g.Neighbourhood(c.String("service"))
		if err != nil {
			return err
		}
		g = sub
	}
	return writeGraph(out, g, format)
}

func writeGraph(w io.Writer, g *graph.Graph, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(g)
	case "dot":
		return g.WriteDOT(w)
	case "mermaid":
		return g.WriteMermaid(w)
	}
	if len(g.Nodes) == 0 {
		_, err := fmt.Fprintln(w, "no services registered")
		return err
	}
	return g.WriteText(w)
}

func printOrder(w io.Writer, g *graph.Graph, format string) error {
	stages, err := g.Order()
	if err != nil {
		return err
	}
	if format == "json" {
		return json.NewEncoder(w).Encode(map[string]any{"order": stages})
	}
	fmt.Fprintln(w, "start-up order, dependencies first (services of one step may start together):")
	for i, s := range stages {
		var names []string
		for _, n := range s {
			if g.Node(n).Missing {
				n += " (missing)"
			}
			names = append(names, n)
		}
		fmt.Fprintf(w, "%3d. %s\n", i+1, strings.Join(names, ", "))
	}
	return nil
}

func printImpact(w io.Writer, g *graph.Graph, service, format string) error {
	impact, err := g.Impact(service)
	if err != nil {
		return err
	}
	switch format {
	case "json":
		return json.NewEncoder(w).Encode(map[string]any{"service": service, "impact": impact})
	case "dot", "mermaid":
		return writeGraph(w, g.Select(append(impact, service)...), format)
	}
	if len(impact) == 0 {
		_, err := fmt.Fprintf(w, "nothing depends on %s\n", service)
		return err
	}
	what := fmt.Sprintf("%d services depend", len(impact))
	if len(impact) == 1 {
		what = "1 service depends"
	}
	fmt.Fprintf(w, "%s on %s, directly or through others:\n", what, service)
	for _, n := range impact {
		fmt.Fprintf(w, "  %s\n", n)
	}
	return nil
}
