package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/embedetcd"
	"github.com/rewire/rewire/internal/etcdtest"
	"github.com/rewire/rewire/internal/freeport"
	"github.com/rewire/rewire/internal/testutil"
	"github.com/rewire/rewire/registry"
	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// TestConnectExplainsMistakes connects to etcd served over TLS with client
// certificates required, making each usual mistake: every one is refused
// at once with a message naming which side refused and why.
func TestConnectExplainsMistakes(t *testing.T) {
	ca, other := etcdtest.NewCA(t, "etcd-ca"), etcdtest.NewCA(t, "other-ca")
	srvCert, srvKey := ca.Issue(t, "etcd", "127.0.0.1", "localhost")
	e := etcdtest.StartOptions(t, embedetcd.Options{ClientTLS: transport.TLSInfo{
		CertFile: srvCert, KeyFile: srvKey, TrustedCAFile: ca.CertFile, ClientCertAuth: true}})
	wrongName, wrongNameKey := ca.Issue(t, "etcd", "etcd.example")
	e2 := etcdtest.StartOptions(t, embedetcd.Options{ClientTLS: transport.TLSInfo{CertFile: wrongName, KeyFile: wrongNameKey}})
	cliCert, cliKey := ca.Issue(t, "reg-web")
	otherCert, otherKey := other.Issue(t, "reg-web")
	closed, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := registry.TLSConfig{CAFile: ca.CertFile, CertFile: cliCert, KeyFile: cliKey}
	ep := e.Endpoints
	for _, tc := range []struct {
		name string
		cfg  registry.Config
		want string // "" means Connect succeeds
	}{
		{"right settings", registry.Config{Endpoints: ep, TLS: good}, ""},
		{"wrong --cacert", registry.Config{Endpoints: ep, TLS: registry.TLSConfig{CAFile: other.CertFile, CertFile: cliCert, KeyFile: cliKey}},
			"we refused etcd's server certificate: it is signed by an unknown authority (issuer \"CN=etcd-ca\"), not by the CA in --cacert"},
		{"missing --cacert", registry.Config{Endpoints: ep, TLS: registry.TLSConfig{CertFile: cliCert, KeyFile: cliKey}},
			"no --cacert was given (the system's CA pool was used)"},
		{"client certificate of another CA", registry.Config{Endpoints: ep, TLS: registry.TLSConfig{CAFile: ca.CertFile, CertFile: otherCert, KeyFile: otherKey}},
			"etcd refused our client certificate " + otherCert},
		{"no client certificate", registry.Config{Endpoints: ep, TLS: registry.TLSConfig{CAFile: ca.CertFile}},
			"it requires a client certificate: set --cert and --key"},
		{"hostname mismatch", registry.Config{Endpoints: e2.Endpoints, TLS: registry.TLSConfig{CAFile: ca.CertFile}},
			`it is not valid for "127.0.0.1"`},
		{"plaintext to a TLS port", registry.Config{Endpoints: ep},
			"etcd there probably requires TLS: set --cacert"},
		{"closed port with a password login", registry.Config{Endpoints: []string{closed}, Username: "u", PasswordFile: pwFile},
			"connection refused: nothing listens on " + closed},
		{"--user without --password-file", registry.Config{Endpoints: ep, TLS: good, Username: "u"},
			`--user "u" needs --password-file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			start := time.Now()
			conn, err := Connect(ctx, nil, tc.cfg, slog.New(slog.DiscardHandler))
			took := time.Since(start)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Connect() = %v, want success", err)
				}
				defer conn.Close()
				if _, err := conn.Client.Get(ctx, "x"); err != nil {
					t.Errorf("Get with the right settings: %v", err)
				}
				return
			}
			if err == nil {
				conn.Close()
				t.Fatalf("Connect() = nil error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Connect() = %v\nwant it to contain %q", err, tc.want)
			}
			t.Logf("after %s: %v", took.Round(time.Millisecond), err)
		})
	}
}

// TestConnectEtcdDown: without a password login, etcd being down at start
// is not an error (the client keeps trying), but it is logged with why.
func TestConnectEtcdDown(t *testing.T) {
	closed, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	var out testutil.Buffer
	log, _ := Logger(&out, "info")
	conn, err := Connect(t.Context(), nil, registry.Config{Endpoints: []string{closed}}, log)
	if err != nil {
		t.Fatalf("Connect() = %v, want success (the client retries)", err)
	}
	conn.Close()
	if got := strings.Join(lines(&out), "\n"); !strings.Contains(got, "connection refused: nothing listens on") {
		t.Errorf("log = %s, want the refused connection explained", got)
	}
}
