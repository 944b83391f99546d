package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/rewire/rewire/internal/daemon"
	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/registry/schema"
	"github.com/urfave/cli/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// lsInstance is one row of `ls --json`: the record plus the derived
// maintenance flag and the entry behind it (the instance's own, else its
// service's).
type lsInstance struct {
	schema.Instance
	Maintenance      bool                `json:"maintenance"`
	MaintenanceEntry *schema.Maintenance `json:"maintenance_entry,omitempty"`
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
	maint, err := maintenanceEntries(c.Context, conn.Client, keys, snap.Rev)
	if err != nil {
		return err
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
				list = append(list, lsInstance{Instance: in, Maintenance: in.Maintenance, MaintenanceEntry: maint.of(n, in.ID)})
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
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tID\tADDRESS\tSHALLOW\tDEEP\tNODE\tNOTES")
	for _, n := range names {
		sv := snap.Service(n)
		for _, in := range sv.Instances {
			var notes []string
			if in.Maintenance {
				notes = append(notes, maint.note(n, in.ID))
			}
			if in.Draining {
				notes = append(notes, "draining")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n, in.ID,
				net.JoinHostPort(in.Address, strconv.Itoa(in.Port)), in.Health.Shallow, in.Health.Deep, in.Node, strings.Join(notes, ","))
		}
		if len(sv.Instances) == 0 || sv.Expect > 0 || sv.Maintenance != nil {
			// In the NOTES column: a line with fewer cells would end
			// tabwriter's columns and misalign the rows after it.
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t%s\n", n, summary(sv))
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
		parts = append(parts, fmt.Sprintf("(service in maintenance %s)", describeMaint(*sv.Maintenance)))
	}
	return strings.Join(parts, " ")
}

// maintEntries are the maintenance entries, by service and instance id
// ("" for a whole service).
type maintEntries map[[2]string]schema.Maintenance

// maintenanceEntries reads every maintenance entry at revision rev (the
// snapshot's): the snapshot keeps only whether an instance is in
// maintenance, not why.
func maintenanceEntries(ctx context.Context, cli *clientv3.Client, keys schema.Keys, rev int64) (maintEntries, error) {
	prefix := keys.Maintenance("", "")
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", prefix, err)
	}
	out := maintEntries{}
	for _, kv := range resp.Kvs {
		kind, service, id, err := keys.Parse(string(kv.Key))
		if err != nil || kind != schema.KindMaintenance {
			continue // the snapshot skipped it too
		}
		var m schema.Maintenance
		if json.Unmarshal(kv.Value, &m) != nil {
			m = schema.Maintenance{Reason: "(unparsable maintenance value)"}
		}
		out[[2]string{service, id}] = m
	}
	return out, nil
}

// of returns the entry that puts an instance in maintenance: its own, else
// its service's; nil if none.
func (e maintEntries) of(service, id string) *schema.Maintenance {
	for _, k := range [][2]string{{service, id}, {service, ""}} {
		if m, ok := e[k]; ok {
			return &m
		}
	}
	return nil
}

// note is the NOTES text of an instance in maintenance.
func (e maintEntries) note(service, id string) string {
	if m, ok := e[[2]string{service, id}]; ok {
		return "maintenance " + describeMaint(m)
	}
	return "maintenance (whole service)"
}
