package e2e

import (
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs what `make demo` runs, for a few flips of web-2, and sends
// a request through haproxy when it is installed.
func TestDemo(t *testing.T) {
	skipShort(t)
	example, err := filepath.Abs("../../examples/haproxy")
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, bins.demo, "--dir", filepath.Join(t.TempDir(), "demo-run"), "--bin", bins.dir,
		"--example", example, "--flap", "1500ms", "--duration", "9s")
	waitFor(t, 30*time.Second, "demo started", func() bool { return strings.Contains(p.out.String(), "Ctrl-C stops everything") })
	out := p.out.String()
	if _, err := exec.LookPath("haproxy"); err == nil {
		m := regexp.MustCompile(`curl (http://\S+/web/)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("demo did not start haproxy:\n%s", out)
		}
		resp, err := http.Get(m[1])
		if err != nil {
			t.Fatalf("GET %s through haproxy: %v", m[1], err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "hello from web-") {
			t.Errorf("GET %s = %d %q, want 200 from a web instance", m[1], resp.StatusCode, body)
		}
	}
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("demo exit code %d\n%s", code, p.out)
	}
	out = p.out.String()
	flips := regexp.MustCompile(`web-2 (healthy|failing) → haproxy.cfg updated in (\d+) ms`).FindAllStringSubmatch(out, -1)
	if len(flips) < 2 || strings.Contains(out, "NOT reflected") {
		t.Errorf("want at least 2 flips reflected in haproxy.cfg, got %d:\n%s", len(flips), out)
	}
	for _, f := range flips {
		t.Logf("flip to %s reached haproxy.cfg in %s ms", f[1], f[2])
	}
	if !strings.Contains(out, "stopped registrar") {
		t.Errorf("demo did not stop cleanly:\n%s", out)
	}
}
