// Package registry reads and writes rewire's registry in etcd v3, on the key
// schema and record format of package schema.
//
// A Writer writes instance records under one lease per process and keeps
// them there: it rewrites a record only when its bytes change, and when the
// lease is lost it takes a new one and writes everything again. A Watcher
// keeps an in-memory schema.Snapshot of the registry current: one Get at
// revision R, then a Watch from R+1, with a full resync after compaction or
// a broken watch.
//
//	cli, _ := registry.Config{Endpoints: []string{"127.0.0.1:2379"}}.Client()
//	w := registry.NewWatcher(registry.WatcherOptions{Client: cli})
//	go w.Run(ctx)
//	for range w.Updates() {
//		snap := w.Current()
//		_ = snap.Service("web").Routable()
//	}
//
// Writer and Watcher are safe for concurrent use. Each has a Run method
// that owns every goroutine it starts and returns after they exit.
package registry
