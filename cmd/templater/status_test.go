package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewire/rewire/internal/freeport"
	"github.com/rewire/rewire/render"
)

// TestStatusFindsTheTemplaterFromItsConfig serves a status with one
// failing template and asks for it with -c, as an operator would of a
// running templater.
func TestStatusFindsTheTemplaterFromItsConfig(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(Status{Etcd: "127.0.0.1:2379", Templates: []render.TargetStatus{
			{Name: "lb", Destination: "/etc/haproxy/haproxy.cfg"},
			{Name: "app", Destination: "/etc/app.conf", Error: "check failed: exit status 1"},
		}})
	}))
	defer srv.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "templater.yaml")
	source, err := filepath.Abs("testdata/ok.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	writeConfig(t, cfg, "listen: "+strings.TrimPrefix(srv.URL, "http://")+"\ntemplates:\n  - {name: lb, source: "+source+", destination: out.cfg}\n")

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"templater", "status", "-c", cfg}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stdout.String(), "failing: check failed") {
		t.Errorf("status -c = %d, stdout %q; want 1 and the failing template", code, stdout.String())
	}
	if want := "templater: 1 of 2 templates failing: app\n"; stderr.String() != want {
		t.Errorf("status -c: stderr %q, want %q", stderr.String(), want)
	}

	// Nothing listening at the file's address: the error says where the
	// address came from.
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	writeConfig(t, cfg, "listen: "+addr+"\ntemplates:\n  - {name: lb, source: "+source+", destination: out.cfg}\n")
	stdout.Reset()
	stderr.Reset()
	code = run(context.Background(), []string{"templater", "status", "-c", cfg}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "no templater answering on "+addr+" (from "+cfg) {
		t.Errorf("status -c with nothing listening = %d, stderr %q; want 1 naming %s and %s", code, stderr.String(), addr, cfg)
	}
}

func writeConfig(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDryRunWithEmbeddedEtcdWritesNothing: `render --dry-run --etcd
// embedded` must not leave the embedded etcd's data directory behind.
func TestDryRunWithEmbeddedEtcdWritesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	cfg, err := filepath.Abs("testdata/ok.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"templater", "render", "-c", cfg, "--once", "--dry-run",
		"--etcd", "embedded", "--embedded-listen", addr}, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "### template lb") {
		t.Fatalf("render --dry-run --etcd embedded = %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("render --dry-run left %v in its working directory", left)
	}
}

func TestVersionAndCompletion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--version"}, "templater version "},
		{[]string{"completion", "zsh"}, "bashcompinit"},
		{[]string{"status", "--help"}, "--config value, -c value"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append([]string{"templater"}, tc.args...), &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), tc.want) {
			t.Errorf("templater %v = %d, stdout %q; want 0 and %q", tc.args, code, stdout.String(), tc.want)
		}
	}
}
