// Package registrar is the registrar daemon's engine: it turns registrar.yaml
// into registered instances and keeps their records true.
//
// For every configured instance it runs the health checks (package health),
// derives shallow and deep health — deep adds the instance's own deep
// checks and the routability of each service it depends on, read from the
// registry itself, so deep health costs no extra probes — and hands the
// record to a registry.Writer, which writes it only when it changes.
// It also drains instances on shutdown, applies a reloaded config without
// touching unchanged instances, and serves the local API
// (/v1/services, /v1/checks/..., /v1/maintenance/...): reads for whoever
// reaches it, writes only for a caller on its unix socket (ListenSocket,
// ServeSocket; the kernel names the caller) or with its token, and only on
// this registrar's own instances.
//
//	a := registrar.New(cfg, registrar.Options{Client: cli, Logger: log, Registerer: reg})
//	go a.Run(ctx)               // until ctx ends: then deregisters
//	a.Reload(ctx, newCfg)       // add, remove, update instances
//	a.Drain(drainCtx)           // mark draining, wait each drain period
//
// An Agent is safe for concurrent use; Run owns every goroutine it starts.
package registrar
