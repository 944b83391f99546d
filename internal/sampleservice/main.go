package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sampleservice:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("sampleservice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "web", "service name, in every answer")
	node := fs.String("node", "", "node name, in every answer (default: hostname)")
	listen := fs.String("listen", ":8080", "address to serve on")
	upstream := fs.String("upstream", "", "URL that GET /chain calls too (optional)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *node == "" {
		*node, _ = os.Hostname()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: *listen, Handler: handler(*name, *node, *upstream), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

func handler(name, node, upstream string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	client := &http.Client{Timeout: 2 * time.Second}
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		own := fmt.Sprintf("%s on %s\n", name, node)
		// Behind the load balancer the path keeps its service prefix
		// (/web/chain): the suffix decides.
		if upstream == "" || !strings.HasSuffix(r.URL.Path, "/chain") {
			io.WriteString(w, own)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, upstream, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, "upstream: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if err != nil || resp.StatusCode != http.StatusOK {
			http.Error(w, fmt.Sprintf("upstream: %s %v", resp.Status, err), http.StatusBadGateway)
			return
		}
		io.WriteString(w, own)
		w.Write(body)
	})
	return mux
}
