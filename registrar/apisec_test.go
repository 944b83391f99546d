package registrar

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/etcdtest"
	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/registry/schema"
)

// TestLocalAPINotAnyonesSwitch tries the local API as another local
// process would: without credentials it cannot put anything in
// maintenance or push a check; with them it acts on this registrar's own
// instances only, under the name the server authenticated, and never
// undoes an operator's maintenance.
func TestLocalAPINotAnyonesSwitch(t *testing.T) {
	e := etcdtest.Start(t)
	token := "0123456789abcdef-local-token"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(service("app", CheckConfig{Name: "push", TTL: time.Minute}))
	cfg.APITokenFile = tokenFile
	h := startAgent(t, e, cfg)
	waitFor(t, 5*time.Second, func() bool { return len(h.a.Instances()) == 1 }, "app published")
	anyone, wrong, withToken, sock := tcpAPI(t, h, ""), tcpAPI(t, h, "not-the-token"), tcpAPI(t, h, token), socketAPI(t, h)
	svcKey, instKey := testKeys.Maintenance("app", ""), testKeys.Maintenance("app", "app-1")

	// Anyone who reaches the TCP listener can read, not write.
	if code := apiCall(t, anyone, "GET", "/v1/services", "", nil); code != http.StatusOK {
		t.Errorf("GET /v1/services without credentials = %d, want 200", code)
	}
	for _, api := range []*apiClient{anyone, wrong} {
		for _, c := range []struct{ method, path, body string }{
			{"PUT", "/v1/maintenance/app", `{"reason":"x"}`},
			{"PUT", "/v1/maintenance/app/app-1", `{"reason":"x"}`},
			{"DELETE", "/v1/maintenance/app", ""},
			{"PUT", "/v1/checks/app/push", `{"status":"critical"}`},
		} {
			if code := apiCall(t, api, c.method, c.path, c.body, nil); code != http.StatusForbidden {
				t.Errorf("%s %s with token %q = %d, want 403", c.method, c.path, api.token, code)
			}
		}
	}
	if h.kv(svcKey) != nil || h.kv(instKey) != nil {
		t.Fatalf("an unauthenticated request wrote a maintenance entry")
	}

	// The token and the socket authenticate; "by" is what the server saw.
	for _, tc := range []struct {
		api    *apiClient
		wantBy string
	}{{withToken, "registrar-api@test token"}, {sock, "registrar-api@test uid="}} {
		if code := apiCall(t, tc.api, "PUT", "/v1/maintenance/app", `{"reason":"deploy"}`, nil); code != http.StatusOK {
			t.Fatalf("PUT /v1/maintenance/app = %d, want 200", code)
		}
		m := maintenance(t, h, instKey)
		if m == nil || !strings.HasPrefix(m.By, tc.wantBy) || m.Reason != "deploy" {
			t.Errorf("%s = %+v, want reason deploy by %q…", instKey, m, tc.wantBy)
		}
		if h.kv(svcKey) != nil {
			t.Errorf("the local API wrote the service-wide entry %s", svcKey)
		}
		if code := apiCall(t, tc.api, "DELETE", "/v1/maintenance/app", "", nil); code != http.StatusOK || h.kv(instKey) != nil {
			t.Errorf("DELETE /v1/maintenance/app = %d, entry left %v; want 200 and no entry", code, h.kv(instKey) != nil)
		}
	}

	// Strict bodies: no caller-supplied "by", nothing after the object.
	for _, body := range []string{`{"reason":"x","by":"mallory"}`, `{"reason":"x"} trailing`, `{"reason":"x"}{"reason":"y"}`, `[1]`} {
		if code := apiCall(t, sock, "PUT", "/v1/maintenance/app", body, nil); code != http.StatusBadRequest {
			t.Errorf("PUT /v1/maintenance/app %s = %d, want 400", body, code)
		}
	}

	// An operator's entries, service-wide and for the instance, survive
	// every local API call.
	op := schema.Maintenance{Reason: "disk swap", By: "alice@ops"}
	for _, id := range []string{"", "app-1"} {
		if err := registry.SetMaintenance(opCtx(t), h.cli, testKeys, "app", id, op); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"DELETE", "/v1/maintenance/app", http.StatusConflict},
		{"DELETE", "/v1/maintenance/app/app-1", http.StatusConflict},
		{"PUT", "/v1/maintenance/app/app-1", http.StatusConflict},
		{"DELETE", "/v1/maintenance/other", http.StatusNotFound},
	} {
		body := ""
		if c.method == "PUT" {
			body = `{"reason":"mine now"}`
		}
		if code := apiCall(t, sock, c.method, c.path, body, nil); code != c.want {
			t.Errorf("%s %s over an operator's entry = %d, want %d", c.method, c.path, code, c.want)
		}
	}
	for _, key := range []string{svcKey, instKey} {
		if m := maintenance(t, h, key); m == nil || m.By != "alice@ops" || m.Reason != "disk swap" {
			t.Errorf("operator's %s = %+v after local API calls, want it untouched", key, m)
		}
	}
}

// TestLocalAPISocketMode: the socket's file mode is the access control. A
// process of another user cannot even connect. Needs root (to run as
// nobody) and socat.
func TestLocalAPISocketMode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as another user")
	}
	socat, err := exec.LookPath("socat")
	if err != nil {
		t.Skip("socat not installed")
	}
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o755); err != nil { // others may traverse: only the socket's mode stops them
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "api.sock")
	l, err := ListenSocket(SocketOptions{Path: path, Mode: 0o660})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	l, err = ListenSocket(SocketOptions{Path: path}) // replaces the stale socket
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode = %v (%v), want 0660", st.Mode(), err)
	}
	cmd := exec.Command(socat, "-u", "OPEN:/dev/null", "UNIX-CONNECT:"+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Errorf("socat as nobody connecting to a 0660 root socket: err %v, output %q; want permission denied", err, out)
	}
}

func maintenance(t *testing.T, h *harness, key string) *schema.Maintenance {
	t.Helper()
	kv := h.kv(key)
	if kv == nil {
		return nil
	}
	var m schema.Maintenance
	if err := json.Unmarshal(kv.Value, &m); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return &m
}
