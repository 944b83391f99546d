package promtext

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func serve(t *testing.T, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestScrape(t *testing.T) {
	addr := serve(t, `# HELP a_total A.
# TYPE a_total counter
a_total{x="1"} 2
a_total{x="2 words"} 3.5
b_seconds_bucket{le="+Inf"} 7
`)
	got, err := Scrape(addr, "a_")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{`a_total{x="1"}`: 2, `a_total{x="2 words"}`: 3.5}
	if len(got) != len(want) {
		t.Fatalf("Scrape = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Scrape[%s] = %v, want %v", k, got[k], v)
		}
	}
	if s := Sum(got); s != 5.5 {
		t.Errorf("Sum = %v, want 5.5", s)
	}
	all, err := Scrape(addr, "")
	if err != nil || len(all) != 3 {
		t.Errorf(`Scrape("") = %v, %v; want the 3 samples, no comment lines`, all, err)
	}
}

func TestScrapeBadValue(t *testing.T) {
	addr := serve(t, "a_total nope\n")
	if _, err := Scrape(addr, ""); err == nil || !strings.Contains(err.Error(), `"a_total nope"`) {
		t.Errorf("Scrape of a bad value: err = %v, want one naming the line", err)
	}
}
