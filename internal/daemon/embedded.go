//go:build !noembed

package daemon

import (
	"context"

	"github.com/rewire/rewire/internal/embedetcd"
)

// startEmbedded starts the in-process etcd for `--etcd embedded`. Builds
// with the noembed tag leave etcd's server code out (a smaller binary and
// ~20 MiB less memory) and refuse `embedded`.
func startEmbedded(ctx context.Context, dir, listen string) (interface{ Close() }, []string, error) {
	srv, err := embedetcd.Start(ctx, embedetcd.Options{Dir: dir, ClientAddr: listen})
	if err != nil {
		return nil, nil, err
	}
	return srv, srv.Endpoints(), nil
}
