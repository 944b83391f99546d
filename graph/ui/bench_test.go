package ui

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rewire/rewire/registry/schema"
)

// largeRegistry is n services with edges dependencies between them (each
// on services with smaller numbers, so acyclic); every 100th depends on
// nothing and is down, and whatever depends on a down one reports deep
// critical.
func largeRegistry(tb testing.TB, n, edges int) *schema.Snapshot {
	r := rand.New(rand.NewPCG(1, 2))
	deps := make([][]int, n)
	for total := 0; total < edges; {
		i := 1 + r.IntN(n-1)
		if d := r.IntN(i); i%100 != 0 && !slices.Contains(deps[i], d) {
			deps[i] = append(deps[i], d)
			total++
		}
	}
	keys := schema.Keys{Prefix: "/b"}
	x := schema.NewIndex(keys)
	bad := make([]bool, n)
	for i := range n {
		bad[i] = i%100 == 0
		var names []string
		for _, d := range deps[i] {
			bad[i] = bad[i] || bad[d]
			names = append(names, fmt.Sprintf("%q", fmt.Sprintf("s%04d", d)))
		}
		shallow, deep := "passing", "passing"
		if i%100 == 0 {
			shallow, deep = "critical", "critical"
		} else if bad[i] {
			deep = "critical"
		}
		svc := fmt.Sprintf("s%04d", i)
		rec := fmt.Sprintf(`{"v":1,"service":%q,"id":"i1","address":"10.0.0.1","port":80,"depends_on":[%s],"health":{"shallow":%q,"deep":%q}}`,
			svc, strings.Join(names, ","), shallow, deep)
		if err := x.Put(keys.Instance(svc, "i1"), []byte(rec)); err != nil {
			tb.Fatal(err)
		}
	}
	return x.Snapshot(1)
}

type staticSource struct{ snap *schema.Snapshot }

func (s staticSource) Current() *schema.Snapshot { return s.snap }
func (s staticSource) Updates() <-chan struct{}  { return nil }

// BenchmarkView is the server's work per registry change: build the
// graph, its roots and DOT, encode the payload. Results in
// docs/PERFORMANCE.md.
func BenchmarkView(b *testing.B) {
	for _, size := range []struct{ n, edges int }{{100, 500}, {1000, 5000}} {
		snap := largeRegistry(b, size.n, size.edges)
		b.Run(fmt.Sprintf("services=%d/edges=%d", size.n, size.edges), func(b *testing.B) {
			b.ReportAllocs()
			var v *view
			for b.Loop() {
				var err error
				if v, err = newView(snap); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(v.body)), "payload-bytes")
		})
	}
}

// BenchmarkBrowser is the page in headless chromium: from navigation to
// the SVG drawn (Graphviz in WebAssembly lays the graph out in the
// page). Skipped without chromium.
func BenchmarkBrowser(b *testing.B) {
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		b.Skip("*** SKIPPING: chromium is not installed ***")
	}
	for _, size := range []struct{ n, edges int }{{50, 100}, {100, 500}, {150, 750}, {1000, 5000}} {
		b.Run(fmt.Sprintf("services=%d/edges=%d", size.n, size.edges), func(b *testing.B) {
			s := New(Options{Source: staticSource{largeRegistry(b, size.n, size.edges)}})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go s.Run(ctx)
			hs := httptest.NewServer(s.Handler())
			defer hs.Close()
			actx, cancelAlloc := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox,
				chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.UserDataDir(b.TempDir()), chromedp.WindowSize(1280, 960),
				chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
				chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true))
			defer cancelAlloc()
			bctx, cancelBrowser := chromedp.NewContext(actx)
			defer cancelBrowser()
			if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := chromedp.Do(bctx, chromedp.Navigate(hs.URL)); err != nil {
					b.Fatal(err)
				}
				deadline := time.Now().Add(5 * time.Minute)
				for {
					done, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`window.rewireMap && window.rewireMap.rendered === 1`))
					if err != nil {
						b.Fatal(err)
					}
					if done {
						break
					}
					if time.Now().After(deadline) {
						b.Fatal("page not drawn after 5m")
					}
					time.Sleep(20 * time.Millisecond) // polling the page for a condition, bounded above
				}
			}
		})
	}
}
