package main

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/rewire/rewire/graph"
	"github.com/rewire/rewire/internal/daemon"
	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/registry/schema"
	"github.com/urfave/cli/v2"
)

// lsInstance is one row of `ls --json`: the record plus the derived
// maintenance flag.
type lsInstance struct {
	schema.Instance
	Maintenance bool `json:"maintenance"`
}

func cmdLs(c *cli.Context) error {
	if c.NArg() > 1 {
		return fmt.Errorf("ls takes at most one SERVICE, got %d arguments", c.NArg())
	}
	conn, keys, err := connect(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	cfg := conn.Config
	log, _ := daemon.Logger(c.App.ErrWriter, c.String(daemon.FlagLogLevel))
	w := registry.NewWatcher(registry.WatcherOptions{Client: conn.Client, Keys: keys, Logger: log})
	snap, err := w.Snapshot(c.Context)
	if err != nil {
		return fmt.Errorf("read registry from %s: %w", cfg, err)
	}
	names := snap.ServiceNames()
	if want := c.Args().First(); want != "" {
		if err := schema.ValidateName(want); err != nil {
			return fmt.Errorf("service: %w", err)
		}
		if !slices.Contains(names, want) {
			return fmt.Errorf("service %q is not registered (registered: %s)", want, strings.Join(names, ", "))
		}
		names = []string{want}
	}
	out := c.App.Writer
	if c.Bool("json") {
		list := []lsInstance{}
		for _, n := range names {
			for _, in := range snap.Service(n).Instances {
				list = append(list, lsInstance{in, in.Maintenance})
			}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	if len(names) == 0 {
		fmt.Fprintf(out, "no services registered under %s\n", keys.Root())
		return nil
	}
	g := graph.Build(snap)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tID\tADDRESS\tSHALLOW\tDEEP\tNODE\tNOTES")
	for _, n := range names {
		sv := snap.Service(n)
		for _, in := range sv.Instances {
			var notes []string
			if in.Maintenance {
				notes = append(notes, "maintenance")
			}
			if in.Draining {
				notes = append(notes, "draining")
			}
			if w := waitsOn(g, in); w != "" {
				notes = append(notes, w)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n, in.ID,
				net.JoinHostPort(in.Address, strconv.Itoa(in.Port)), in.Health.Shallow, in.Health.Deep, in.Node, strings.Join(notes, ","))
		}
		if len(sv.Instances) == 0 || sv.Expect > 0 || sv.Maintenance != nil {
			fmt.Fprintf(tw, "%s\t%s\n", n, summary(sv))
		}
	}
	return tw.Flush()
}

// summary is the per-service line: "2 of 3 reporting", maintenance.
func summary(sv *schema.Service) string {
	var parts []string
	if sv.Expect > 0 {
		parts = append(parts, fmt.Sprintf("(%d of %d reporting)", len(sv.Instances), sv.Expect))
	} else if len(sv.Instances) == 0 {
		parts = append(parts, "(no instances)")
	}
	if sv.Maintenance != nil {
		parts = append(parts, fmt.Sprintf("(service in maintenance: %s)", sv.Maintenance.Reason))
	}
	return strings.Join(parts, " ")
}
