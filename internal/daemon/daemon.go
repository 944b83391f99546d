// Package daemon is the plumbing both rewire commands share: the common
// etcd flags (each with an environment variable), logging, connecting to
// etcd (starting an in-process server for `--etcd embedded`), and the
// /healthz + /metrics HTTP server.
//
//	app.Flags = daemon.EtcdFlags("REGISTRAR")
//	cfg.Etcd = daemon.ApplyEtcdFlags(c, cfg.Etcd)     // flag > env > file > default
//	conn, err := daemon.Connect(ctx, c, cfg.Etcd, logger) // c: the command's *cli.Context
//	defer conn.Close()
//	addr, serve, err := daemon.Serve(ctx, cfg.Listen, mux, reg, logger)
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rewire/rewire/internal/clip"
	"github.com/rewire/rewire/registry"
	"github.com/urfave/cli/v2"
	etcd "go.etcd.io/etcd/client/v3"
)

// Flag names shared by both commands.
const (
	FlagEtcd            = "etcd"
	FlagPrefix          = "prefix"
	FlagCACert          = "cacert"
	FlagCert            = "cert"
	FlagKey             = "key"
	FlagUser            = "user"
	FlagPasswordFile    = "password-file"
	FlagEmbeddedDir     = "embedded-dir"
	FlagEmbeddedListen  = "embedded-listen"
	FlagLogLevel        = "log-level"
	defaultEmbeddedAddr = "127.0.0.1:2379"
)

func env(app, name string) []string {
	n := strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	return []string{app + "_" + n, "REWIRE_" + n}
}

// EtcdFlags returns the common flags. app is the environment variable
// prefix ("REGISTRAR" or "TEMPLATER"); REWIRE_* variables work for both.
func EtcdFlags(app string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: FlagEtcd, EnvVars: env(app, FlagEtcd), DefaultText: defaultEmbeddedAddr, Usage: `etcd endpoints, comma-separated, or "embedded" for an in-process etcd`},
		&cli.StringFlag{Name: FlagPrefix, EnvVars: env(app, FlagPrefix), Usage: "key prefix of the registry (default /rewire)"},
		&cli.StringFlag{Name: FlagCACert, EnvVars: env(app, FlagCACert), Usage: "CA certificate file for etcd TLS"},
		&cli.StringFlag{Name: FlagCert, EnvVars: env(app, FlagCert), Usage: "client certificate file for etcd TLS"},
		&cli.StringFlag{Name: FlagKey, EnvVars: env(app, FlagKey), Usage: "client key file for etcd TLS"},
		&cli.StringFlag{Name: FlagUser, EnvVars: env(app, FlagUser), Usage: "etcd user name"},
		&cli.StringFlag{Name: FlagPasswordFile, EnvVars: env(app, FlagPasswordFile), Usage: "file holding the etcd password"},
		&cli.StringFlag{Name: FlagEmbeddedDir, EnvVars: env(app, FlagEmbeddedDir), Value: "rewire-etcd.data", Usage: "data directory of the embedded etcd"},
		&cli.StringFlag{Name: FlagEmbeddedListen, EnvVars: env(app, FlagEmbeddedListen), Value: defaultEmbeddedAddr, Usage: "client address of the embedded etcd"},
		&cli.StringFlag{Name: FlagLogLevel, EnvVars: env(app, FlagLogLevel), Value: "info", Usage: "debug, info, warn or error"},
	}
}

// ApplyEtcdFlags overrides cfg with every common flag that was set on the
// command line or through its environment variable, and fills defaults.
func ApplyEtcdFlags(c *cli.Context, cfg registry.Config) registry.Config {
	if c.IsSet(FlagEtcd) {
		cfg.Endpoints = splitList(c.String(FlagEtcd))
	}
	set := func(name string, dst *string) {
		if c.IsSet(name) {
			*dst = c.String(name)
		}
	}
	set(FlagPrefix, &cfg.Prefix)
	set(FlagCACert, &cfg.TLS.CAFile)
	set(FlagCert, &cfg.TLS.CertFile)
	set(FlagKey, &cfg.TLS.KeyFile)
	set(FlagUser, &cfg.Username)
	set(FlagPasswordFile, &cfg.PasswordFile)
	if len(cfg.Endpoints) == 0 {
		cfg.Endpoints = []string{defaultEmbeddedAddr}
	}
	return cfg
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Logger returns a logger writing to w: text on a terminal, JSON otherwise.
func Logger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	// Every value is bounded: records and check outputs come from other
	// machines, and one huge field must not flood the log. Durations are
	// written as "1.5s", not nanoseconds.
	opts := &slog.HandlerOptions{Level: l, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		return clip.ReplaceAttr(groups, durationString(groups, a))
	}}
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}

// durationString logs a time.Duration as "1.5s": slog's JSON handler
// would write it as an integer of nanoseconds.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Conn is a connection to etcd, and the embedded server behind it if any.
type Conn struct {
	Client   *etcd.Client
	Config   registry.Config // with the embedded server's real endpoint
	embedded interface{ Close() }
}

// Close closes the client, then stops the embedded server if there is one.
func (c *Conn) Close() {
	c.Client.Close()
	if c.embedded != nil {
		c.embedded.Close()
	}
}

// Connect returns a client for cfg. For `embedded` it first starts an
// in-process etcd with its data in the --embedded-dir directory.
// Otherwise it first probes the endpoints: a TLS or certificate mistake is
// an error that says which side refused and why; etcd being down is
// logged, and the client keeps trying, unless a password login needs it
// now.
func Connect(ctx context.Context, c *cli.Context, cfg registry.Config, log *slog.Logger) (*Conn, error) {
	if err := checkCredentials(cfg); err != nil {
		return nil, err
	}
	conn := &Conn{Config: cfg}
	if !cfg.IsEmbedded() {
		if err := probeAll(ctx, cfg, log); err != nil {
			return nil, err
		}
	}
	if cfg.IsEmbedded() {
		dir, err := filepath.Abs(c.String(FlagEmbeddedDir))
		if err != nil {
			return nil, err
		}
		srv, endpoints, err := startEmbedded(ctx, dir, c.String(FlagEmbeddedListen))
		if err != nil {
			return nil, err
		}
		conn.embedded = srv
		conn.Config.Endpoints = endpoints
		log.Info("embedded etcd started", "endpoints", strings.Join(endpoints, ","), "path", dir)
	}
	cli, err := conn.Config.Client()
	if err != nil {
		if conn.embedded != nil {
			conn.embedded.Close()
		}
		return nil, err
	}
	conn.Client = cli
	return conn, nil
}

// NewRegistry returns a Prometheus registry with the Go and process
// collectors, for a daemon's /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Healthz returns a /healthz handler: 200 "ok" while check returns nil,
// else 503 with the error, one problem per line.
func Healthz(check func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if err := check(); err != nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, err.Error()+"\n")
			return
		}
		io.WriteString(w, "ok\n")
	})
}

// Serve runs an HTTP server on addr with /healthz, /metrics and the
// handlers in mux until ctx ends, then shuts it down gracefully. /healthz
// answers "ok" unless mux has its own (see Healthz). The listener is bound
// before Serve returns control to its caller's goroutine, so a bind error
// is reported at once through ready.
func Serve(ctx context.Context, addr string, mux *http.ServeMux, reg *prometheus.Registry, log *slog.Logger) (net.Addr, func() error, error) {
	if _, pattern := mux.Handler(&http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/healthz"}}); pattern == "" {
		mux.Handle("GET /healthz", Healthz(func() error { return nil }))
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("serving /healthz and /metrics", "addr", l.Addr().String())
	return l.Addr(), func() error { return ServeUntil(ctx, srv, l) }, nil
}

// ServeUntil serves srv on l until ctx ends, then shuts it down gracefully
// (open requests get 5 s) and returns once it has stopped: nil after a
// clean stop, else the error that ended serving or shutting down.
func ServeUntil(ctx context.Context, srv *http.Server, l net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
