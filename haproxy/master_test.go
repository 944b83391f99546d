package haproxy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/freeport"

	"github.com/rewire/rewire/haproxy"
	"github.com/rewire/rewire/internal/haproxytest"
)

const masterCfg = `global
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
    server s1 127.0.0.1:1
`

func TestMasterReload(t *testing.T) {
	haproxytest.Binary(t)
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	masterCfg := strings.Replace(masterCfg, "127.0.0.1:PORT", addr, 1)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(masterCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := haproxytest.Start(t, cfg)
	m := haproxy.NewMaster(p.MasterSocket())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	before, err := m.ShowProc(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before.Master.PID != p.Pid() || len(before.Workers) == 0 {
		t.Fatalf("ShowProc = %+v, want master %d with a worker", before, p.Pid())
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatalf("Reload of a valid config: %v", err)
	}
	after, err := m.ShowProc(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Master.Reloads != before.Master.Reloads+1 {
		t.Errorf("master reloads %d → %d, want one more", before.Master.Reloads, after.Master.Reloads)
	}

	// A broken file: the reload fails and the old worker keeps serving.
	if err := os.WriteFile(cfg, []byte(masterCfg+"    bogus-keyword\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx); !errors.Is(err, haproxy.ErrReloadFailed) {
		t.Fatalf("Reload of a broken config = %v, want ErrReloadFailed", err)
	}
	// Put the good file back so the harness's cleanup sees a healthy master.
	if err := os.WriteFile(cfg, []byte(masterCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatalf("Reload after fixing the config: %v", err)
	}
}
