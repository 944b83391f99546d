package embedetcd

import (
	"context"
	"os"
	"path/filepath"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Scratch is a throwaway etcd for the measurement commands under bench/:
// a server with its data in a fresh temporary directory, and a client on
// it. Close removes all of it.
type Scratch struct {
	Dir    string // the temporary directory; etcd's data is in Dir/etcd
	Server *Server
	Client *clientv3.Client
}

// StartScratch starts a Scratch in a new temporary directory named after
// pattern (as os.MkdirTemp's).
func StartScratch(ctx context.Context, pattern string) (*Scratch, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return nil, err
	}
	srv, err := Start(ctx, Options{Dir: filepath.Join(dir, "etcd")})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cli, err := srv.NewClient()
	if err != nil {
		srv.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	return &Scratch{Dir: dir, Server: srv, Client: cli}, nil
}

// Endpoint is the server's client endpoint (host:port).
func (s *Scratch) Endpoint() string { return s.Server.Endpoints()[0] }

// Count is how many keys start with prefix; 0 when etcd does not answer.
func (s *Scratch) Count(ctx context.Context, prefix string) int {
	resp, err := s.Client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0
	}
	return int(resp.Count)
}

// Close closes the client, stops the server and removes the directory.
func (s *Scratch) Close() {
	s.Client.Close()
	s.Server.Close()
	os.RemoveAll(s.Dir)
}
