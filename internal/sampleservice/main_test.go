package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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

func TestHandler(t *testing.T) {
	db := httptest.NewServer(handler("db", "app2", ""))
	defer db.Close()
	api := httptest.NewServer(handler("api", "app1", db.URL+"/db/chain"))
	defer api.Close()
	broken := httptest.NewServer(handler("web", "app1", "http://127.0.0.1:1/api/chain"))
	defer broken.Close()
	tests := []struct {
		name, url  string
		wantStatus int
		wantBody   string
	}{
		{"healthz", api.URL + "/healthz", 200, "ok\n"},
		{"own answer", api.URL + "/api/", 200, "api on app1\n"},
		{"chain calls the upstream", api.URL + "/api/chain", 200, "api on app1\ndb on app2\n"},
		{"chain without upstream", db.URL + "/db/chain", 200, "db on app2\n"},
		{"upstream down", broken.URL + "/web/chain", http.StatusBadGateway, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := get(t, tc.url)
			if status != tc.wantStatus || (tc.wantBody != "" && body != tc.wantBody) {
				t.Errorf("GET %s = %d %q, want %d %q", tc.url, status, body, tc.wantStatus, tc.wantBody)
			}
		})
	}
}
