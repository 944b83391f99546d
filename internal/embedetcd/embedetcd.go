// Package embedetcd runs an etcd server inside the process, for
// `--etcd embedded`, `make demo`, tests and the benchmarks (Scratch: a
// throwaway server and client). It is a thin wrapper over
// go.etcd.io/etcd/server/v3/embed with loopback-only listeners and quiet
// logging:
//
//	srv, err := embedetcd.Start(ctx, embedetcd.Options{Dir: dir})
//	if err != nil { ... }
//	defer srv.Close()
//	cli, err := srv.NewClient()
//
// A Server is safe for concurrent use; Close stops it and waits for it.
package embedetcd

import (
	"context"
	"fmt"
	"github.com/rewire/rewire/internal/freeport"
	"net"
	"net/url"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Options configures Start.
type Options struct {
	// Dir is the data directory; it is created if missing.
	Dir string
	// ClientAddr is host:port to serve clients on; "" or port 0 picks a
	// free loopback port.
	ClientAddr string
	// PeerAddr is host:port for the (unused) peer listener; "" picks a
	// free loopback port. Restarting on the same Dir needs the same one.
	PeerAddr string
	// Fast trades durability for speed (short election ticks, no fsync):
	// for tests only.
	Fast bool
	// ProgressNotify, when set, makes the server send watch progress
	// notifications at this interval.
	ProgressNotify time.Duration
	// StartTimeout bounds the wait for the server to become ready;
	// default 30s.
	StartTimeout time.Duration
	// ClientTLS, when its CertFile is set, serves clients over TLS
	// (https) with this certificate; its TrustedCAFile and ClientCertAuth
	// make etcd require client certificates signed by that CA.
	ClientTLS transport.TLSInfo
}

// Server is a running embedded etcd.
type Server struct {
	e         *embed.Etcd
	endpoints []string
	opts      Options
}

// Start starts the server and waits until it serves clients.
func Start(ctx context.Context, opts Options) (*Server, error) {
	cfg := embed.NewConfig()
	cfg.Name = "rewire"
	cfg.Dir = opts.Dir
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.LogLevel = "error"
	if opts.Fast {
		cfg.TickMs, cfg.ElectionMs = 10, 100
		cfg.UnsafeNoFsync = true
	}
	if opts.ProgressNotify > 0 {
		cfg.WatchProgressNotifyInterval = opts.ProgressNotify
	}
	clientAddr := opts.ClientAddr
	if clientAddr == "" {
		clientAddr = "127.0.0.1:0"
	}
	var err error
	if clientAddr, err = resolvePort(clientAddr); err != nil {
		return nil, fmt.Errorf("embedetcd: client address: %w", err)
	}
	peerAddr := opts.PeerAddr
	if peerAddr == "" {
		peerAddr = "127.0.0.1:0"
	}
	if peerAddr, err = resolvePort(peerAddr); err != nil {
		return nil, fmt.Errorf("embedetcd: peer address: %w", err)
	}
	cu := url.URL{Scheme: "http", Host: clientAddr}
	if opts.ClientTLS.CertFile != "" {
		cu.Scheme = "https"
		cfg.ClientTLSInfo = opts.ClientTLS
	}
	pu := url.URL{Scheme: "http", Host: peerAddr}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("embedetcd: start in %s: %w", opts.Dir, err)
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedetcd: %w", err)
	case <-time.After(timeout):
		e.Close()
		return nil, fmt.Errorf("embedetcd: not ready after %s", timeout)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	opts.ClientAddr, opts.PeerAddr = clientAddr, peerAddr
	return &Server{e: e, endpoints: []string{cu.Host}, opts: opts}, nil
}

// Options returns the options the server runs with, ports resolved: pass
// them to Start again to restart it on the same directory and addresses.
func (s *Server) Options() Options { return s.opts }

// resolvePort replaces port 0 in addr with a free port. The port could be
// taken by someone else before etcd binds it; Start then fails cleanly.
func resolvePort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if port != "0" {
		return addr, nil
	}
	if host == "127.0.0.1" {
		return freeport.Addr()
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Endpoints returns the client endpoints (host:port).
func (s *Server) Endpoints() []string { return s.endpoints }

// Err reports a fatal server error after start.
func (s *Server) Err() <-chan error { return s.e.Err() }

// Close stops the server and waits for it.
func (s *Server) Close() { s.e.Close() }

// NewClient connects a client to the server, with etcd's client logging
// off. The caller closes it.
func (s *Server) NewClient() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: s.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}
