package render_test

import (
	"context"
	"errors"
	"github.com/rewire/rewire/internal/freeport"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/haproxytest"
	"github.com/rewire/rewire/render"
	"github.com/rewire/rewire/render/haproxy"
)

// masterTmpl renders a valid haproxy config unless app/broken is set.
const masterTmpl = `global
    maxconn 64
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:PORT
    default_backend be
backend be
    balance {{ keyOrDefault "app/balance" "roundrobin" }}
{{- if keyOrDefault "app/broken" "" }}
    no-such-keyword
{{- end }}
    server s1 127.0.0.1:1
`

// TestMasterCLIReload: with haproxy.master and no reload command, a
// structural change reloads through the master CLI; a config haproxy
// rejects (no check configured here, to let it through) makes the reload
// fail, and the previous file is put back and reloaded.
func TestMasterCLIReload(t *testing.T) {
	haproxytest.Binary(t)
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(masterTmpl, "127.0.0.1:PORT", addr, 1)

	dest := filepath.Join(t.TempDir(), "haproxy.cfg")
	src := newMemSource(t, map[string]string{})
	tg := mkTarget(t, "lb", text, render.TargetConfig{Destination: dest}, render.Options{})
	if _, err := tg.Render(src.Current()); err != nil {
		t.Fatal(err)
	}
	first, _ := tg.Render(src.Current())
	writeFile(t, dest, string(first))
	p := haproxytest.Start(t, dest)

	tg = mkTarget(t, "lb", text, render.TargetConfig{Destination: dest, HAProxy: &render.HAProxyConfig{Master: p.MasterSocket()}}, render.Options{})
	m := haproxy.NewMaster(p.MasterSocket())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	reloads := func() int {
		st, err := m.ShowProc(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Master.Reloads
	}
	r0 := reloads()

	snap := src.change(t, map[string]string{"/rewire/app/balance": "leastconn"})
	if changed, err := tg.Apply(ctx, snap); err != nil || !changed {
		t.Fatalf("Apply(balance leastconn) = %v, %v, want true, nil", changed, err)
	}
	if got := reloads(); got != r0+1 {
		t.Errorf("master reloads = %d, want %d", got, r0+1)
	}
	good := readFile(t, dest)

	snap = src.change(t, map[string]string{"/rewire/app/broken": "yes"})
	_, err = tg.Apply(ctx, snap)
	var e *render.Error
	if !errors.As(err, &e) || e.Stage != render.StageReload {
		t.Fatalf("Apply(broken) error = %v, want a reload failure", err)
	}
	if now := readFile(t, dest); now != good {
		t.Errorf("destination after a rejected reload =\n%s\nwant the previous file back\n%s", now, good)
	}
	if st, err := m.ShowProc(ctx); err != nil || len(st.Workers) == 0 {
		t.Errorf("show proc after the rollback = %+v, %v: want a serving worker", st, err)
	}
}
