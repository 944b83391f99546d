package ui

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rewire/rewire/graph"
	"github.com/rewire/rewire/registry/schema"
)

//go:embed assets/index.html assets/app.js assets/style.css assets/viz-global.js
var assets embed.FS

// Source is where the registry comes from. registry.Watcher satisfies it.
type Source interface {
	// Current returns the latest snapshot, or nil before the first read.
	Current() *schema.Snapshot
	// Updates receives a value after Current changes (one buffered
	// value for many changes).
	Updates() <-chan struct{}
}

// Options configure a Server.
type Options struct {
	Source Source
	Logger *slog.Logger // nil: discard
	// MinInterval is the least time between two rebuilds of the graph:
	// changes within it are shown together. Default 200ms.
	MinInterval time.Duration
	// KeepAlive is how often an idle event stream gets a comment line, so
	// that proxies do not close it. Default 30s.
	KeepAlive time.Duration
}

// Server serves the page and its JSON. Handler may be used from any
// goroutine; Run keeps the graph current.
type Server struct {
	src       Source
	log       *slog.Logger
	min       time.Duration
	keepAlive time.Duration
	files     http.Handler

	// mu guards the fields below.
	mu   sync.Mutex
	cur  *view
	subs map[chan struct{}]bool // event streams, told when cur changes
}

// view is the graph of one snapshot and its encoded payload.
type view struct {
	snap  *schema.Snapshot
	graph *graph.Graph
	body  []byte // payload as JSON, one line
}

// payload is what /v1/graph and each event carry: the graph's fields, its
// root causes with what waits on them, and the DOT source the page lays
// out.
type payload struct {
	*graph.Graph
	Roots []graph.Cause `json:"roots"`
	DOT   string        `json:"dot"`
	// Engine is the Graphviz layout engine for DOT, chosen by size.
	Engine string `json:"engine"`
}

// New returns a Server; call Run to follow the Source.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MinInterval <= 0 {
		o.MinInterval = 200 * time.Millisecond
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 30 * time.Second
	}
	sub, _ := fs.Sub(assets, "assets")
	return &Server{src: o.Source, log: o.Logger.With("component", "ui"), min: o.MinInterval,
		keepAlive: o.KeepAlive, files: http.FileServerFS(sub), subs: map[chan struct{}]bool{}}
}

// Run rebuilds the graph each time the Source changes, at most once per
// MinInterval, and tells the event streams. It returns nil when ctx ends.
func (s *Server) Run(ctx context.Context) error {
	for {
		if snap := s.src.Current(); snap != nil {
			if err := s.update(snap); err != nil {
				s.log.Error("cannot encode the graph", "rev", snap.Rev, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.min):
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.src.Updates():
		}
	}
}

// update builds the view of snap, unless it is the current one.
func (s *Server) update(snap *schema.Snapshot) error {
	s.mu.Lock()
	same := s.cur != nil && s.cur.snap == snap
	s.mu.Unlock()
	if same {
		return nil
	}
	v, err := newView(snap)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = v
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default: // already told; it reads the latest view
		}
	}
	s.log.Debug("graph updated", "rev", snap.Rev)
	return nil
}

func newView(snap *schema.Snapshot) (*view, error) {
	g := graph.Build(snap)
	layout := g.LayoutFor()
	var dot strings.Builder
	if err := g.WriteDOT(&dot, layout.Attrs...); err != nil {
		return nil, err
	}
	body, err := json.Marshal(payload{Graph: g, Roots: g.Roots(), DOT: dot.String(), Engine: layout.Engine})
	if err != nil {
		return nil, err
	}
	return &view{snap: snap, graph: g, body: body}, nil
}

func (s *Server) current() *view {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Handler returns the page, its assets and the JSON endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/graph", s.serveGraph)
	mux.HandleFunc("GET /v1/why/{service}", s.serveWhy)
	mux.HandleFunc("GET /v1/events", s.serveEvents)
	mux.Handle("GET /", s.files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httpError(w, http.StatusMethodNotAllowed, "read-only: only GET and HEAD")
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		// The page loads only its own files; the WebAssembly layout
		// engine is compiled from the vendored script.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
		mux.ServeHTTP(w, r)
	})
}

// httpError writes {"error": msg}.
func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// notYet answers while the registry has not been read.
func notYet(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	httpError(w, http.StatusServiceUnavailable, "the registry has not been read yet")
}

func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request) {
	v := s.current()
	if v == nil {
		notYet(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(v.body)
}

func (s *Server) serveWhy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("service")
	if err := schema.ValidateName(name); err != nil {
		httpError(w, http.StatusBadRequest, "service: "+err.Error())
		return
	}
	v := s.current()
	if v == nil {
		notYet(w)
		return
	}
	d, err := v.graph.Why(name)
	if ue := (*graph.UnknownError)(nil); errors.As(err, &ue) {
		httpError(w, http.StatusNotFound, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(d)
}

// serveEvents streams the payload: once at once (when the registry has
// been read), then after every change, until the client goes or the
// request's context ends.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		return // a stream has no length to report
	}
	ch := make(chan struct{}, 1)
	ch <- struct{}{}
	s.mu.Lock()
	s.subs[ch] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}()
	ping := time.NewTicker(s.keepAlive)
	defer ping.Stop()
	var sent *view
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			_, err = fmt.Fprint(w, ": keep-alive\n\n")
		case <-ch:
			if v := s.current(); v != nil && v != sent {
				sent = v
				_, err = fmt.Fprintf(w, "event: graph\nid: %d\ndata: %s\n\n", v.snap.Rev, bytes.TrimSpace(v.body))
			}
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}
