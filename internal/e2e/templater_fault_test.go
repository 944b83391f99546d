package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewire/rewire/render"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// everyService ranges over every registered service, as examples/haproxy
// does: a service left with no instance is not even read by a new render.
const everyService = `{{ range services }}backend {{ .Name }}
{{ range instances .Name }}  server {{ .ID }} {{ .Address }}:{{ .Port }}
{{ end }}{{ end }}`

// leased registers n instances of svc, two per lease, as n/2 registrars
// would, and returns the leases.
func leased(t *testing.T, cli *clientv3.Client, svc string, from, n int) []clientv3.LeaseID {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var leases []clientv3.LeaseID
	for i := from; i < from+n; i += 2 {
		l, err := cli.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l.ID)
		for j := i; j < i+2 && j < from+n; j++ {
			id := fmt.Sprintf("%s-%d", svc, j)
			if _, err := cli.Put(ctx, "/rw/services/"+svc+"/"+id, instanceRecord(svc, id, fmt.Sprintf("10.0.0.%d", j)), clientv3.WithLease(l.ID)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return leases
}

// revoke ends the leases, as registrars killed with SIGKILL do once their
// TTL is over (all in one go, or in several calls).
func revoke(t *testing.T, cli *clientv3.Client, leases ...clientv3.LeaseID) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, l := range leases {
		if _, err := cli.Revoke(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTemplaterGuardsWholeServiceVanishes: all ten instances of web go,
// by their registrars' leases (which etcd ends one after the other, so
// the removals may come in several renders) or by one prefix delete; the
// template ranges over services, so a new render without web does not
// read web at all. The hold is counted and shown, the file keeps what the
// guard promises, and api's changes still go out.
func TestTemplaterGuardsWholeServiceVanishes(t *testing.T) {
	skipShort(t)
	deletePrefix := func(t *testing.T, cli *clientv3.Client, _ []clientv3.LeaseID) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if _, err := cli.Delete(ctx, "/rw/services/web/", clientv3.WithPrefix()); err != nil {
			t.Fatal(err)
		}
	}
	revokeAll := func(t *testing.T, cli *clientv3.Client, l []clientv3.LeaseID) { revoke(t, cli, l...) }
	tests := []struct {
		name, guards string
		guard        []string // the guards that may hold (which one first depends on how the removals split)
		atLeast      int      // web servers the file keeps
		wipe         func(t *testing.T, cli *clientv3.Client, leases []clientv3.LeaseID)
	}{
		{"default guards, prefix deleted", "", []string{render.GuardRemoved}, 10, deletePrefix},
		{"default guards, leases lost", "", []string{render.GuardRemoved, render.GuardMassExpiry}, 5, revokeAll},
		{"min_servers alone, leases lost", "    guards: {min_servers: 1, max_removed_fraction: 0, mass_expiry_fraction: 0}\n",
			[]string{render.GuardMinServers}, 1, revokeAll},
		{"all guards, leases lost", "    guards: {min_servers: 1, max_removed_fraction: 0.5, mass_expiry_fraction: 0.3, hold: 20s}\n",
			[]string{render.GuardMinServers, render.GuardRemoved, render.GuardMassExpiry}, 5, revokeAll},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "web.tmpl"), everyService)
			r := startProd(t, dir, tc.guards)
			leases := leased(t, r.cli, "web", 1, 10)
			put(t, r.cli, "/rw/services/api/api-1", instanceRecord("api", "api-1", "10.0.1.1"))
			waitFor(t, 10*time.Second, "ten web servers and api rendered", func() bool {
				s := readFile(r.dest)
				return strings.Count(s, "server web-") == 10 && strings.Contains(s, "api-1")
			})

			tc.wipe(t, r.cli, leases)
			trips := func() (n float64) {
				for _, g := range tc.guard {
					n += max(0, metric(r.listen, fmt.Sprintf(`templater_guard_trips_total{guard=%q,template="web"}`, g)))
				}
				return n
			}
			waitFor(t, 10*time.Second, fmt.Sprintf("a trip of %v counted", tc.guard), func() bool { return trips() > 0 })
			rev := float64(r.etcd.Rev(t, r.cli))
			waitFor(t, 10*time.Second, "the templater caught up with etcd", func() bool {
				ts, _ := mustStatus(t, r.listen).template("web")
				return metric(r.listen, "registry_revision") >= rev && ts.Revision >= int64(rev)
			})
			ts, _ := mustStatus(t, r.listen).template("web")
			if !slices.Contains(tc.guard, ts.HeldBy) || !strings.Contains(ts.Held, "web") && ts.HeldBy != render.GuardMassExpiry {
				t.Errorf("status = held by %q: %q, want held by one of %v, naming web", ts.HeldBy, ts.Held, tc.guard)
			}
			if got := strings.Count(readFile(r.dest), "server web-"); got < tc.atLeast {
				t.Errorf("web servers after web vanished = %d, want at least %d", got, tc.atLeast)
			}

			// A hold keeps only the removal: a new api instance goes out.
			kept := strings.Count(readFile(r.dest), "server web-")
			put(t, r.cli, "/rw/services/api/api-2", instanceRecord("api", "api-2", "10.0.1.2"))
			waitFor(t, 10*time.Second, "api-2 rendered during the hold", func() bool { return strings.Contains(readFile(r.dest), "api-2") })
			if got := strings.Count(readFile(r.dest), "server web-"); got != kept {
				t.Errorf("web servers during the hold = %d, want the %d kept", got, kept)
			}
			alive(t, r.p)
		})
	}
}

// TestTemplaterGuardsRemovalsInSeparateRenders: four registrars die at
// once, but etcd expires their leases one after the other: 2 of 10 go in
// one render (under the guard), then 2 more, and so on. Judged against
// the baseline they add up, so the file never loses more than half of
// web, and the hold counts 8 of 10. (Judged against the last file each
// time, 2 of 8, 2 of 6 and 2 of 4 would all pass.)
func TestTemplaterGuardsRemovalsInSeparateRenders(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "web.tmpl"), everyService)
	r := startProd(t, dir, "    guards: {max_removed_fraction: 0.5, mass_expiry_fraction: 0}\n")
	leases := leased(t, r.cli, "web", 1, 10)
	waitFor(t, 10*time.Second, "ten web servers rendered", func() bool { return strings.Count(readFile(r.dest), "server web-") == 10 })

	revoke(t, r.cli, leases[0])
	waitFor(t, 10*time.Second, "the first 2 removed", func() bool { return strings.Count(readFile(r.dest), "server web-") == 8 })
	revoke(t, r.cli, leases[1:4]...)
	waitFor(t, 10*time.Second, "max_removed_fraction trip counted", func() bool {
		return metric(r.listen, `templater_guard_trips_total{guard="max_removed_fraction",template="web"}`) > 0
	})
	waitFor(t, 10*time.Second, "the hold counting 8 of 10", func() bool {
		ts, _ := mustStatus(t, r.listen).template("web")
		return strings.Contains(ts.Held, "8 of 10")
	})
	if got := strings.Count(readFile(r.dest), "server web-"); got < 5 {
		t.Errorf("web servers after 6 more went = %d, want at least 5 (half of the baseline)", got)
	}
}

// TestTemplaterLoopingTemplate: a template that starts looping for ever
// after a key changes fails alone: the other template keeps applying,
// status says why, SIGHUP reloads the config and SIGTERM stops the
// templater.
func TestTemplaterLoopingTemplate(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "loop.tmpl"), `{{ if keyOrDefault "app/loop" "" }}{{ range 1000000000000000 }}{{ end }}{{ end }}ok`+"\n")
	r := startProd(t, dir, `    render_timeout: 1s
  - name: loop
    source: loop.tmpl
    destination: out/loop.conf
    render_timeout: 1s
`)
	loop := filepath.Join(dir, "out", "loop.conf")
	put(t, r.cli, "/rw/services/web/web-1", instanceRecord("web", "web-1", "10.0.0.1"))
	waitFor(t, 10*time.Second, "both rendered", func() bool {
		return readFile(loop) == "ok\n" && strings.Contains(readFile(r.dest), "web-1")
	})
	put(t, r.cli, "/rw/app/loop", "yes")
	waitFor(t, 10*time.Second, "the looping template failing in status", func() bool {
		ts, _ := mustStatus(t, r.listen).template("loop")
		return strings.Contains(ts.Error, "render_timeout") && !ts.FailingSince.IsZero()
	})
	put(t, r.cli, "/rw/services/web/web-2", instanceRecord("web", "web-2", "10.0.0.2"))
	waitFor(t, 10*time.Second, "web-2 rendered beside the loop", func() bool { return strings.Contains(readFile(r.dest), "web-2") })

	// SIGHUP: a third template appears while the loop goes on.
	writeFile(t, filepath.Join(dir, "count.tmpl"), `web: {{ len (service "web") }}`+"\n")
	replaceFile(t, r.cfg, readFileString(t, r.cfg)+`  - name: count
    source: count.tmpl
    destination: out/count.conf
`)
	r.p.signal(t, syscall.SIGHUP)
	count := filepath.Join(dir, "out", "count.conf")
	waitFor(t, 10*time.Second, "the new template rendered after SIGHUP", func() bool { return readFile(count) == "web: 2\n" })
	if got := readFile(loop); got != "ok\n" {
		t.Errorf("looping template's destination = %q, want its last good file", got)
	}

	r.p.signal(t, syscall.SIGTERM)
	if code := r.p.wait(t, 30*time.Second); code != 0 {
		t.Errorf("templater exit code after SIGTERM = %d, want 0\n%s", code, r.p.out)
	}
}

// TestTemplaterSignalDuringSlowReload: SIGTERM and SIGHUP arrive while a
// reload command runs. The reload finishes (it is not killed midway), the
// file stays the one it reloaded, and the templater stops or reloads its
// config after it.
func TestTemplaterSignalDuringSlowReload(t *testing.T) {
	skipShort(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			log := filepath.Join(dir, "reload.log")
			// The reload records the file it reloaded, so that the test can
			// compare it with the file on disk once everything settled.
			reload := fmt.Sprintf(`    reload: "echo start >> %[1]s; sleep 2; cat %[2]s >> %[1]s; echo end >> %[1]s"
`, log, filepath.Join(dir, "out", "web.conf"))
			r := startProd(t, dir, reload)
			put(t, r.cli, "/rw/services/web/web-1", instanceRecord("web", "web-1", "10.0.0.1"))
			waitFor(t, 20*time.Second, "first reload done", func() bool { return strings.Count(readFile(log), "end") == 1 })

			put(t, r.cli, "/rw/services/web/web-2", instanceRecord("web", "web-2", "10.0.0.2"))
			waitFor(t, 10*time.Second, "second reload started", func() bool { return strings.Count(readFile(log), "start") == 2 })
			if sig == syscall.SIGHUP {
				replaceFile(t, r.cfg, strings.Replace(readFileString(t, r.cfg), "reload:", "wait: {min: 10ms}\n    reload:", 1))
			}
			r.p.signal(t, sig)
			if sig == syscall.SIGTERM {
				if code := r.p.wait(t, 30*time.Second); code != 0 {
					t.Errorf("exit code = %d, want 0", code)
				}
			}
			waitFor(t, 20*time.Second, "second reload finished", func() bool { return strings.Count(readFile(log), "end") == 2 })
			got := readFile(log)
			last := got[strings.LastIndex(got, "start\n")+len("start\n") : strings.LastIndex(got, "end\n")]
			if dest := readFile(r.dest); last != dest || !strings.Contains(dest, "web-2") {
				t.Errorf("the reload saw %q, the file on disk is %q: want the same file, with web-2", last, dest)
			}
			if strings.Contains(r.p.out.String(), "timed out") {
				t.Errorf("templater reported a timeout for a signal:\n%s", r.p.out)
			}
			if sig == syscall.SIGHUP {
				put(t, r.cli, "/rw/services/web/web-3", instanceRecord("web", "web-3", "10.0.0.3"))
				waitFor(t, 20*time.Second, "a change after the reloaded config", func() bool { return strings.Contains(readFile(r.dest), "web-3") })
				alive(t, r.p)
			}
		})
	}
}

// TestTemplaterDuplicateDestinations: two templates writing one file by
// different spellings of its path are refused by check and run.
func TestTemplaterDuplicateDestinations(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.tmpl"), "a\n")
	if err := os.MkdirAll(filepath.Join(dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "out"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for name, second := range map[string]string{
		"absolute": filepath.Join(dir, "out", "a.conf"),
		"symlink":  "link/a.conf",
		"dot-dot":  "out/../out/a.conf",
	} {
		t.Run(name, func(t *testing.T) {
			cfg := writeFile(t, filepath.Join(dir, name+".yaml"), fmt.Sprintf(`etcd: {endpoints: ["127.0.0.1:1"]}
templates:
  - {name: a, source: a.tmpl, destination: out/a.conf}
  - {name: b, source: a.tmpl, destination: %q}
`, second))
			for _, cmd := range []string{"check", "run"} {
				p := start(t, bins.templater, cmd, "-c", cfg)
				if code := p.wait(t, 30*time.Second); code != 2 {
					t.Errorf("templater %s exit code = %d, want 2\n%s", cmd, code, p.out)
				}
				if out := p.out.String(); !strings.Contains(out, "templates[1].destination") || !strings.Contains(out, "templates[0]") {
					t.Errorf("templater %s output = %q, want it to name both templates", cmd, out)
				}
			}
		})
	}
}
