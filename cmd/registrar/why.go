package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/rewire/rewire/graph"
	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/registry/schema"
	"github.com/urfave/cli/v2"
)

func cmdWhy(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("why takes one SERVICE, got %d arguments", c.NArg())
	}
	name := c.Args().First()
	if err := schema.ValidateName(name); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	g, err := readGraph(c)
	if err != nil {
		return err
	}
	d, err := g.Why(name)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	printDiagnosis(c.App.Writer, g, d)
	return nil
}

// maxListed bounds the names printed in one line of text output.
const maxListed = 12

func list(names []string) string {
	if len(names) <= maxListed {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:maxListed], ", "), len(names)-maxListed)
}

func printDiagnosis(w io.Writer, g *graph.Graph, d graph.Diagnosis) {
	fmt.Fprintln(w, d.Summary)
	for _, r := range d.Roots {
		fmt.Fprintf(w, "\nroot cause: %s: %s\n", r.Service, r.Reason)
		fmt.Fprintf(w, "  chain:    %s\n", strings.Join(r.Chain, " → "))
		if r.Cycle != nil {
			fmt.Fprintf(w, "  cycle:    %s\n", graph.FormatCycle(r.Cycle))
		}
		for _, c := range r.Checks {
			fmt.Fprintf(w, "  failing:  %s %s (%s) %s: %s\n", c.Instance, c.Check, c.Kind, c.Status, c.Output)
		}
		if n := len(r.Waiting); n > 0 {
			what := fmt.Sprintf("%d services wait", n)
			if n == 1 {
				what = "1 service waits"
			}
			fmt.Fprintf(w, "  waiting:  %s on %s: %s\n", what, r.Service, list(r.Waiting))
		}
	}
	// The rest of the registry's trouble, grouped by what it waits on.
	var others []string
	for _, c := range g.Roots() {
		if !containsRoot(d.Roots, c.Service) {
			others = append(others, c.Grouping())
		}
	}
	if len(others) > 0 {
		fmt.Fprintln(w, "\nelsewhere in the registry:")
		for _, o := range others {
			fmt.Fprintf(w, "  %s\n", o)
		}
	}
}

func containsRoot(roots []graph.Cause, service string) bool {
	for _, r := range roots {
		if r.Service == service {
			return true
		}
	}
	return false
}

// waitsOn says, for a deep-critical instance, which of its dependencies
// it waits on and the root cause behind each: "waits on api (root cause:
// db)". A dependency is waited on when it has no routable instance: what
// the instance's own dependency check sees. Empty when the instance is
// not deep-critical or no dependency is down (its own checks fail).
func waitsOn(g *graph.Graph, in schema.Instance) string {
	if in.Health.Deep != health.Critical {
		return ""
	}
	var parts []string
	for _, dep := range in.DependsOn {
		n := g.Node(dep)
		if n == nil || n.Status != health.Critical {
			continue
		}
		if n.Root {
			parts = append(parts, dep)
			continue
		}
		d, _ := g.Why(dep)
		var roots []string
		for _, r := range d.Roots {
			roots = append(roots, r.Service)
		}
		parts = append(parts, fmt.Sprintf("%s (root cause: %s)", dep, strings.Join(roots, ", ")))
	}
	if len(parts) == 0 {
		return ""
	}
	return "waits on " + strings.Join(parts, ", ")
}
