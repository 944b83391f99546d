package registrar

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// apiClient talks to a local API server started by a test.
type apiClient struct {
	url      string
	c        *http.Client
	token    string       // sent as a bearer token when set
	inflight atomic.Int64 // requests the server is handling (socketAPI)
}

// socketAPI serves h's local API on a unix socket, as `api_socket` does,
// until cleanup.
func socketAPI(t *testing.T, h *harness) *apiClient {
	t.Helper()
	path := filepath.Join(t.TempDir(), "api.sock")
	mux := http.NewServeMux()
	h.a.Register(mux)
	l, err := ListenSocket(SocketOptions{Path: path, Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	api := &apiClient{url: "http://registrar"}
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.inflight.Add(1)
		defer api.inflight.Add(-1)
		mux.ServeHTTP(w, r)
	})
	ctx, cancel := context.WithCancel(context.Background())
	wait := ServeSocket(ctx, l, counted, nil)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		cancel()
		if err := wait(); err != nil {
			t.Errorf("ServeSocket: %v", err)
		}
	})
	api.c = &http.Client{Transport: tr}
	return api
}

// tcpAPI serves h's local API over TCP, as `listen` does, until cleanup.
func tcpAPI(t *testing.T, h *harness, token string) *apiClient {
	t.Helper()
	mux := http.NewServeMux()
	h.a.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &apiClient{url: srv.URL, c: srv.Client(), token: token}
}

// apiCall sends method path with body to the local API and decodes the
// JSON response into out (if not nil).
func apiCall(t *testing.T, api *apiClient, method, path, body string, out any) int {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(opCtx(t), method, api.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if api.token != "" {
		req.Header.Set("Authorization", "Bearer "+api.token)
	}
	resp, err := api.c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	if resp.StatusCode >= 400 {
		var e struct{ Error string }
		if err := json.Unmarshal(data, &e); err != nil || e.Error == "" {
			t.Errorf("%s %s = %d with body %q, want a JSON {\"error\": ...}", method, path, resp.StatusCode, data)
		}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}
