package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rewire/rewire/registry"
	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// probeTimeout bounds the probe of one endpoint: the etcd client's own
// dial timeout, so the explanation comes no later than its bare error.
const probeTimeout = 5 * time.Second

// ProbeError explains why an etcd endpoint cannot be used, in words an
// operator can act on. Fatal means retrying cannot help (a TLS or
// certificate mistake), as opposed to etcd being down or unreachable.
type ProbeError struct {
	Endpoint string
	Msg      string
	Fatal    bool
	Err      error
}

func (e *ProbeError) Error() string { return fmt.Sprintf("etcd %s: %s", e.Endpoint, e.Msg) }
func (e *ProbeError) Unwrap() error { return e.Err }

// checkCredentials rejects a user without a password (etcd would
// silently ignore it) and a password without a user.
func checkCredentials(cfg registry.Config) error {
	switch {
	case cfg.Username != "" && cfg.PasswordFile == "":
		return fmt.Errorf("--user %q needs --password-file; to log in with a client certificate instead, drop --user: etcd takes the user from the certificate's CN", cfg.Username)
	case cfg.Username == "" && cfg.PasswordFile != "":
		return fmt.Errorf("--password-file %s needs --user", cfg.PasswordFile)
	}
	return nil
}

// probe connects to one endpoint the way the etcd client does — TCP, TLS
// with the same settings, then the HTTP/2 preface gRPC starts with — and
// returns a ProbeError saying which side refused and why, or nil. Unix
// socket endpoints are not probed.
func probe(ctx context.Context, cfg registry.Config, endpoint string) error {
	scheme, hostport, ok := strings.Cut(endpoint, "://")
	if !ok {
		scheme, hostport = "", endpoint
	}
	if strings.HasPrefix(scheme, "unix") {
		return nil
	}
	// As the etcd client decides: http:// is plain even with TLS settings,
	// https:// is TLS even without them.
	useTLS := (cfg.TLS != (registry.TLSConfig{}) && scheme != "http") || scheme == "https"
	bad := func(fatal bool, err error, format string, args ...any) error {
		return &ProbeError{Endpoint: endpoint, Msg: fmt.Sprintf(format, args...), Fatal: fatal, Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", hostport)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return bad(false, err, "connection refused: nothing listens on %s (is etcd running? is the port right?)", hostport)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return bad(false, err, "no answer from %s within %s (host down, firewall or wrong address)", hostport, probeTimeout)
	case err != nil:
		return bad(false, err, "cannot connect: %v", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if useTLS {
		tc, err := probeTLSConfig(cfg, hostport)
		if err != nil {
			return bad(true, err, "%v", err)
		}
		tconn := tls.Client(conn, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			return explainTLS(cfg, hostport, err, bad)
		}
		conn = tconn
	}
	return preface(conn, cfg, hostport, useTLS, bad)
}

func probeTLSConfig(cfg registry.Config, hostport string) (*tls.Config, error) {
	var tc *tls.Config
	if cfg.TLS == (registry.TLSConfig{}) {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		info := transport.TLSInfo{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, TrustedCAFile: cfg.TLS.CAFile}
		var err error
		if tc, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("tls settings: %w", err)
		}
	}
	tc = tc.Clone()
	if host, _, err := net.SplitHostPort(hostport); err == nil && tc.ServerName == "" {
		tc.ServerName = host
	}
	tc.NextProtos = []string{"h2"}
	return tc, nil
}

type badFunc func(fatal bool, err error, format string, args ...any) error

// explainTLS turns a failed handshake into the mistake behind it.
func explainTLS(cfg registry.Config, hostport string, err error, bad badFunc) error {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		header   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknown):
		if cfg.TLS.CAFile == "" {
			return bad(true, err, "TLS: we refused etcd's server certificate: it is signed by an unknown authority, and no --cacert was given (the system's CA pool was used): pass etcd's CA with --cacert")
		}
		return bad(true, err, "TLS: we refused etcd's server certificate: it is signed by an unknown authority (issuer %q), not by the CA in --cacert %s", issuer(unknown.Cert), cfg.TLS.CAFile)
	case errors.As(err, &hostname):
		return bad(true, err, "TLS: we refused etcd's server certificate: it is not valid for %q (%v): connect by a name or address it lists", hostname.Host, err)
	case errors.As(err, &invalid):
		return bad(true, err, "TLS: we refused etcd's server certificate: %v", err)
	case errors.As(err, &header):
		return bad(true, err, "TLS: %s does not speak TLS: drop the TLS settings (--cacert, --cert, --key, https://) or use etcd's TLS port", hostport)
	}
	if refused := remoteRefusal(cfg, err, bad); refused != nil {
		return refused
	}
	if errors.Is(err, io.EOF) {
		return bad(true, err, "TLS: etcd closed the connection during the handshake (it may require TLS 1.3 or a client certificate): %v", err)
	}
	return bad(false, err, "TLS handshake: %v", err)
}

// remoteRefusal explains a TLS alert from etcd: it refused our side of
// the handshake, usually the client certificate.
func remoteRefusal(cfg registry.Config, err error, bad badFunc) error {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" {
		return nil
	}
	if cfg.TLS.CertFile == "" {
		return bad(true, err, "TLS: etcd refused the connection (%v): it requires a client certificate: set --cert and --key", op.Err)
	}
	return bad(true, err, "TLS: etcd refused our client certificate %s (%v): it is not signed by a CA etcd trusts (--trusted-ca-file), expired, or not for client authentication", cfg.TLS.CertFile, op.Err)
}

func issuer(c *x509.Certificate) string {
	if c == nil {
		return "?"
	}
	return c.Issuer.String()
}

// preface sends the HTTP/2 client preface and an empty SETTINGS frame and
// reads etcd's first frame: a server that accepted us answers with its
// SETTINGS; one that did not closes the connection or, under TLS 1.3,
// sends the alert for our client certificate only now.
func preface(conn net.Conn, cfg registry.Config, hostport string, useTLS bool, bad badFunc) error {
	const h2 = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + "\x00\x00\x00\x04\x00\x00\x00\x00\x00"
	if _, err := io.WriteString(conn, h2); err != nil {
		return probeRead(cfg, hostport, useTLS, err, bad)
	}
	var hdr [9]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return probeRead(cfg, hostport, useTLS, err, bad)
	}
	if hdr[3] != 0x4 { // frame type SETTINGS
		return bad(false, nil, "%s does not answer like etcd (first frame type %d): is it etcd's client port?", hostport, hdr[3])
	}
	return nil
}

func probeRead(cfg registry.Config, hostport string, useTLS bool, err error, bad badFunc) error {
	if refused := remoteRefusal(cfg, err, bad); refused != nil {
		return refused
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil // no verdict in time: let the client try
	}
	if !useTLS && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) {
		return bad(true, err, "%s closed the connection without answering: etcd there probably requires TLS: set --cacert (and --cert/--key if it asks for a client certificate)", hostport)
	}
	return bad(false, err, "%s: %v", hostport, err)
}

// probeAll probes every endpoint at once. One usable endpoint is enough
// (the others are logged). When none is, a mistake retrying cannot fix,
// or a password login that needs etcd now, is an error listing each
// endpoint's problem; etcd merely being down is logged.
func probeAll(ctx context.Context, cfg registry.Config, log *slog.Logger) error {
	errs := make([]error, len(cfg.Endpoints))
	var wg sync.WaitGroup
	for i, ep := range cfg.Endpoints {
		wg.Go(func() { errs[i] = probe(ctx, cfg, ep) })
	}
	wg.Wait()
	var fatal bool
	usable := false
	for _, err := range errs {
		var pe *ProbeError
		if errors.As(err, &pe) && pe.Fatal {
			fatal = true
		}
		usable = usable || err == nil
	}
	if !usable && (fatal || cfg.Username != "") {
		return fmt.Errorf("cannot use etcd:\n%w", errors.Join(errs...))
	}
	for _, err := range errs {
		if err != nil {
			log.Error("etcd endpoint unusable; the client keeps trying", "err", err)
		}
	}
	return nil
}
