package render_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rewire/rewire/render"
)

// healthTmpl lists the registered instances of web and api with their
// health.
const healthTmpl = `{{ range instances "web" }}server {{ .ID }} {{ .Health.Shallow }}
{{ end }}{{ range instances "api" }}server {{ .ID }} {{ .Health.Shallow }}
{{ end }}`

// webTmpl lists the registered instances of web only.
const webTmpl = `{{ range instances "web" }}server {{ .ID }}
{{ end }}`

func TestGuardMinServersHoldsWhileViolated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, reg := newMetrics()
		src := newMemSource(t, fleet(2, "web"))
		tg := mkTarget(t, "site", webTmpl+"msg={{ keyOrDefault \"app/msg\" \"\" }}\n",
			render.TargetConfig{Guards: render.Guards{MinServers: 1}}, render.Options{Metrics: m})
		r := startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}})
		synctest.Wait()
		dest := tg.Destination()
		good := stat(t, dest)
		if good.text != "server web-1\nserver web-2\nmsg=\n" {
			t.Fatalf("first render = %q", good.text)
		}

		// Every instance gone in one change: held.
		src.change(t, nil, instKeys("web", 1, 2)...)
		synctest.Wait()
		if !good.same(t, dest) {
			t.Errorf("destination after every web instance vanished = %q, want it untouched", readFile(t, dest))
		}
		st := tg.Status()
		if st.Held == "" || st.HeldBy != render.GuardMinServers || !st.HeldUntil.IsZero() {
			t.Errorf("Status() held = %q by %q until %v, want held by %s with no end", st.Held, st.HeldBy, st.HeldUntil, render.GuardMinServers)
		}
		if !strings.Contains(st.Held, "web") {
			t.Errorf("Status().Held = %q, want it to name the service", st.Held)
		}
		if n := metricValue(t, reg, "templater_guard_trips_total", "template", "site", "guard", render.GuardMinServers); n != 1 {
			t.Errorf("min_servers trips = %v, want 1", n)
		}

		// An hour later, and with another change the template reads: the
		// removal is still held, the other change goes out.
		time.Sleep(time.Hour)
		src.change(t, map[string]string{"/rewire/app/msg": "later"})
		r.Kick("site")
		synctest.Wait()
		if got, want := readFile(t, dest), "server web-1\nserver web-2\nmsg=later\n"; got != want {
			t.Errorf("destination an hour later = %q, want %q", got, want)
		}
		if st := tg.Status(); st.HeldBy != render.GuardMinServers {
			t.Errorf("Status().HeldBy an hour later = %q, want %q", st.HeldBy, render.GuardMinServers)
		}
		if n := metricValue(t, reg, "templater_guard_trips_total", "template", "site", "guard", render.GuardMinServers); n != 1 {
			t.Errorf("min_servers trips = %v, want 1 (one hold, counted once)", n)
		}

		// One instance back: released.
		k, v := rec("web", "web-2", "passing")
		src.change(t, map[string]string{k: v})
		synctest.Wait()
		if got, want := readFile(t, dest), "server web-2\nmsg=later\n"; got != want {
			t.Errorf("destination after an instance came back = %q, want %q", got, want)
		}
		if st := tg.Status(); st.Held != "" || st.HeldBy != "" {
			t.Errorf("Status() after release: held %q by %q, want none", st.Held, st.HeldBy)
		}
	})
}

// TestGuardDecisions applies a first snapshot, then a second one, and
// checks whether the guards held the second.
func TestGuardDecisions(t *testing.T) {
	tests := []struct {
		name   string
		guards render.Guards
		before map[string]string
		after  []string // instance keys deleted
		tmpl   string
		want   string // guard that holds; "" applies
	}{
		{name: "min_servers: all gone", guards: render.Guards{MinServers: 1}, before: fleet(2, "web"), after: instKeys("web", 1, 2), want: render.GuardMinServers},
		{name: "min_servers: one of two gone", guards: render.Guards{MinServers: 1}, before: fleet(2, "web"), after: instKeys("web", 1)},
		{name: "min_servers 3: two of three left", guards: render.Guards{MinServers: 3}, before: fleet(3, "web"), after: instKeys("web", 1), want: render.GuardMinServers},
		{name: "min_servers 3: already below, no fewer", guards: render.Guards{MinServers: 3}, before: fleet(2, "web"), after: nil},
		{name: "min_servers: a service the template does not read", guards: render.Guards{MinServers: 1}, tmpl: `{{ range instances "web" }}{{ .ID }} {{ .Health.Shallow }}{{ end }}`,
			before: fleet(2, "web", "api"), after: instKeys("api", 1, 2)},
		{name: "min_servers: unhealthy instances still count", guards: render.Guards{MinServers: 1}, tmpl: `{{ range service "web" }}{{ .ID }}{{ end }}`,
			before: fleet(1, "web"), after: nil},
		{name: "fraction 0.5: 3 of 4 removed", guards: render.Guards{MaxRemovedFraction: 0.5}, before: fleet(4, "web"), after: instKeys("web", 1, 2, 3), want: render.GuardRemoved},
		{name: "fraction 0.5: 2 of 4 removed", guards: render.Guards{MaxRemovedFraction: 0.5}, before: fleet(4, "web"), after: instKeys("web", 1, 2)},
		{name: "fraction 0.5: 1 of 4 removed", guards: render.Guards{MaxRemovedFraction: 0.5}, before: fleet(4, "web"), after: instKeys("web", 1)},
		{name: "fraction 0.5: 1 of 1 removed", guards: render.Guards{MaxRemovedFraction: 0.5}, before: fleet(1, "web"), after: instKeys("web", 1), want: render.GuardRemoved},
		{name: "fraction 0.5: second service", guards: render.Guards{MaxRemovedFraction: 0.5}, before: fleet(4, "web", "api"), after: instKeys("api", 2, 3, 4), want: render.GuardRemoved},
		{name: "min_servers wins over fraction", guards: render.Guards{MinServers: 1, MaxRemovedFraction: 0.5}, before: fleet(2, "web"), after: instKeys("web", 1, 2), want: render.GuardMinServers},
		{name: "guards off", before: fleet(2, "web"), after: instKeys("web", 1, 2)},
		// Mass expiry counts the whole registry: the template reads only
		// web, which loses 1 of 4, while api and db lose everything.
		{name: "mass expiry: fleet-wide loss", guards: render.Guards{MassExpiryFraction: 0.5}, tmpl: `{{ range instances "web" }}{{ .ID }} {{ .Health.Shallow }}{{ end }}`,
			before: fleet(4, "web", "api", "db"), after: append(instKeys("web", 4), append(instKeys("api", 1, 2, 3, 4), instKeys("db", 1, 2, 3, 4)...)...), want: render.GuardMassExpiry},
		{name: "mass expiry: fleet loss but none of the template's", guards: render.Guards{MassExpiryFraction: 0.5}, tmpl: `{{ range instances "web" }}{{ .ID }} {{ .Health.Shallow }}{{ end }}`,
			before: fleet(4, "web", "api", "db"), after: append(instKeys("api", 1, 2, 3, 4), instKeys("db", 1, 2, 3, 4)...)},
		{name: "mass expiry: small fleet loss", guards: render.Guards{MassExpiryFraction: 0.5}, tmpl: `{{ range instances "web" }}{{ .ID }} {{ .Health.Shallow }}{{ end }}`,
			before: fleet(4, "web", "api", "db"), after: append(instKeys("web", 4), instKeys("api", 1)...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := tc.tmpl
			if tmpl == "" {
				tmpl = healthTmpl
			}
			tg := mkTarget(t, "site", tmpl, render.TargetConfig{Guards: tc.guards}, render.Options{})
			src := newMemSource(t, tc.before)
			if _, err := tg.Apply(t.Context(), src.Current()); err != nil {
				t.Fatalf("Apply(before): %v", err)
			}
			good := readFile(t, tg.Destination())
			// A health change too, so that the bytes differ in every case.
			k, v := rec("web", "web-1", "critical")
			snap := src.change(t, map[string]string{k: v}, tc.after...)
			changed, err := tg.Apply(t.Context(), snap)
			if err != nil {
				t.Fatalf("Apply(after): %v", err)
			}
			st := tg.Status()
			if st.HeldBy != tc.want {
				t.Errorf("Apply(after) held by %q (%s), want %q", st.HeldBy, st.Held, tc.want)
			}
			// A hold keeps the removed instances and nothing else: the
			// health change of web-1 goes out whenever web-1 is still there.
			got := readFile(t, tg.Destination())
			for _, k := range tc.after {
				id := k[strings.LastIndex(k, "/")+1:]
				if svc := strings.Split(k, "/")[3]; !strings.Contains(tmpl, `"`+svc+`"`) {
					continue // the template does not print it
				}
				if kept := strings.Contains(got, id+" "); kept != (tc.want != "") {
					t.Errorf("Apply(after): %s in the destination = %v, want %v (held: %v); destination %q", id, kept, tc.want != "", tc.want != "", got)
				}
			}
			if strings.Contains(tmpl, "Health") && !slices.Contains(tc.after, "/rewire/services/web/web-1") && !strings.Contains(got, "web-1 critical") {
				t.Errorf("Apply(after) = changed %v, destination %q, want web-1's health change applied (before %q)", changed, got, good)
			}
		})
	}
}

func TestGuardMaxRemovedFractionHoldsThenApplies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, reg := newMetrics()
		src := newMemSource(t, fleet(4, "web"))
		const hold = 30 * time.Second
		tg := mkTarget(t, "site", webTmpl, render.TargetConfig{Guards: render.Guards{MaxRemovedFraction: 0.5, Hold: hold}},
			render.Options{Metrics: m})
		startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}})
		synctest.Wait()
		dest := tg.Destination()
		good := stat(t, dest)

		src.change(t, nil, instKeys("web", 1, 2, 3)...)
		t0 := time.Now()
		synctest.Wait()
		st := tg.Status()
		if st.HeldBy != render.GuardRemoved || !st.HeldUntil.Equal(t0.Add(hold)) {
			t.Errorf("Status() after removing 3 of 4 = held by %q until %v, want %q until %v", st.HeldBy, st.HeldUntil, render.GuardRemoved, t0.Add(hold))
		}
		if !strings.Contains(st.Held, "3 of 4") {
			t.Errorf("Status().Held = %q, want it to say 3 of 4", st.Held)
		}
		time.Sleep(hold - time.Second)
		synctest.Wait()
		if !good.same(t, dest) {
			t.Errorf("destination %v into a %v hold = %q, want it untouched", time.Since(t0), hold, readFile(t, dest))
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got, want := readFile(t, dest), "server web-4\n"; got != want {
			t.Errorf("destination %v after the removal = %q, want %q (the hold ended)", time.Since(t0), got, want)
		}
		if st := tg.Status(); st.Held != "" || !st.HeldUntil.IsZero() {
			t.Errorf("Status() after the hold = held %q until %v, want none", st.Held, st.HeldUntil)
		}
		if n := metricValue(t, reg, "templater_guard_trips_total", "template", "site", "guard", render.GuardRemoved); n != 1 {
			t.Errorf("max_removed_fraction trips = %v, want 1", n)
		}
	})
}

// TestGuardHoldClearsWhenRemovalReverts: instances vanish (held), then come
// back before the hold ends. The file never changed, so nothing is held
// any more, and the runner must not spin on the stale hold.
func TestGuardHoldClearsWhenRemovalReverts(t *testing.T) {
	tests := []struct {
		name   string
		guards render.Guards
		n      int
		gone   []int
	}{
		{"max_removed_fraction", render.Guards{MaxRemovedFraction: 0.5, Hold: 30 * time.Second}, 4, []int{1, 2, 3}},
		{"min_servers", render.Guards{MinServers: 1}, 1, []int{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m, reg := newMetrics()
				initial := fleet(tc.n, "web")
				src := newMemSource(t, initial)
				tg := mkTarget(t, "site", webTmpl, render.TargetConfig{Guards: tc.guards}, render.Options{Metrics: m})
				startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}})
				synctest.Wait()
				good := stat(t, tg.Destination())
				src.change(t, nil, instKeys("web", tc.gone...)...)
				synctest.Wait()
				if st := tg.Status(); st.HeldBy != tc.name {
					t.Fatalf("Status().HeldBy = %q, want %q", st.HeldBy, tc.name)
				}
				time.Sleep(10 * time.Second)
				back := map[string]string{}
				for _, k := range instKeys("web", tc.gone...) {
					back[k] = initial[k]
				}
				src.change(t, back)
				synctest.Wait()
				if st := tg.Status(); st.Held != "" {
					t.Errorf("Status() after the instances came back = held by %q: %q, want none", st.HeldBy, st.Held)
				}
				n := applies(t, reg, "site")
				time.Sleep(time.Minute)
				synctest.Wait()
				if got := applies(t, reg, "site"); got > n+1 {
					t.Errorf("renders in the minute after the instances came back = %d, want at most 1", got-n)
				}
				if !good.same(t, tg.Destination()) {
					t.Errorf("destination = %q, want it untouched", readFile(t, tg.Destination()))
				}
			})
		})
	}
}

// TestGuardMassExpiry documents why mass_expiry never trips. Its check
// runs only when no single service tripped max_removed_fraction, and then
// every service lost at most frac of its instances, so the total lost is
// at most frac of the total: a weighted average of the per-service
// fractions never exceeds the largest of them. The enumeration below
// confirms it for small fleets, and also confirms what does hold: any
// change losing more than frac of the instances overall is held (by the
// per-service guard).
func TestGuardMassExpiry(t *testing.T) {
	const three = `{{ range instances "a" }}{{ .ID }} {{ end }}{{ range instances "b" }}{{ .ID }} {{ end }}{{ range instances "c" }}{{ .ID }} {{ end }}`
	t.Run("one lost of three in each of three services", func(t *testing.T) {
		// 3 of 9 leases lost at once; the guard cannot see it as one event.
		tg := mkTarget(t, "site", three, render.TargetConfig{Guards: render.Guards{MaxRemovedFraction: 0.4}}, render.Options{})
		src := newMemSource(t, fleet(3, "a", "b", "c"))
		if _, err := tg.Apply(t.Context(), src.Current()); err != nil {
			t.Fatal(err)
		}
		snap := src.change(t, nil, append(append(instKeys("a", 1), instKeys("b", 1)...), instKeys("c", 1)...)...)
		if changed, err := tg.Apply(t.Context(), snap); err != nil || !changed {
			t.Errorf("Apply = %v, %v, want true, nil (33%% per service and in total, under 40%%)", changed, err)
		}
	})
	t.Run("enumeration", func(t *testing.T) {
		var tried, held int
		for _, frac := range []float64{0.25, 0.4, 0.5} {
			for na := 1; na <= 3; na++ {
				for nb := 1; nb <= 3; nb++ {
					for ra := 0; ra <= na; ra++ {
						for rb := 0; rb <= nb; rb++ {
							if ra+rb == 0 {
								continue
							}
							kv := fleet(na, "a")
							maps.Copy(kv, fleet(nb, "b"))
							tg := mkTarget(t, "site", three, render.TargetConfig{Guards: render.Guards{MaxRemovedFraction: frac}}, render.Options{})
							src := newMemSource(t, kv)
							if _, err := tg.Apply(t.Context(), src.Current()); err != nil {
								t.Fatal(err)
							}
							var gone []string
							for i := 1; i <= ra; i++ {
								gone = append(gone, instKeys("a", i)...)
							}
							for i := 1; i <= rb; i++ {
								gone = append(gone, instKeys("b", i)...)
							}
							if _, err := tg.Apply(t.Context(), src.change(t, nil, gone...)); err != nil {
								t.Fatal(err)
							}
							tried++
							st := tg.Status()
							what := fmt.Sprintf("fraction %v, a loses %d of %d, b %d of %d", frac, ra, na, rb, nb)
							if st.HeldBy == render.GuardMassExpiry {
								t.Errorf("%s: held by mass_expiry; the argument above is wrong", what)
							}
							if st.HeldBy != "" {
								held++
							}
							if total := float64(ra+rb) / float64(na+nb); total > frac && st.HeldBy == "" {
								t.Errorf("%s: total %.0f%% lost, not held", what, 100*total)
							}
						}
					}
				}
			}
		}
		t.Logf("%d removals tried, %d held, none by %s", tried, held, render.GuardMassExpiry)
	})
}

func TestServiceOrAllPanicThreshold(t *testing.T) {
	instance := func(id, shallow string, draining bool) (string, string) {
		k, v := rec("web", id, shallow)
		if draining {
			v = strings.Replace(v, `"v":1,`, `"v":1,"draining":true,`, 1)
		}
		return k, v
	}
	kv := func(ins ...[3]string) map[string]string {
		out := map[string]string{}
		for _, in := range ins {
			k, v := instance(in[0], in[1], in[2] == "draining")
			out[k] = v
			if in[2] == "maint" {
				out[keys.Maintenance("web", in[0])] = `{"reason":"x"}`
			}
		}
		return out
	}
	tests := []struct {
		name      string
		threshold string
		kv        map[string]string
		want      string
		wantPanic int
	}{
		{
			name: "below threshold: every instance not taken out", threshold: "0.5",
			kv: kv([3]string{"web-1", "passing"}, [3]string{"web-2", "critical"}, [3]string{"web-3", "critical"},
				[3]string{"web-4", "critical", "maint"}, [3]string{"web-5", "passing", "draining"}),
			want: "web-1 web-2 web-3 ", wantPanic: 1,
		},
		{
			name: "at threshold: routable only", threshold: "0.5",
			kv:   kv([3]string{"web-1", "passing"}, [3]string{"web-2", "warning"}, [3]string{"web-3", "critical"}, [3]string{"web-4", "critical"}),
			want: "web-1 web-2 ",
		},
		{
			name: "threshold 0: never", threshold: "0",
			kv:   kv([3]string{"web-1", "critical"}, [3]string{"web-2", "critical"}),
			want: "",
		},
		{
			name: "threshold 1: any unhealthy instance", threshold: "1",
			kv:   kv([3]string{"web-1", "passing"}, [3]string{"web-2", "critical"}),
			want: "web-1 web-2 ", wantPanic: 1,
		},
		{name: "no instances", threshold: "0.5", kv: map[string]string{}, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, reg := newMetrics()
			text := `{{ range serviceOrAll "web" ` + tc.threshold + ` }}{{ .ID }} {{ end }}`
			tg := mkTarget(t, "site", text, render.TargetConfig{}, render.Options{Metrics: m})
			snap, _ := snapshot(t, tc.kv)
			if _, err := tg.Apply(t.Context(), snap); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if got := readFile(t, tg.Destination()); got != tc.want {
				t.Errorf("Render(%q) = %q, want %q", text, got, tc.want)
			}
			if got := metricValue(t, reg, "templater_guard_trips_total", "template", "site", "guard", render.GuardPanic); int(got) != tc.wantPanic {
				t.Errorf("panic trips = %v, want %d", got, tc.wantPanic)
			}
		})
	}
	t.Run("bad threshold", func(t *testing.T) {
		tmpl, err := render.Parse("t.tmpl", `{{ serviceOrAll "web" 1.5 }}`)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := render.Execute(tmpl, emptySnapshot(t), keys); err == nil || !strings.Contains(err.Error(), "threshold 1.5") {
			t.Errorf("Render(serviceOrAll 1.5) error = %v, want one naming the threshold", err)
		}
	})
}
