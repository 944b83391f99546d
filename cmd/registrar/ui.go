package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/rewire/rewire/graph/ui"
	"github.com/rewire/rewire/internal/daemon"
	"github.com/rewire/rewire/registry"
	"github.com/urfave/cli/v2"
)

// defaultUIListen is where `registrar ui` serves by default: loopback,
// next to the registrar's (9701) and templater's (9702) own ports.
const defaultUIListen = "127.0.0.1:9703"

func uiFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "listen", EnvVars: []string{"REGISTRAR_UI_LISTEN"}, Value: defaultUIListen, Usage: "address to serve the page on"},
		&cli.BoolFlag{Name: "allow-remote", EnvVars: []string{"REGISTRAR_UI_ALLOW_REMOTE"},
			Usage: "allow a --listen address that is not loopback (the page shows the whole registry to whoever reaches it)"},
	}
}

// checkLoopback refuses an address other hosts could reach, unless the
// operator allowed it.
func checkLoopback(addr string, allow bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if host == "localhost" || (ip != nil && ip.IsLoopback()) || allow {
		return nil
	}
	return fmt.Errorf("--listen %q is not a loopback address: the page shows the whole registry to anyone who reaches it; pass --allow-remote to serve it there on purpose", addr)
}

func cmdUI(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("ui takes no arguments, got %q", c.Args().Slice())
	}
	addr := c.String("listen")
	if err := checkLoopback(addr, c.Bool("allow-remote")); err != nil {
		return err
	}
	log, err := daemon.Logger(c.App.ErrWriter, c.String(daemon.FlagLogLevel))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	conn, keys, err := connect(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	w := registry.NewWatcher(registry.WatcherOptions{Client: conn.Client, Keys: keys, Logger: log})
	s := ui.New(ui.Options{Source: w, Logger: log})
	// Requests (the event streams above all) end with ctx.
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	fmt.Fprintf(c.App.Writer, "registry map: http://%s/ (registry %s%s)\n", l.Addr(), conn.Config, keys.Root())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	wg.Go(func() { s.Run(ctx) })
	var serveErr error
	wg.Go(func() {
		if err := hs.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			serveErr = err
			stop()
		}
	})
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	wg.Wait()
	return serveErr
}
