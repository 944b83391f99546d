package haproxytest_test

import (
	"fmt"
	"github.com/rewire/rewire/internal/freeport"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/haproxytest"
)

// config returns a haproxy config whose frontend answers every request
// with body itself.
func config(bind, body string) string {
	return fmt.Sprintf(`global
    maxconn 256

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend fe
    bind %s
    http-request return status 200 content-type text/plain string %s
`, bind, body)
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// freeAddr returns a 127.0.0.1 address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		cfg     string
		wantErr string // "" means valid
	}{
		{name: "valid", cfg: config("127.0.0.1:8000", "ok")},
		{name: "unknown keyword", cfg: config("127.0.0.1:8000", "ok") + "    no-such-keyword on\n", wantErr: "unknown keyword 'no-such-keyword'"},
		{name: "bad bind", cfg: config("127.0.0.1:99999", "ok"), wantErr: "99999"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "haproxy.cfg")
			writeFile(t, path, tc.cfg)
			err := haproxytest.Check(t, path)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Check(%q) = %v, want nil", tc.name, err)
			case tc.wantErr != "" && err == nil:
				t.Errorf("Check(%q) = nil, want an error containing %q", tc.name, tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("Check(%q) = %q, want it to contain %q", tc.name, err, tc.wantErr)
			}
		})
	}
}

// waitBody polls url until it answers with want, or fails the test after
// a deadline.
func waitBody(t *testing.T, client *http.Client, url, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for {
		resp, err := client.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%s %q", resp.Status, b)
			if string(b) == want {
				return
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s = %s, want body %q", url, last, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartReload(t *testing.T) {
	addr := freeAddr(t)
	url := "http://" + addr + "/"
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	writeFile(t, path, config(addr, "gen1"))
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()

	p := haproxytest.Start(t, path)
	if p.Pid() <= 0 {
		t.Fatalf("Pid() = %d, want a process id", p.Pid())
	}
	// Start returns once a worker exists; its listener is bound by then.
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s right after Start: %v", url, err)
	}
	resp.Body.Close()
	waitBody(t, client, url, "gen1")
	before, err := p.MasterCLI("show proc")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(before, "master") || !strings.Contains(before, "worker") {
		t.Fatalf(`MasterCLI("show proc") = %q, want a master and a worker`, before)
	}

	t.Run("reload", func(t *testing.T) {
		writeFile(t, path, config(addr, "gen2"))
		if err := p.Reload(); err != nil {
			t.Fatal(err)
		}
		waitBody(t, client, url, "gen2")
		after, err := p.MasterCLI("show proc")
		if err != nil {
			t.Fatal(err)
		}
		if after == before {
			t.Errorf(`MasterCLI("show proc") after Reload = %q, unchanged`, after)
		}
	})

	t.Run("failed reload keeps the old worker", func(t *testing.T) {
		pid := p.Pid()
		writeFile(t, path, config(addr, "gen3")+"    no-such-keyword on\n")
		err := p.Reload()
		if err == nil {
			t.Fatal("Reload() with an invalid config = nil, want an error")
		}
		if !strings.Contains(err.Error(), "no-such-keyword") {
			t.Errorf("Reload() = %q, want haproxy's complaint about no-such-keyword", err)
		}
		waitBody(t, client, url, "gen2")
		if p.Pid() != pid {
			t.Errorf("Pid() = %d after a failed reload, want %d", p.Pid(), pid)
		}
	})

	t.Run("reload after a failed one", func(t *testing.T) {
		writeFile(t, path, config(addr, "gen4"))
		if err := p.Reload(); err != nil {
			t.Fatal(err)
		}
		waitBody(t, client, url, "gen4")
	})
}

func TestMasterCLIUnknownCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	writeFile(t, path, config(freeAddr(t), "ok"))
	p := haproxytest.Start(t, path)
	out, err := p.MasterCLI("no-such-command")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Unknown command") {
		t.Errorf(`MasterCLI("no-such-command") = %q, want haproxy's "Unknown command" help`, out)
	}
}
