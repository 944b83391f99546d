package registrar

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/rewire/rewire/internal/daemon"
)

// peer is who is on the other end of a unix socket connection, as the
// kernel reports it (not as the caller claims).
type peer struct {
	uid, pid int
}

func (p peer) String() string {
	name := strconv.Itoa(p.uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	return fmt.Sprintf("uid=%d(%s) pid=%d", p.uid, name, p.pid)
}

type peerKey struct{}

func peerFrom(ctx context.Context) (peer, bool) {
	p, ok := ctx.Value(peerKey{}).(peer)
	return p, ok
}

// SocketOptions configures ListenSocket.
type SocketOptions struct {
	Path  string
	Mode  fs.FileMode // default 0660
	Group string      // group name or id; "" keeps the process's group
}

// ListenSocket creates the local API's unix socket: a stale socket file
// is replaced, anything else at the path is an error; the file gets Mode
// and Group, which are its access control.
func ListenSocket(opts SocketOptions) (net.Listener, error) {
	if opts.Mode == 0 {
		opts.Mode = 0o660
	}
	if st, err := os.Lstat(opts.Path); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("api_socket %s: exists and is not a socket", opts.Path)
		}
		if err := os.Remove(opts.Path); err != nil {
			return nil, fmt.Errorf("api_socket %s: remove stale socket: %w", opts.Path, err)
		}
	}
	l, err := net.Listen("unix", opts.Path)
	if err != nil {
		return nil, fmt.Errorf("api_socket: %w", err)
	}
	fail := func(err error) (net.Listener, error) {
		l.Close()
		return nil, fmt.Errorf("api_socket %s: %w", opts.Path, err)
	}
	if opts.Group != "" {
		gid, err := lookupGroup(opts.Group)
		if err != nil {
			return fail(err)
		}
		if err := os.Chown(opts.Path, -1, gid); err != nil {
			return fail(err)
		}
	}
	if err := os.Chmod(opts.Path, opts.Mode); err != nil {
		return fail(err)
	}
	return l, nil
}

func lookupGroup(g string) (int, error) {
	if gid, err := strconv.Atoi(g); err == nil {
		return gid, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(grp.Gid)
}

// ServeSocket serves h on the unix socket l until ctx ends, then shuts
// down gracefully and removes the socket file. Every request carries the
// peer's credentials, which authenticate local API writes. It returns a
// function that blocks until the server has stopped.
func ServeSocket(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) func() error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if p, err := peerCred(c); err == nil {
				return context.WithValue(ctx, peerKey{}, p)
			} else if log != nil {
				log.Warn("local API: cannot tell who is connected; writes refused", "err", err)
			}
			return ctx
		}}
	errc := make(chan error, 1)
	go func() { errc <- daemon.ServeUntil(ctx, srv, l) }()
	return func() error { return <-errc }
}
