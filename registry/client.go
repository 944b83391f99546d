package registry

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rewire/rewire/registry/schema"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	etcd "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
)

// Config is how to reach etcd: the `etcd:` block shared by both daemons.
type Config struct {
	Endpoints    []string  `yaml:"endpoints"`
	Prefix       string    `yaml:"prefix"`
	TLS          TLSConfig `yaml:"tls"`
	Username     string    `yaml:"username"`
	PasswordFile string    `yaml:"password_file"`
}

// TLSConfig names PEM files for a TLS connection to etcd.
type TLSConfig struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Embedded is the endpoint value that asks for an in-process etcd.
const Embedded = "embedded"

// IsEmbedded reports whether the config asks for an in-process etcd.
func (c Config) IsEmbedded() bool {
	return len(c.Endpoints) == 1 && c.Endpoints[0] == Embedded
}

// Keys returns the key schema under the configured prefix.
func (c Config) Keys() schema.Keys { return schema.Keys{Prefix: c.Prefix} }

// String describes the config without secrets.
func (c Config) String() string {
	return fmt.Sprintf("etcd %s prefix %s", strings.Join(c.Endpoints, ","), schema.NormalizePrefix(c.Prefix))
}

// Client connects to etcd. The client dials lazily: an unreachable etcd is
// not an error here, only on first use.
func (c Config) Client() (*etcd.Client, error) {
	if len(c.Endpoints) == 0 {
		return nil, fmt.Errorf("registry: no etcd endpoints configured")
	}
	if c.IsEmbedded() {
		return nil, fmt.Errorf("registry: endpoint %q must be replaced by the embedded server's address before connecting", Embedded)
	}
	cfg := etcd.Config{
		Endpoints:            c.Endpoints,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Username:             c.Username,
		Logger:               zap.NewNop(),
		// gRPC's default reconnect backoff grows to 120s: after an etcd
		// outage we want to be back within about a second of its return.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	}
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("registry: etcd password: %w", err)
		}
		cfg.Password = strings.TrimSpace(string(b))
	}
	if c.TLS != (TLSConfig{}) {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	cli, err := etcd.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("registry: connect to %s: %w", c, err)
	}
	return cli, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	info := transport.TLSInfo{CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile, TrustedCAFile: c.TLS.CAFile}
	tc, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("registry: etcd tls: %w", err)
	}
	return tc, nil
}

// opTimeout bounds every single etcd request this package makes.
const opTimeout = 5 * time.Second

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, opTimeout)
}
