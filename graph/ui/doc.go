// Package ui serves the registry map as a web page: the services table,
// the dependency graph as SVG (laid out in the browser by Graphviz
// compiled to WebAssembly, vendored into the embedded assets: no CDN, no
// network), root causes highlighted, impact on hover or click, and live
// updates pushed over server-sent events as the registry changes. The
// JSON behind the page is served too:
//
//	GET /                    the page
//	GET /v1/graph            the graph, its roots, and its DOT source
//	GET /v1/why/<service>    graph.Diagnosis of one service
//	GET /v1/events           text/event-stream of /v1/graph, one event per change
//
// It is read-only: anything but GET and HEAD is refused. It imports no
// etcd code; registry.Watcher satisfies Source:
//
//	s := ui.New(ui.Options{Source: watcher})
//	go s.Run(ctx)                            // follows the Source until ctx ends
//	http.Serve(l, s.Handler())
//
// Which addresses it listens on is the caller's choice (registrar ui
// binds loopback unless told otherwise).
package ui
