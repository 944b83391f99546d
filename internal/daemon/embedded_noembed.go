//go:build noembed

package daemon

import (
	"context"
	"errors"
)

func startEmbedded(context.Context, string, string) (interface{ Close() }, []string, error) {
	return nil, nil, errors.New("this build has no embedded etcd (built with -tags noembed): pass --etcd with etcd's address")
}
