// Package haproxy_test keeps examples/haproxy from rotting: it renders
// haproxy.cfg.tmpl against testdata/input.json, compares the result with
// testdata/haproxy.cfg.golden (go test ./examples/haproxy -update rewrites
// it), validates it with a real `haproxy -c`, and runs it end to end.
package haproxy_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rewire/rewire/internal/haproxytest"
	"github.com/rewire/rewire/internal/testutil"
	"github.com/rewire/rewire/registry/schema"
	"github.com/rewire/rewire/render"
)

var update = flag.Bool("update", false, "rewrite testdata/haproxy.cfg.golden")

const (
	templatePath = "haproxy.cfg.tmpl"
	inputPath    = "testdata/input.json"
	goldenPath   = "testdata/haproxy.cfg.golden"
)

var keys = schema.Keys{Prefix: "/rewire"}

// invalid are the records of testdata/input.json the schema must reject;
// neither their ids nor their addresses may reach the rendered file.
var invalid = []struct{ key, id, address string }{
	{"/rewire/services/web/bad-newline", "bad-newline", "10.6.6.1"},
	{"/rewire/services/web/bad-space", "bad-space", "10.6.6.2"},
	{"/rewire/services/api/bad-port0", "bad-port0", "10.6.6.3"},
	{"/rewire/services/api/bad-port70000", "bad-port70000", "10.6.6.4"},
	{"/rewire/services/evil/bad-tag", "bad-tag", "10.6.6.5"},
	{"/rewire/services/db/bad-mismatch", "db-9", "10.6.6.6"},
}

// readInput reads a JSON object of etcd key → value.
func readInput(t testing.TB, path string) map[string]string {
	t.Helper()
	return testutil.ReadKV(t, path)
}

// snapshot is testutil.Snapshot at rev 42.
func snapshot(t *testing.T, kv map[string]string) (*schema.Snapshot, []string) {
	t.Helper()
	return testutil.Snapshot(t, keys, kv, 42)
}

func renderExample(t *testing.T, snap *schema.Snapshot) ([]byte, error) {
	t.Helper()
	text, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := render.Parse(filepath.Base(templatePath), string(text))
	if err != nil {
		t.Fatal(err)
	}
	return render.Execute(tmpl, snap, keys)
}

func TestGolden(t *testing.T) {
	snap, rejected := snapshot(t, readInput(t, inputPath))
	var want []string
	for _, in := range invalid {
		want = append(want, in.key)
	}
	slices.Sort(want)
	if !slices.Equal(rejected, want) {
		t.Errorf("keys rejected by Put = %q, want %q", rejected, want)
	}
	got, err := renderExample(t, snap)
	if err != nil {
		t.Fatalf("Render(%q): %v", templatePath, err)
	}
	if *update {
		if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("%v (run go test ./examples/haproxy -update to create it)", err)
	}
	if !bytes.Equal(got, golden) {
		t.Errorf("Render(%q) = %q, want %q (run go test ./examples/haproxy -update if the change is intended)", templatePath, got, golden)
	}

	t.Run("byte-stable", func(t *testing.T) {
		again, err := renderExample(t, snap)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, got) {
			t.Errorf("second Render(%q) = %q, want %q", templatePath, again, got)
		}
	})

	t.Run("invalid records are not rendered", func(t *testing.T) {
		for _, in := range invalid {
			for _, s := range []string{in.id, in.address} {
				if bytes.Contains(got, []byte(s)) {
					t.Errorf("Render(%q) contains %q from the invalid record %s", templatePath, s, in.key)
				}
			}
		}
		for _, s := range []string{"injected", "backup", "evil"} {
			if bytes.Contains(got, []byte(s)) {
				t.Errorf("Render(%q) contains %q", templatePath, s)
			}
		}
	})

	t.Run("server lines", func(t *testing.T) {
		tests := []struct{ id, line string }{
			{"web-1", "server web-1 10.0.0.11:8080 weight 100  # passing"},
			{"web-2", "server web-2 10.0.0.12:8080 weight 50  # warning"},
			{"web-3", "server web-3 10.0.0.13:8080 weight 100 disabled  # critical"},
			{"web-4", "server web-4 10.0.0.14:8080 weight 0  # passing, draining rewire:drain"},
			{"api-2", "server api-2 10.0.1.2:9000 weight 100 disabled  # passing, maintenance"},
			{"api-3", "server api-3 [2001:db8::3]:9000 weight 10  # passing"},
			{"api-4", "server api-4 api-4.internal.example:9000 weight 100  # warning"},
			{"db-1", "server db-1 10.0.2.1:5432 weight 256  # passing"},
			{"db-2", "server db-2 10.0.2.2:5432 weight 0  # passing"},
			{"cache-1", "server cache-1 10.0.3.1:6379 weight 100 disabled  # passing, maintenance"},
		}
		for _, tc := range tests {
			t.Run(tc.id, func(t *testing.T) {
				if !bytes.Contains(got, []byte("\n    "+tc.line+"\n")) {
					t.Errorf("Render(%q) has no line %q", templatePath, tc.line)
				}
			})
		}
	})

	t.Run("server lines not cached one by one", func(t *testing.T) {
		for _, v := range []string{"false", "true"} {
			kv := readInput(t, inputPath)
			kv["/rewire/haproxy/cache_servers"] = v
			snap, _ := snapshot(t, kv)
			out, err := renderExample(t, snap)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, got) {
				t.Errorf("with haproxy/cache_servers=%s Render(%q) = %q, want the same bytes as by default: %q", v, templatePath, out, got)
			}
		}
	})

	t.Run("haproxy -c", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "haproxy.cfg")
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := haproxytest.Check(t, path); err != nil {
			t.Errorf("rendered %s is not a valid haproxy config: %v", templatePath, err)
		}
	})
}

// TestKeys covers the free-form keys the template reads, each rendering
// checked by a real haproxy.
func TestKeys(t *testing.T) {
	tests := []struct {
		name    string
		kv      map[string]string
		want    []string // lines the output must contain
		notWant []string // substrings it must not contain
		wantErr string   // "" means the render must succeed
	}{
		{
			name:    "defaults",
			want:    []string{"    bind 127.0.0.1:8000"},
			notWant: []string{"stats socket", "server-state-file", "load-server-state-from-file"},
		},
		{
			name: "server state file",
			kv:   map[string]string{"/rewire/haproxy/state_file": "/var/lib/haproxy/server-state"},
			want: []string{"    server-state-file /var/lib/haproxy/server-state", "    load-server-state-from-file global"},
		},
		{
			name:    "relative server state file is refused",
			kv:      map[string]string{"/rewire/haproxy/state_file": "state"},
			wantErr: "key haproxy/state_file",
		},
		{
			name: "custom bind and stats socket",
			kv:   map[string]string{"/rewire/haproxy/bind": " 127.0.0.1:9999\n", "/rewire/haproxy/stats_socket": "/run/haproxy/admin.sock"},
			want: []string{"    bind 127.0.0.1:9999", "    stats socket /run/haproxy/admin.sock mode 600 level admin"},
		},
		{
			name: "ipv6 bind",
			kv:   map[string]string{"/rewire/haproxy/bind": "[::1]:8000"},
			want: []string{"    bind [::1]:8000"},
		},
		{
			name:    "empty registry",
			want:    []string{"    default_backend _no_service"},
			notWant: []string{"use_backend", "    server "},
		},
		{
			name:    "bind with a newline is refused",
			kv:      map[string]string{"/rewire/haproxy/bind": "127.0.0.1:8000\n    stats socket /tmp/x level admin"},
			wantErr: "key haproxy/bind",
		},
		{
			name:    "cache_servers must be true or false",
			kv:      map[string]string{"/rewire/haproxy/cache_servers": "yes"},
			wantErr: `key haproxy/cache_servers = "yes": want true or false`,
		},
		{
			name:    "stats socket with a comment is refused",
			kv:      map[string]string{"/rewire/haproxy/stats_socket": "/run/a.sock#x"},
			wantErr: "key haproxy/stats_socket",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap, _ := snapshot(t, tc.kv)
			got, err := renderExample(t, snap)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Render(%q) error = %v, want one containing %q", tc.name, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Render(%q): %v", tc.name, err)
			}
			for _, w := range tc.want {
				if !bytes.Contains(got, []byte("\n"+w+"\n")) {
					t.Errorf("Render(%q) = %q, want a line %q", tc.name, got, w)
				}
			}
			for _, nw := range tc.notWant {
				if bytes.Contains(got, []byte(nw)) {
					t.Errorf("Render(%q) = %q, want no %q", tc.name, got, nw)
				}
			}
			path := filepath.Join(t.TempDir(), "haproxy.cfg")
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := haproxytest.Check(t, path); err != nil {
				t.Errorf("Render(%q) is not a valid haproxy config: %v", tc.name, err)
			}
		})
	}
}
