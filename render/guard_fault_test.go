package render_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"weak"

	"github.com/rewire/rewire/render"
)

// everyTmpl ranges over every service, as examples/haproxy does: a service
// with no instance left is no longer read by the new render at all.
const everyTmpl = `{{ range services }}backend {{ .Name }}
{{ range instances .Name }}  server {{ .ID }} {{ .Health.Shallow }}
{{ end }}{{ end }}`

// TestGuardVanishedService: every instance of web vanishes at once (all
// registrars killed, or the prefix deleted). The template no longer reads
// web, yet the guards see it as all its instances removed.
func TestGuardVanishedService(t *testing.T) {
	tests := []struct {
		name   string
		guards render.Guards
		want   string
		bound  bool // the hold ends after Hold
	}{
		{"default guards", render.DefaultGuards(), render.GuardRemoved, true},
		{"min_servers", render.Guards{MinServers: 1}, render.GuardMinServers, false},
		{"explicit fraction", render.Guards{MaxRemovedFraction: 0.5, Hold: 20 * time.Second}, render.GuardRemoved, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m, reg := newMetrics()
				kv := fleet(10, "web")
				for k, v := range fleet(10, "api") {
					kv[k] = v
				}
				src := newMemSource(t, kv)
				tg := mkTarget(t, "site", everyTmpl, render.TargetConfig{Guards: tc.guards}, render.Options{Metrics: m})
				startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}})
				synctest.Wait()
				dest := tg.Destination()
				before := readFile(t, dest)
				if strings.Count(before, "server web-") != 10 {
					t.Fatalf("first render = %q, want 10 web servers", before)
				}

				src.change(t, nil, instKeys("web", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)...)
				synctest.Wait()
				if got := readFile(t, dest); got != before {
					t.Errorf("destination after every web instance vanished = %q, want it as before", got)
				}
				st := tg.Status()
				if st.HeldBy != tc.want || !strings.Contains(st.Held, "web") {
					t.Errorf("Status() = held by %q: %q, want held by %s naming web", st.HeldBy, st.Held, tc.want)
				}
				if n := metricValue(t, reg, "templater_guard_trips_total", "template", "site", "guard", tc.want); n != 1 {
					t.Errorf("%s trips = %v, want 1", tc.want, n)
				}

				// While held: api's health changes and a new api instance go out.
				k, v := rec("api", "api-1", "critical")
				k2, v2 := rec("api", "api-11", "passing")
				src.change(t, map[string]string{k: v, k2: v2})
				synctest.Wait()
				got := readFile(t, dest)
				if !strings.Contains(got, "server api-1 critical") || !strings.Contains(got, "server api-11 passing") || strings.Count(got, "server web-") != 10 {
					t.Errorf("destination during the hold = %q, want api's changes applied and every web server kept", got)
				}

				time.Sleep(time.Hour)
				synctest.Wait()
				got = readFile(t, dest)
				if tc.bound && strings.Contains(got, "web") {
					t.Errorf("destination after the hold = %q, want web gone (the removal was real)", got)
				}
				if !tc.bound && strings.Count(got, "server web-") != 10 {
					t.Errorf("destination an hour later = %q, want web held while min_servers is violated", got)
				}
			})
		})
	}
}

// TestGuardRemovalsAddUpAcrossRenders: leases expire a moment apart, so
// 10 instances go in two renders, 2 then 6. The second is judged against
// the baseline (8 of 10), not against the file after the first (6 of 8).
func TestGuardRemovalsAddUpAcrossRenders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newMemSource(t, fleet(10, "web"))
		tg := mkTarget(t, "site", webTmpl, render.TargetConfig{Guards: render.Guards{MaxRemovedFraction: 0.7, Hold: time.Minute}}, render.Options{})
		startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}})
		synctest.Wait()
		dest := tg.Destination()

		src.change(t, nil, instKeys("web", 1, 2)...)
		synctest.Wait()
		if got := strings.Count(readFile(t, dest), "server "); got != 8 {
			t.Fatalf("servers after 2 of 10 went = %d, want 8 (20%% is under the guard)", got)
		}
		time.Sleep(time.Second)
		src.change(t, nil, instKeys("web", 3, 4, 5, 6, 7, 8)...)
		synctest.Wait()
		st := tg.Status()
		if st.HeldBy != render.GuardRemoved || !strings.Contains(st.Held, "8 of 10") {
			t.Errorf("Status() after 6 more went = held by %q: %q, want %s saying 8 of 10", st.HeldBy, st.Held, render.GuardRemoved)
		}
		if got := strings.Count(readFile(t, dest), "server "); got != 8 {
			t.Errorf("servers during the hold = %d, want the 8 the file had", got)
		}

		// The hold ends: the removal is accepted, and a later removal of
		// one of the last two is judged from there (1 of 2 is under 0.7).
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if got := readFile(t, dest); got != "server web-10\nserver web-9\n" && got != "server web-9\nserver web-10\n" {
			t.Errorf("destination after the hold = %q, want web-9 and web-10", got)
		}
		src.change(t, nil, instKeys("web", 9)...)
		synctest.Wait()
		if st := tg.Status(); st.Held != "" {
			t.Errorf("Status() after 1 of the remaining 2 went = held by %q: %q, want none", st.HeldBy, st.Held)
		}
		if got := readFile(t, dest); got != "server web-10\n" {
			t.Errorf("destination = %q, want web-10 alone", got)
		}
	})
}

// TestGuardMassExpiryAcrossServices: the registry loses 40% of its
// instances within the window, spread so thinly that no service loses
// more than max_removed_fraction; the mass-expiry guard keeps the
// template's share.
func TestGuardMassExpiryAcrossServices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := fleet(5, "web")
		for _, svc := range []string{"a", "b", "c"} {
			for k, v := range fleet(5, svc) {
				kv[k] = v
			}
		}
		src := newMemSource(t, kv)
		tg := mkTarget(t, "site", webTmpl, render.TargetConfig{Guards: render.DefaultGuards()}, render.Options{})
		startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}})
		synctest.Wait()
		var gone []string
		for _, svc := range []string{"a", "b", "c"} {
			gone = append(gone, instKeys(svc, 1, 2, 3, 4, 5)...)
		}
		src.change(t, nil, append(gone, instKeys("web", 1, 2)...)...) // 17 of 20, web 2 of 5
		synctest.Wait()
		st := tg.Status()
		if st.HeldBy != render.GuardMassExpiry {
			t.Errorf("Status() = held by %q: %q, want %s", st.HeldBy, st.Held, render.GuardMassExpiry)
		}
		if got := strings.Count(readFile(t, tg.Destination()), "server "); got != 5 {
			t.Errorf("servers during the hold = %d, want all 5", got)
		}
	})
}

// TestGuardDefaultsDescribed: the defaults are on, and within their
// documented range.
func TestGuardDefaultsDescribed(t *testing.T) {
	g := render.DefaultGuards()
	if err := g.Validate(); err != nil {
		t.Fatalf("DefaultGuards().Validate() = %v", err)
	}
	if g.MaxRemovedFraction == 0 || g.MassExpiryFraction == 0 || g.Hold == 0 {
		t.Errorf("DefaultGuards() = %+v, want self-preservation on", g)
	}
}

// TestGuardServiceNewerThanBaseline: the templater starts before web
// registers (its baseline has no web), web registers, and within the hold
// window every web instance vanishes (a wiped etcd, say). Judged only
// against the baseline nothing would be removed; judged against the file,
// everything is.
func TestGuardServiceNewerThanBaseline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newMemSource(t, nil)
		tg := mkTarget(t, "site", webTmpl, render.TargetConfig{Guards: render.DefaultGuards()}, render.Options{})
		startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}})
		synctest.Wait()
		src.change(t, fleet(3, "web"))
		synctest.Wait()
		if got := strings.Count(readFile(t, tg.Destination()), "server "); got != 3 {
			t.Fatalf("servers = %d, want 3", got)
		}
		time.Sleep(10 * time.Second)
		src.change(t, nil, instKeys("web", 1, 2, 3)...)
		synctest.Wait()
		if got := strings.Count(readFile(t, tg.Destination()), "server "); got != 3 {
			t.Errorf("servers after web vanished = %d, want 3 held", got)
		}
		if st := tg.Status(); st.HeldBy != render.GuardRemoved {
			t.Errorf("Status() held by %q: %q, want %s", st.HeldBy, st.Held, render.GuardRemoved)
		}
	})
}

// TestGuardRemovalsAddUpAfterGrowth: the templater starts before web
// registers, web grows to 10 within the hold window, then loses 2 at a
// time. The baseline keeps the 10 the file showed, so the third removal
// (6 of 10) is held and the file keeps 6; judged against the file each
// time (2 of 8, 2 of 6, 2 of 4) nothing would be.
func TestGuardRemovalsAddUpAfterGrowth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newMemSource(t, nil)
		tg := mkTarget(t, "site", webTmpl, render.TargetConfig{Guards: render.Guards{MaxRemovedFraction: 0.5, Hold: time.Minute}}, render.Options{})
		startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}})
		synctest.Wait()
		src.change(t, fleet(10, "web"))
		synctest.Wait()
		for i, gone := range [][]int{{1, 2}, {3, 4}, {5, 6}, {7, 8}} {
			time.Sleep(time.Second)
			src.change(t, nil, instKeys("web", gone...)...)
			synctest.Wait()
			if got, want := strings.Count(readFile(t, tg.Destination()), "server "), max(10-2*(i+1), 6); got != want {
				t.Errorf("servers after %d removals of 2 = %d, want %d", i+1, got, want)
			}
		}
		if st := tg.Status(); st.HeldBy != render.GuardRemoved || !strings.Contains(st.Held, "8 of 10") {
			t.Errorf("Status() held by %q: %q, want %s counting 8 of 10", st.HeldBy, st.Held, render.GuardRemoved)
		}
	})
}

// TestGuardBaselineKeepsNoOldRecords: within the guards' window a health
// flip copies its service's records into the new snapshot. Nothing the
// target keeps may hold on to the copies the file no longer reflects: a
// baseline that kept the snapshot the window began with held a second
// copy of every service that changed since, 2.7 MB at 10,000 instances.
// A template that does not read the changed service (web only, api
// changes) must not keep them either.
func TestGuardBaselineKeepsNoOldRecords(t *testing.T) {
	templates := []struct {
		name, text string
		readsAPI   bool
	}{{"every service", everyTmpl, true}, {"web only", webTmpl, false}}
	for _, tmpl := range templates {
		for _, guards := range []render.Guards{render.DefaultGuards(), {}} {
			t.Run(fmt.Sprintf("%s, guards off %v", tmpl.name, guards == render.Guards{}), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					src := newMemSource(t, fleet(10, "web", "api"))
					first := src.Current()
					api := weak.Make(&first.Service("api").Instances[0])
					first = nil
					tg := mkTarget(t, "site", tmpl.text, render.TargetConfig{Guards: guards}, render.Options{})
					startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}})
					synctest.Wait()

					for _, id := range []string{"api-2", "api-3"} {
						k, v := rec("api", id, "critical")
						src.change(t, map[string]string{k: v})
						synctest.Wait()
					}
					if got := readFile(t, tg.Destination()); tmpl.readsAPI != strings.Contains(got, "server api-3 critical") {
						t.Fatalf("destination = %q, want api-3 critical only if the template reads api", got)
					}
					runtime.GC()
					if api.Value() != nil {
						t.Errorf("the first snapshot's api records are still reachable after api changed twice: something keeps an old copy of them")
					}
				})
			})
		}
	}
}

// TestGuardOldRemovalsDoNotAddUp: the window over which removals add up
// is the hold (60 s by default), also for a template that does not read
// the services that lost instances. Six of ten api instances vanish; an
// hour later one of ten web instances goes. That is 1 of 14 within the
// window, not 7 of 20: the mass-expiry guard (30%) must let it through.
func TestGuardOldRemovalsDoNotAddUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newMemSource(t, fleet(10, "web", "api"))
		tg := mkTarget(t, "site", webTmpl, render.TargetConfig{Guards: render.DefaultGuards()}, render.Options{})
		startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}})
		synctest.Wait()

		src.change(t, nil, instKeys("api", 1, 2, 3, 4, 5, 6)...)
		synctest.Wait()
		time.Sleep(time.Hour)
		src.change(t, nil, instKeys("web", 1)...)
		synctest.Wait()
		if got := readFile(t, tg.Destination()); strings.Contains(got, "server web-1\n") || strings.Count(got, "server web-") != 9 {
			t.Errorf("destination = %q, want web-1 gone and the 9 others kept", got)
		}
		if st := tg.Status(); st.HeldBy != "" {
			t.Errorf("Status() = held by %s: %s; want nothing held (the api removals were an hour ago)", st.HeldBy, st.Held)
		}
	})
}
