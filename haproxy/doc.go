// Package haproxy applies HAProxy 2.6 config changes without a reload
// when it can. Parse reads a rendered config; Diff compares the running
// config with the next one and returns a Plan: either a reload (with the
// reason) or the server changes the runtime API can make (address,
// weight, maintenance, servers added and deleted). Client speaks the
// runtime API on a `stats socket ... level admin` unix socket; Verify
// checks that the running servers match a config.
//
//	old, err := haproxy.Parse(current) // the file HAProxy runs
//	next, err := haproxy.Parse(rendered)
//	plan, err := haproxy.Diff(old, next)
//	if plan.Reload {
//		log.Info("reload", "reason", plan.Reason) // write the file, reload
//	} else if !plan.Empty() {
//		c := haproxy.NewClient("/run/haproxy/admin.sock")
//		err := c.Apply(ctx, plan) // then write the file, so a reload keeps the change
//		if err == nil {
//			err = haproxy.Verify(ctx, c, next)
//		}
//		// on error: write the file and reload
//	}
//
// Runtime changes live in the running process only: always write the new
// file as well, or the next reload undoes them.
//
// Runtime is one template's haproxy as the templater's render pipeline
// drives it (it satisfies render.Runtime through a small adapter in the
// templater, so this package imports nothing of the pipeline): server-only
// changes through the runtime API, live-first before the check, server
// state kept across reloads, reloads confirmed by a new worker, drift
// repaired, reloads through the master CLI. Its metrics are
// templater_haproxy_*.
//
// Client methods each use one connection and may be called concurrently.
// The package starts no goroutine that outlives a call.
package haproxy
