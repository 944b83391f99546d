package haproxy_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rewire/rewire/haproxy"
)

// TestRuntimeApplyReasons: every change the runtime API cannot take gets
// a reload with its reason, counted, and none of these cases needs a
// running haproxy (nothing is sent before the reason is known).
func TestRuntimeApplyReasons(t *testing.T) {
	off := false
	noSocket := strings.Replace(diffBase, "    stats socket /tmp/admin.sock mode 600 level admin\n", "", 1)
	weight := `weight 50`
	cases := []struct {
		name       string
		cfg        haproxy.RuntimeConfig
		prev, next string
		noPrev     bool
		reason     string
	}{
		{"live off", haproxy.RuntimeConfig{Live: &off}, diffBase, edit(t, weight, "weight 60"), false, haproxy.ReasonLiveOff},
		{"first render", haproxy.RuntimeConfig{}, "", diffBase, true, haproxy.ReasonFirst},
		{"previous unparsable", haproxy.RuntimeConfig{}, strings.Replace(diffBase, "server web-1 10.0.0.11:8080 weight 100", "server web-1", 1), diffBase, false, haproxy.ReasonParse},
		{"structure", haproxy.RuntimeConfig{}, diffBase, edit(t, "balance leastconn", "balance roundrobin"), false, haproxy.ReasonStructure},
		{"no socket", haproxy.RuntimeConfig{}, noSocket, strings.Replace(noSocket, weight, "weight 60", 1), false, haproxy.ReasonNoSocket},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := haproxy.NewRuntimeMetrics(reg)
			r := haproxy.NewRuntime(c.cfg, haproxy.RuntimeOptions{Name: "lb", Metrics: m})
			var prev []byte
			if !c.noPrev {
				prev = []byte(c.prev)
			}
			done, err := r.Change(prev, []byte(c.next)).Apply(context.Background())
			var rn *haproxy.ReloadNeeded
			if !errors.As(err, &rn) || rn.Reason != c.reason {
				t.Fatalf("Apply = %q, %v; want a reload for %s", done, err, c.reason)
			}
			if n := reloads(t, reg, c.reason); n != 1 {
				t.Errorf("templater_haproxy_reloads_total{reason=%s} = %v, want 1", c.reason, n)
			}
		})
	}
}

// TestRuntimeNothingToApply: a change haproxy does not see (a comment)
// goes through without a reload and without a socket.
func TestRuntimeNothingToApply(t *testing.T) {
	r := haproxy.NewRuntime(haproxy.RuntimeConfig{Socket: filepath.Join(t.TempDir(), "none.sock")}, haproxy.RuntimeOptions{})
	done, err := r.Change([]byte(diffBase), []byte(diffBase+"# a comment\n")).Apply(context.Background())
	if err != nil || done == "" {
		t.Fatalf("Apply(comment only) = %q, %v; want done without a reload", done, err)
	}
}

// TestRuntimeEarly: a change goes early only when it is server-only, has a
// previous file and a socket, and live_first is not off; a socket nobody
// listens on makes it go early and fail, which Apply turns into a reload.
func TestRuntimeEarly(t *testing.T) {
	off := false
	next := edit(t, "weight 50", "weight 60")
	dead := haproxy.RuntimeConfig{Socket: filepath.Join(t.TempDir(), "none.sock")}
	for _, c := range []struct {
		name       string
		cfg        haproxy.RuntimeConfig
		prev, next []byte
		early      bool
	}{
		{"no previous file", dead, nil, []byte(next), false},
		{"structure", dead, []byte(diffBase), []byte(edit(t, "balance leastconn", "balance roundrobin")), false},
		{"live_first off", haproxy.RuntimeConfig{Socket: dead.Socket, LiveFirst: &off}, []byte(diffBase), []byte(next), false},
		{"live off", haproxy.RuntimeConfig{Socket: dead.Socket, Live: &off}, []byte(diffBase), []byte(next), false},
		{"server-only", dead, []byte(diffBase), []byte(next), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ch := haproxy.NewRuntime(c.cfg, haproxy.RuntimeOptions{}).Change(c.prev, c.next)
			if got := ch.Early(context.Background()); got != c.early {
				t.Fatalf("Early = %t, want %t", got, c.early)
			}
			if !c.early {
				return
			}
			_, err := ch.Apply(context.Background())
			var rn *haproxy.ReloadNeeded
			if !errors.As(err, &rn) || rn.Reason != haproxy.ReasonRefused {
				t.Errorf("Apply after a refused early apply = %v, want a reload for %s", err, haproxy.ReasonRefused)
			}
		})
	}
}

// reloads returns templater_haproxy_reloads_total{reason=reason}.
func reloads(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "templater_haproxy_reloads_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
