package ui_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewire/rewire/graph/ui"
	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/registry/schema"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var keys = schema.Keys{Prefix: "/t"}

// source is a registry held in memory: Put changes it the way a watch
// event would, and publishes a new snapshot.
type source struct {
	mu      sync.Mutex
	x       *schema.Index
	rev     int64
	cur     *schema.Snapshot
	updates chan struct{}
}

func newSource() *source {
	return &source{x: schema.NewIndex(keys), updates: make(chan struct{}, 1)}
}

func (s *source) Current() *schema.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *source) Updates() <-chan struct{} { return s.updates }

// put registers one instance of svc with the given shallow status and
// dependencies, deep critical when its shallow is.
func (s *source) put(t *testing.T, svc string, shallow health.Status, deep health.Status, deps ...string) {
	t.Helper()
	in := schema.Instance{V: 1, Service: svc, ID: svc + "-1", Address: "127.0.0.1", Port: 80, DependsOn: deps,
		Health: schema.Health{Shallow: shallow, Deep: deep,
			Checks: []schema.Check{{Name: "http", Kind: health.Shallow, Status: shallow, Output: "status " + string(shallow)}}}}
	b, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.x.Put(keys.Instance(svc, in.ID), b); err != nil {
		t.Fatal(err)
	}
	s.rev++
	s.cur = s.x.Snapshot(s.rev)
	select {
	case s.updates <- struct{}{}:
	default:
	}
}

// start runs a Server over src until the test ends.
func start(t *testing.T, src *source) *httptest.Server {
	s := ui.New(ui.Options{Source: src, MinInterval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	hs.Start()
	t.Cleanup(func() { cancel(); hs.Close(); <-done })
	return hs
}

// get returns the status and body of url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

type payload struct {
	Rev   int64 `json:"rev"`
	Nodes []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"nodes"`
	Roots []struct {
		Service string   `json:"service"`
		Waiting []string `json:"waiting"`
	} `json:"roots"`
	DOT string `json:"dot"`
}

// graphAt polls /v1/graph until it shows revision rev.
func graphAt(t *testing.T, base string, rev int64) payload {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get(t, base+"/v1/graph")
		var p payload
		if code == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &p); err != nil {
				t.Fatalf("/v1/graph: %v: %s", err, body)
			}
			if p.Rev == rev {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/v1/graph did not reach revision %d: %d %s", rev, code, body)
		}
		time.Sleep(5 * time.Millisecond) // polling an HTTP endpoint for a condition, bounded above
	}
}

// chain registers web → api → db with db failing; revision 3.
func chain(t *testing.T, src *source) {
	src.put(t, "db", health.Critical, health.Critical)
	src.put(t, "api", health.Passing, health.Critical, "db")
	src.put(t, "web", health.Passing, health.Critical, "api")
}

func TestGraphAndWhy(t *testing.T) {
	src := newSource()
	hs := start(t, src)
	if code, body := get(t, hs.URL+"/v1/graph"); code != http.StatusServiceUnavailable {
		t.Errorf("/v1/graph before the first read = %d %s, want 503", code, body)
	}
	chain(t, src)
	p := graphAt(t, hs.URL, 3)
	if len(p.Nodes) != 3 || len(p.Roots) != 1 || p.Roots[0].Service != "db" || strings.Join(p.Roots[0].Waiting, ",") != "api,web" {
		t.Errorf("/v1/graph = %+v, want 3 nodes and root db waited on by api,web", p)
	}
	if !strings.Contains(p.DOT, `id="svc-db", class="svc root"`) {
		t.Errorf("/v1/graph dot does not mark db as root:\n%s", p.DOT)
	}
	code, body := get(t, hs.URL+"/v1/why/web")
	var d struct {
		Healthy bool
		Roots   []struct {
			Service string
			Chain   []string
		}
	}
	if err := json.Unmarshal([]byte(body), &d); code != 200 || err != nil || len(d.Roots) != 1 || strings.Join(d.Roots[0].Chain, ">") != "web>api>db" {
		t.Errorf("/v1/why/web = %d %s, want root db through web>api>db", code, body)
	}
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/v1/why/nope", http.StatusNotFound},
		{"GET", "/v1/why/Bad_Name", http.StatusBadRequest},
		{"POST", "/v1/graph", http.StatusMethodNotAllowed},
		{"DELETE", "/v1/why/db", http.StatusMethodNotAllowed},
		{"PUT", "/index.html", http.StatusMethodNotAllowed},
		{"HEAD", "/v1/events", http.StatusOK}, // answered, not streamed
		{"HEAD", "/v1/graph", http.StatusOK},
	} {
		req, _ := http.NewRequest(tc.method, hs.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, resp.StatusCode, tc.code)
		}
	}
}

func TestEventsFollowTheRegistry(t *testing.T) {
	src := newSource()
	hs := start(t, src)
	chain(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", hs.URL+"/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("/v1/events Content-Type = %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	// next returns the payload of the next event.
	next := func() payload {
		t.Helper()
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading /v1/events: %v", err)
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				var p payload
				if err := json.Unmarshal([]byte(data), &p); err != nil {
					t.Fatalf("event data: %v: %s", err, data)
				}
				return p
			}
		}
	}
	p := next()
	for p.Rev < 3 { // the stream may have started at an earlier revision
		p = next()
	}
	if len(p.Roots) != 1 || p.Roots[0].Service != "db" {
		t.Fatalf("first event at rev %d: roots %+v, want db", p.Rev, p.Roots)
	}
	src.put(t, "db", health.Passing, health.Passing)
	for p.Rev < 4 {
		p = next()
	}
	for _, n := range p.Nodes {
		if n.Name == "db" && n.State != "healthy" {
			t.Errorf("after db recovered, event shows db %s", n.State)
		}
	}
	if len(p.Roots) != 1 || p.Roots[0].Service != "api" {
		// api's record still says deep critical (no registrar rewrote
		// it here): it is now the root, and db is not.
		t.Errorf("after db recovered, roots = %+v, want api only", p.Roots)
	}
}

func TestAssetsEmbedded(t *testing.T) {
	hs := start(t, newSource())
	for _, tc := range []struct{ path, contains string }{
		{"/", `<script src="viz-global.js" defer></script>`},
		{"/app.js", `new EventSource("v1/events")`},
		{"/style.css", "#graph"},
		{"/viz-global.js", "Viz.js 3.31.0"},
	} {
		code, body := get(t, hs.URL+tc.path)
		if code != 200 || !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s = %d, %d bytes, want 200 containing %q", tc.path, code, len(body), tc.contains)
		}
	}
	if code, _ := get(t, hs.URL+"/README.md"); code != http.StatusNotFound {
		t.Errorf("GET /README.md = %d, want 404 (only the page's files are embedded)", code)
	}
}
