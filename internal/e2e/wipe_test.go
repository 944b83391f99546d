package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/testutil"
)

// wipeRegistrar registers web-1..3, each checked by HTTP against its own
// server.
func wipeRegistrar(endpoint, listen string, urls []string) string {
	s := fmt.Sprintf(`etcd: {endpoints: [%q], prefix: /rw}
node: vm1
lease_ttl: 2s
listen: %s
services:
`, endpoint, listen)
	for i, u := range urls {
		s += fmt.Sprintf(`  - name: web
    id: web-%d
    address: 127.0.0.%d
    port: 8080
    checks:
      - {name: alive, http: %q, interval: 100ms, timeout: 1s}
`, i+1, i+1, u)
	}
	return s
}

// fileWatch samples a file every few milliseconds until stopped, and
// remembers every distinct content it saw.
type fileWatch struct {
	mu   sync.Mutex
	seen []string
	stop chan struct{}
	done chan struct{}
}

func watchFile(path string) *fileWatch {
	f := &fileWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		last := ""
		for {
			select {
			case <-f.stop:
				return
			case <-tick.C:
			}
			if s := readFile(path); s != last {
				last = s
				f.mu.Lock()
				f.seen = append(f.seen, s)
				f.mu.Unlock()
			}
		}
	}()
	return f
}

func (f *fileWatch) end() []string {
	close(f.stop)
	<-f.done
	return f.seen
}

// TestTemplaterEtcdWiped: etcd is wiped and restarted empty (same address,
// same cluster ID, revisions from 1 again), at once or after 30 s down.
// The registrar registers again on the new store; the templater notices
// the new store, re-reads it, and its file shows the new truth (a health
// change made after the wipe) within seconds, never an empty backend on
// the way. Before, the watch resumed on the new store at the old revision
// and dropped every event: a critical instance stayed passing in the file.
func TestTemplaterEtcdWiped(t *testing.T) {
	skipShort(t)
	for _, down := range []time.Duration{0, outage} {
		t.Run(fmt.Sprintf("down %s", down), func(t *testing.T) {
			if down > 0 {
				testutil.Long(t, fmt.Sprintf("stops etcd for %s", down))
			}
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "web.tmpl"), `{{ range instances "web" }}server {{ .ID }} {{ .Health.Shallow }}
{{ end }}`)
			r := startProd(t, dir, "")
			var sick atomic.Bool
			var urls []string
			for i := range 3 {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					if i == 1 && sick.Load() {
						w.WriteHeader(http.StatusInternalServerError)
					}
				}))
				t.Cleanup(srv.Close)
				urls = append(urls, srv.URL)
			}
			cfg := writeFile(t, filepath.Join(dir, "registrar.yaml"), wipeRegistrar(r.etcd.Endpoints[0], freeAddr(t), urls))
			reg := start(t, bins.registrar, "run", "-c", cfg)
			all := "server web-1 passing\nserver web-2 passing\nserver web-3 passing\n"
			waitFor(t, 20*time.Second, "three passing servers", func() bool { return readFile(r.dest) == all })
			// History, so that the old store is well ahead of the new one.
			for i := range 50 {
				put(t, r.cli, "/rw/app/n", fmt.Sprint(i))
			}

			fw := watchFile(r.dest)
			if down == 0 {
				r.etcd.Wipe(t)
			} else {
				r.etcd.Stop()
				time.Sleep(down) // the outage itself, not a synchronisation
				r.etcd.Wipe(t)
			}
			wiped := time.Now()
			sick.Store(true) // the new truth: web-2 fails after the wipe
			want := "server web-1 passing\nserver web-2 critical\nserver web-3 passing\n"
			waitFor(t, 30*time.Second, "web-2 critical in the file", func() bool { return readFile(r.dest) == want })
			t.Logf("the file showed the new store's truth %v after etcd came back empty", time.Since(wiped).Round(time.Millisecond))
			for _, s := range fw.end() {
				if strings.Count(s, "server web-") < 3 {
					t.Errorf("the file went through %q on the way: a server missing", s)
				}
			}
			st := mustStatus(t, r.listen)
			if st.StoreChange.Count < 1 || st.StoreChange.Reason == "" {
				t.Errorf("status store_change = %+v, want the new store reported", st.StoreChange)
			}
			alive(t, r.p)
			alive(t, reg)
		})
	}
}
