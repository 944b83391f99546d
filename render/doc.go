// Package render turns a registry snapshot into files: it parses templates
// (text/template with sprig, go-sockaddr and rewire's registry functions),
// executes them against one consistent schema.Snapshot, and applies the
// result safely: staged file in the destination directory → check command →
// fsync → atomic rename → reload command, restoring the previous file if the
// reload fails. It imports no etcd code; it reads the registry through the
// small Source interface.
//
//	t, err := render.NewTarget(render.TargetConfig{
//		Name: "haproxy", Source: "haproxy.cfg.tmpl", Destination: "/etc/haproxy/haproxy.cfg",
//		Check: render.Shell("haproxy -c -f {{ .Staged }}"),
//	}, render.Options{})
//	changed, err := t.Apply(ctx, snapshot)
//
// Registry functions (they win over sprig's on a name clash):
//
//	service NAME [STATUSES]   routable instances: shallow passing or warning, not in
//	                          maintenance, not draining; sorted by ID. STATUSES is
//	                          "any" or a list like "passing,warning,critical".
//	instances NAME            every registered instance, with Health, Draining and
//	                          Maintenance, for configs that keep unhealthy servers disabled
//	services                  every service with instances: .Name, .Tags
//	serviceTags NAME          the sorted union of the service's instances' tags
//	key PATH                  value of a free-form key; an error if it is missing
//	keyOrDefault PATH DEFAULT value of a key, or DEFAULT
//	ls PATH                   direct children of PATH/: .Key (relative), .Value
//	tree PATH                 every key under PATH/: .Key (relative), .Value
//	serviceOrAll NAME FRACTION routable instances, or (panic threshold) every instance
//	                          not in maintenance or draining when fewer than FRACTION
//	                          of them are routable
//	dependencies NAME         the services NAME depends on (its instances' depends_on),
//	                          sorted: the graph `registrar graph` draws
//	dependents NAME           the services that depend on NAME, sorted
//	cachedTemplate NAME KEY   executes the named template (define "NAME") with KEY as
//	                          its dot, reusing its output from the previous render while
//	                          nothing it read changed: a change to one service then
//	                          re-renders only that service's block. KEY is a string
//	                          (e.g. a service name) or an instance (the dot of a range
//	                          over instances): then the output is reused while the
//	                          record is the same, so a service of thousands of
//	                          instances re-renders only the lines that changed. Blocks
//	                          must be deterministic (no now, rand...).
//	cachedRange NAME LIST     {{ range LIST }}{{ cachedTemplate NAME . }}{{ end }} with the
//	                          loop run in Go, not by the template engine. LIST holds
//	                          strings or instances. When the block around it runs again,
//	                          it copies the output of the unchanged elements from its
//	                          previous output and runs NAME only for the new and changed
//	                          ones: a change to one instance of a service of 10,000 costs
//	                          about what it costs in one of 200, plus copying its lines.
//
// PATH is relative to the registry prefix ("app/config" is <prefix>/app/config),
// or absolute when it starts with "/" (it must still be under the prefix,
// which is all the templater watches).
//
// Guards (see Guards and DefaultGuards) hold removals that look like a
// fault: while one holds, the template renders from the new snapshot with
// the vanished instances kept, so every other change still goes out. They
// compare every service the file reflects with the new snapshot, and the
// fraction guards add removals up over the hold window.
//
// Renders are bounded (TargetConfig.RenderTimeout, MaxOutput): Parse puts
// a budget check at the top of every range body, the output stops at its
// limit, and cancelling the context stops a render. A render over a limit
// fails with an error matching ErrRenderLimit, naming the limit and the
// template's line.
//
// Once a Runner's group installs a file, the rest of that apply (reload,
// confirm, verify, commit or rollback) runs to its end even if the Run
// context ends meanwhile; each command is bounded by its timeout.
//
// A consumer that can take some changes without a reload (HAProxy's
// runtime API) plugs in as a Runtime (TargetConfig.Runtime): the pipeline
// asks it to apply a change before the check (live-first), after the swap,
// around a reload and on a reconcile timer. This package knows no
// particular consumer; package haproxy implements Runtime and the
// templater wires it in.
//
// A Target is safe for concurrent use, but Apply calls on one Target are
// serialized.
package render
