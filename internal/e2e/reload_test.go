package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/etcdtest"
)

// TestRegistrarReloadsEditedConfig edits registrar.yaml under a running
// registrar: an added service registers, the unchanged one is not
// rewritten, an invalid edit is rejected and the running config stays,
// and SIGHUP reloads too.
func TestRegistrarReloadsEditedConfig(t *testing.T) {
	skipShort(t)
	e := etcdtest.Start(t)
	cli := e.Client(t)
	app := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer app.Close()
	base := fmt.Sprintf(`etcd: {endpoints: [%q], prefix: /rw}
node: vm1
listen: %s
services:
  - {name: web, id: web-1, address: 127.0.0.1, port: 8080, checks: [{name: alive, http: %q, interval: 200ms}]}
`, e.Endpoints[0], freeAddr(t), app.URL)
	path := writeFile(t, filepath.Join(t.TempDir(), "registrar.yaml"), base)
	p := start(t, bins.registrar, "run", "-c", path)
	waitFor(t, 10*time.Second, "web registered", func() bool { return shallow(record(t, cli, "/rw/services/web/web-1")) == "passing" })
	webRev := get(t, cli, "/rw/services/web/web-1").Kvs[0].ModRevision

	// Save an edit the way editors do: write a new file and rename it over.
	save := func(text string) {
		tmp := path + ".tmp"
		writeFile(t, tmp, text)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	save(base + "  - {name: api, id: api-1, address: 127.0.0.1, port: 9090}\n")
	waitFor(t, 5*time.Second, "api registered after the edit", func() bool { return record(t, cli, "/rw/services/api/api-1") != nil })
	if rev := get(t, cli, "/rw/services/web/web-1").Kvs[0].ModRevision; rev != webRev {
		t.Errorf("web-1 rewritten by a reload that did not change it: mod_revision %d → %d", webRev, rev)
	}

	save(base + "  - {name: api, id: api-1, address: 127.0.0.1, port: 90900}\n")
	waitFor(t, 5*time.Second, "rejection logged", func() bool { return strings.Contains(p.out.String(), "config reload rejected") })
	if out := p.out.String(); !strings.Contains(out, "services[1].port: 90900 out of range") {
		t.Errorf("rejection does not name the field:\n%s", out)
	}
	if record(t, cli, "/rw/services/api/api-1") == nil {
		t.Error("api-1 deregistered by a rejected config")
	}

	// SIGHUP after fixing the file (a reload of the same content is a no-op).
	writeFile(t, path, base)
	p.signal(t, syscall.SIGHUP)
	waitFor(t, 5*time.Second, "api deregistered after it was removed", func() bool { return record(t, cli, "/rw/services/api/api-1") == nil })
	select {
	case <-p.done:
		t.Fatalf("registrar exited: %v", p.err)
	default:
	}
}
