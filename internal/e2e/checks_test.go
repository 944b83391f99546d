package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/etcdtest"
	"github.com/rewire/rewire/internal/testutil"
)

// TestRegistrarForkingCheck runs the registrar with an exec check given as
// a path relative to the config file (the process runs elsewhere) whose
// script forks a long sleep into the background, every 100ms: the check
// runs and passes, and no sleep is left after ten intervals, nor after
// SIGTERM.
func TestRegistrarForkingCheck(t *testing.T) {
	skipShort(t)
	e := etcdtest.Start(t)
	cli := e.Client(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "checks"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := writeFile(t, filepath.Join(dir, "checks", "fork.sh"), "#!/bin/sh\nsleep 765.4321 &\necho forked\n")
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "registrar.yaml"), fmt.Sprintf(`etcd: {endpoints: [%q], prefix: /rw}
node: vm1
lease_ttl: 2s
listen: %s
services:
  - name: web
    id: web-1
    address: 127.0.0.1
    port: 8080
    checks:
      - {name: fork, exec: ["checks/fork.sh"], interval: 100ms, timeout: 5s}
`, e.Endpoints[0], listen))
	p := start(t, bins.registrar, "run", "-c", cfg)
	const sleep = "sleep\x00765.4321\x00"
	waitFor(t, 10*time.Second, "web passing", func() bool {
		return shallow(record(t, cli, "/rw/services/web/web-1")) == "passing"
	})
	waitFor(t, 20*time.Second, "ten probes", func() bool { return metric(listen, "registrar_checks_total") >= 10 })
	after10 := testutil.CountProcs(t, sleep)
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Errorf("registrar exit code %d after SIGTERM, want 0", code)
	}
	afterTerm := testutil.CountProcs(t, sleep)
	t.Logf("background sleeps left: %d after 10+ intervals, %d after SIGTERM", after10, afterTerm)
	if after10 != 0 || afterTerm != 0 {
		t.Errorf("background sleeps left: %d after 10+ intervals, %d after SIGTERM; want 0 and 0", after10, afterTerm)
	}
}
