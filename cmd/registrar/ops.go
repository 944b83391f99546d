package main

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rewire/rewire/internal/daemon"
	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/registry/schema"
	"github.com/urfave/cli/v2"
)

// connect opens a connection for a query command; they need a running
// etcd, not an embedded one.
func connect(c *cli.Context) (*daemon.Conn, schema.Keys, error) {
	log, err := daemon.Logger(c.App.ErrWriter, c.String(daemon.FlagLogLevel))
	if err != nil {
		return nil, schema.Keys{}, err
	}
	cfg := daemon.ApplyEtcdFlags(c, registry.Config{})
	if cfg.IsEmbedded() {
		return nil, schema.Keys{}, fmt.Errorf("%s needs a running etcd: pass --etcd with its address, not %q", c.Command.Name, registry.Embedded)
	}
	conn, err := daemon.Connect(c.Context, c, cfg, log)
	if err != nil {
		return nil, schema.Keys{}, err
	}
	return conn, cfg.Keys(), nil
}

func cmdMaint(enable bool) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() != 1 {
			return fmt.Errorf("want exactly one SERVICE or SERVICE/ID, got %d arguments", c.NArg())
		}
		service, id, _ := strings.Cut(c.Args().First(), "/")
		conn, keys, err := connect(c)
		if err != nil {
			return err
		}
		defer conn.Close()
		target := service
		if id != "" {
			target += "/" + id
		}
		if !enable {
			had, err := registry.ClearMaintenance(c.Context, conn.Client, keys, service, id)
			if err != nil {
				return err
			}
			if !had {
				fmt.Fprintf(c.App.Writer, "%s was not in maintenance\n", target)
				return nil
			}
			fmt.Fprintf(c.App.Writer, "%s: maintenance off\n", target)
			return nil
		}
		if err := validTarget(service, id); err != nil {
			return err
		}
		w := registry.NewWatcher(registry.WatcherOptions{Client: conn.Client, Keys: keys})
		snap, err := w.Snapshot(c.Context)
		if err != nil {
			return fmt.Errorf("read registry from %s: %w", conn.Config, err)
		}
		warning, err := maintImpact(snap, service, id, c.Bool("force"))
		if err != nil {
			return err
		}
		m := schema.Maintenance{Reason: c.String("reason"), By: operator(), Since: time.Now().UTC().Truncate(time.Second)}
		if err := registry.SetMaintenance(c.Context, conn.Client, keys, service, id, m); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "%s: maintenance on (%s)\n", target, describeMaint(m))
		if warning != "" {
			fmt.Fprintf(c.App.ErrWriter, "warning: %s\n", warning)
		}
		return nil
	}
}

func validTarget(service, id string) error {
	if err := schema.ValidateName(service); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if id != "" {
		if err := schema.ValidateName(id); err != nil {
			return fmt.Errorf("instance id: %w", err)
		}
	}
	return nil
}

// maintImpact checks what putting service (or its instance id) in
// maintenance would do. A target nobody registered is most likely a typo,
// and taking the last routable instance of a service out fails all of its
// traffic: both are errors unless force is set. Taking a whole service out
// is what the operator asked for, so it only warns.
func maintImpact(snap *schema.Snapshot, service, id string, force bool) (warning string, err error) {
	sv := snap.Service(service)
	var ids []string
	if sv != nil {
		for _, in := range sv.Instances {
			ids = append(ids, in.ID)
		}
	}
	const hint = "; pass --force to do it anyway"
	switch {
	case len(ids) == 0 && !force:
		return "", fmt.Errorf("service %q has no registered instance (registered: %s)%s (e.g. ahead of its registration)",
			service, orNone(snap.ServiceNames()), hint)
	case id != "" && len(ids) > 0 && !slices.Contains(ids, id) && !force:
		return "", fmt.Errorf("%s has no instance %q (instances: %s)%s", service, id, strings.Join(ids, ", "), hint)
	}
	var before, after int
	for _, in := range sv.Routable() {
		before++
		if id != "" && in.ID != id {
			after++
		}
	}
	switch {
	case before == 0 || after > 0:
		return "", nil
	case id == "":
		return fmt.Sprintf("%s now has no routable instance: its traffic fails until `registrar maint disable %s`", service, service), nil
	case !force:
		return "", fmt.Errorf("%s/%s is the last routable instance of %s: in maintenance, %s has none and its traffic fails%s",
			service, id, service, service, hint)
	}
	return fmt.Sprintf("%s now has no routable instance: its traffic fails until `registrar maint disable %s/%s`", service, service, id), nil
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// describeMaint is "by user@host: reason", without a dangling colon when
// no reason was given.
func describeMaint(m schema.Maintenance) string {
	s := "by " + m.By
	if m.By == "" {
		s = "by an unknown operator"
	}
	if m.Reason != "" {
		s += ": " + m.Reason
	}
	return s
}

// operator names who ran the command: user@host.
func operator() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

func cmdExpect(c *cli.Context) error {
	if c.NArg() != 2 {
		return fmt.Errorf("want SERVICE N, got %d arguments", c.NArg())
	}
	n, err := strconv.Atoi(c.Args().Get(1))
	switch {
	case err != nil:
		return fmt.Errorf("count %q is not a number of instances (0 removes the expectation)", c.Args().Get(1))
	case n < 0:
		return fmt.Errorf("count must be ≥ 0, got %d (0 removes the expectation)", n)
	}
	conn, keys, err := connect(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := registry.SetExpect(c.Context, conn.Client, keys, c.Args().First(), n); err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintf(c.App.Writer, "%s: no expected count\n", c.Args().First())
	} else {
		fmt.Fprintf(c.App.Writer, "%s: %d instances expected\n", c.Args().First(), n)
	}
	return nil
}

func cmdWait(c *cli.Context) error {
	services := c.Args().Slice()
	if len(services) == 0 {
		return fmt.Errorf("name at least one SERVICE to wait for")
	}
	for _, s := range services {
		if err := schema.ValidateName(s); err != nil {
			return fmt.Errorf("service: %w", err)
		}
	}
	conn, keys, err := connect(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx := c.Context
	if d := c.Duration("timeout"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	w := registry.NewWatcher(registry.WatcherOptions{Client: conn.Client, Keys: keys})
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(wctx)
	}()
	defer func() { stop(); <-done }()
	var missing []string
	said := ""
	for {
		if snap := w.Current(); snap != nil {
			missing = missing[:0]
			for _, s := range services {
				if why := notRoutable(snap, s); why != "" {
					missing = append(missing, why)
				}
			}
			if len(missing) == 0 {
				fmt.Fprintf(c.App.Writer, "ready: %s\n", strings.Join(services, ", "))
				return nil
			}
			// Say what it waits for, again each time that changes.
			if now := strings.Join(missing, "; "); now != said {
				fmt.Fprintf(c.App.Writer, "waiting for: %s\n", now)
				said = now
			}
		}
		select {
		case <-ctx.Done():
			if len(missing) == 0 {
				return cli.Exit(fmt.Sprintf("timed out after %s: could not read the registry from %s", c.Duration("timeout"), strings.Join(conn.Config.Endpoints, ",")), 3)
			}
			return cli.Exit(fmt.Sprintf("timed out after %s waiting for: %s", c.Duration("timeout"), strings.Join(missing, "; ")), 3)
		case <-w.Updates():
		}
	}
}

// notRoutable says why service has no routable instance, or "".
func notRoutable(snap *schema.Snapshot, service string) string {
	sv := snap.Service(service)
	switch {
	case sv == nil || len(sv.Instances) == 0:
		return service + " (not registered)"
	case len(sv.Routable()) == 0:
		return fmt.Sprintf("%s (%d registered, none routable)", service, len(sv.Instances))
	}
	return ""
}
