package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/etcdtest"
)

// authScript is deploy/etcd-auth.sh, which creates the users and roles.
var authScript = filepath.Join("..", "..", "deploy", "etcd-auth.sh")

// roleLab is Debian's etcd over TLS with client certificates required,
// its users and roles made by deploy/etcd-auth.sh.
type roleLab struct {
	e    *etcdtest.Etcd
	ca   *etcdtest.CA
	dir  string
	env  []string // ETCDCTL_* for the script, as root (certificate CN)
	pw   string   // password file shared by the password users
	cert map[string][2]string
}

func newRoleLab(t *testing.T) *roleLab {
	t.Helper()
	if _, err := exec.LookPath("etcdctl"); err != nil {
		msg := "\n\n*** SKIPPING: etcdctl is not installed (apt-get install etcd-client) ***\n\n"
		if os.Getenv("CI") != "" {
			t.Fatal(strings.TrimSpace(msg) + " (CI is set: install it in .ci/run)")
		}
		t.Skip(msg)
	}
	l := &roleLab{ca: etcdtest.NewCA(t, "rewire-ca"), dir: t.TempDir(), cert: map[string][2]string{}}
	for _, cn := range []string{"root", "reg-web", "reg-db", "tpl", "ops"} {
		c, k := l.ca.Issue(t, cn)
		l.cert[cn] = [2]string{c, k}
	}
	srvCert, srvKey := l.ca.Issue(t, "etcd", "127.0.0.1", "localhost")
	l.e = etcdtest.StartBinaryTLS(t, etcdtest.BinaryTLS{CertFile: srvCert, KeyFile: srvKey, CAFile: l.ca.CertFile,
		ClientCert: l.cert["root"][0], ClientKey: l.cert["root"][1]})
	l.env = append(os.Environ(), "ETCDCTL_API=3", "ETCDCTL_ENDPOINTS="+l.e.Endpoints[0], "ETCDCTL_CACERT="+l.ca.CertFile,
		"ETCDCTL_CERT="+l.cert["root"][0], "ETCDCTL_KEY="+l.cert["root"][1])
	l.pw = writeFile(t, filepath.Join(l.dir, "password"), "s3cret-pw\n")
	if err := os.Chmod(l.pw, 0o600); err != nil {
		t.Fatal(err)
	}
	return l
}

// script runs deploy/etcd-auth.sh with args and fails the test if it fails.
func (l *roleLab) script(t *testing.T, args ...string) string {
	t.Helper()
	out, err := l.tryScript(args...)
	if err != nil {
		t.Fatalf("etcd-auth.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (l *roleLab) tryScript(args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{authScript}, args...)...)
	cmd.Env = l.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// flags returns the common etcd flags for user: certificate login when
// password is false, else the user and the password file.
func (l *roleLab) flags(user string, password bool) []string {
	f := []string{"--etcd", l.e.Endpoints[0], "--prefix", "/rw", "--cacert", l.ca.CertFile,
		"--cert", l.cert[user][0], "--key", l.cert[user][1]}
	if password {
		f = append(f, "--user", user, "--password-file", l.pw)
	}
	return f
}

func healthz(addr string) (int, string) {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestLeastPrivilegeRoles creates users with deploy/etcd-auth.sh on
// Debian's etcd with TLS and auth, then runs the daemons with exactly those
// roles: the registrars register and follow their dependencies, one
// rewrites its record when someone deletes it, the templater renders, the
// operator sets maintenance; a registrar cannot write another service's
// keys (it says which, in /healthz), and the templater cannot set
// maintenance.
func TestLeastPrivilegeRoles(t *testing.T) {
	skipShort(t)
	l := newRoleLab(t)
	rootPW := writeFile(t, filepath.Join(l.dir, "root-password"), "root-pw\n")
	for range 2 { // idempotent: a second run changes nothing and succeeds
		l.script(t, "--prefix", "/rw", "init", rootPW)
		l.script(t, "--prefix", "/rw", "registrar", "reg-web", l.pw, "web", "db")
		l.script(t, "--prefix", "/rw", "registrar", "reg-db", "-", "db")
		l.script(t, "--prefix", "/rw", "templater", "tpl", l.pw)
		l.script(t, "--prefix", "/rw", "operator", "ops", "-")
	}
	cli := l.e.Client(t) // root, by certificate

	appSrv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer appSrv.Close()
	app := appSrv.URL
	webListen, dbListen := freeAddr(t), freeAddr(t)
	const token = "local-api-token-0123456789"
	tokenFile := writeFile(t, filepath.Join(l.dir, "api.token"), token)
	if err := os.Chmod(tokenFile, 0o600); err != nil {
		t.Fatal(err)
	}
	webCfg := writeFile(t, filepath.Join(l.dir, "web.yaml"), fmt.Sprintf(`node: vm1
lease_ttl: 2s
listen: %s
api_token_file: api.token
services:
  - {name: web, id: web-1, address: 127.0.0.1, port: 8080, depends_on: [db],
     checks: [{name: alive, http: %q, interval: 100ms}]}
`, webListen, app))
	// reg-db may write db only: web-evil is refused, db is not held up.
	dbCfg := writeFile(t, filepath.Join(l.dir, "db.yaml"), fmt.Sprintf(`node: vm2
lease_ttl: 2s
listen: %s
services:
  - {name: db, id: db-1, address: 127.0.0.1, port: 5432}
  - {name: web, id: web-evil, address: 127.0.0.1, port: 6666}
`, dbListen))
	web := start(t, bins.registrar, append([]string{"run", "-c", webCfg}, l.flags("reg-web", true)...)...)
	start(t, bins.registrar, append([]string{"run", "-c", dbCfg}, l.flags("reg-db", false)...)...)

	waitFor(t, 20*time.Second, "web passing, deep passing (db read through the role)", func() bool {
		rec := record(t, cli, "/rw/services/web/web-1")
		h, _ := rec["health"].(map[string]any)
		return shallow(rec) == "passing" && h != nil && h["deep"] == "passing"
	})
	if record(t, cli, "/rw/services/web/web-evil") != nil {
		t.Errorf("reg-db wrote web's key")
	}
	waitFor(t, 10*time.Second, "reg-db's /healthz naming the refused key", func() bool {
		code, body := healthz(dbListen)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "put /rw/services/web/web-evil")
	})
	if code, body := healthz(webListen); code != http.StatusOK {
		t.Errorf("reg-web /healthz = %d %q, want 200 ok", code, body)
	}
	if got := metric(dbListen, "registrar_etcd_permission_denied"); got != 1 {
		t.Errorf("reg-db registrar_etcd_permission_denied = %v, want 1", got)
	}

	// Someone deletes web's record: reg-web writes it again.
	if _, err := cli.Delete(t.Context(), "/rw/services/web/web-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "web's record rewritten", func() bool {
		return record(t, cli, "/rw/services/web/web-1") != nil
	})

	// The templater renders with its read-only role.
	tplCfg, dest := templaterConfig(t, l.e.Endpoints[0])
	start(t, bins.templater, append([]string{"run", "-c", tplCfg, "--listen", freeAddr(t)}, l.flags("tpl", true)...)...)
	waitFor(t, 20*time.Second, "web and db rendered", func() bool {
		s := readFile(dest)
		return strings.Contains(s, "server web/web-1 127.0.0.1:8080 passing") && strings.Contains(s, "server db/db-1 127.0.0.1:5432 passing")
	})

	// The operator may set maintenance; the templater's user may not.
	maint := func(user string, password bool) error {
		cmd := exec.Command(bins.registrar, append([]string{"maint", "enable", "db", "--reason", "test"}, l.flags(user, password)...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := maint("ops", false); err != nil {
		t.Errorf("registrar maint as ops: %v", err)
	}
	if err := maint("tpl", true); err == nil {
		t.Errorf("registrar maint as the templater's user succeeded, want permission denied")
	}
	waitFor(t, 10*time.Second, "web deep critical: db in maintenance", func() bool {
		h, _ := record(t, cli, "/rw/services/web/web-1")["health"].(map[string]any)
		return h != nil && h["deep"] == "critical"
	})

	// Through the local API, reg-web's role lets it put its own instance
	// in maintenance.
	req, _ := http.NewRequest("PUT", "http://"+webListen+"/v1/maintenance/web", strings.NewReader(`{"reason":"deploy"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("PUT /v1/maintenance/web = %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}
	if len(get(t, cli, "/rw/maintenance/web/web-1").Kvs) != 1 {
		t.Errorf("no maintenance entry for web-1 after the local API call")
	}

	// SIGTERM: the lease is revoked with the role's write permission.
	web.signal(t, syscall.SIGTERM)
	if code := web.wait(t, 20*time.Second); code != 0 {
		t.Errorf("reg-web exit code %d, want 0", code)
	}
	out := web.out.String()
	if strings.Contains(out, "permission denied") || !strings.Contains(out, "deregistered: lease revoked") {
		t.Errorf("reg-web logged a permission error or did not revoke its lease:\n%s", out)
	}
}
