// Package graph is the registry as a map: services as nodes, their
// declared depends_on as edges, built from one registry snapshot. It
// answers the questions an operator asks when something is red: what
// depends on what (Neighbourhood), what a service going down affects
// (Impact), in which order to start things (Order), and why a service is
// unhealthy (Why): which services are the root causes, and which others
// only wait on them.
//
// It imports no etcd code, only the registry's data types, so the CLI, the
// web page and the template functions share one model:
//
//	g := graph.Build(snap)            // snap: a *schema.Snapshot
//	d := g.Why("web")                 // roots, chains, failing checks
//	stages, err := g.Order()          // dependencies first; *CycleError on a cycle
//	g.WriteDOT(os.Stdout, graph.DOTOptions{})
//
// A dependency that no registered instance provides is a node marked
// Missing. Cycles are found when the graph is built and named in
// Graph.Cycles.
//
// Every function here is pure: a *Graph is immutable once built and safe
// for concurrent use.
package graph
