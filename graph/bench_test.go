package graph_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/rewire/rewire/graph"
	"github.com/rewire/rewire/registry/schema"
)

// large returns a registry of n services and about edges dependencies
// (each service depends on edges/n or so services with smaller numbers,
// so the graph is acyclic), one instance each. Every 100th service
// depends on nothing and is down (shallow critical) and every service that depends on a down one,
// directly or not, reports deep critical, as registrars would.
func large(tb testing.TB, n, edges int) *schema.Snapshot {
	if edges > n*(n-1)/4 {
		tb.Fatalf("large(%d, %d): too many edges for an acyclic graph of that size", n, edges)
	}
	r := rand.New(rand.NewPCG(1, 2))
	per := edges / n
	deps := make([][]int, n)
	bad := make([]bool, n)
	total := 0
	for i := range n {
		for i%100 != 0 && len(deps[i]) < min(per, i) {
			if d := r.IntN(i); !slices.Contains(deps[i], d) {
				deps[i] = append(deps[i], d)
			}
		}
		total += len(deps[i])
	}
	// Top up to exactly edges, from the last services (which have the
	// most to choose from).
	for k := 1; total < edges; k++ {
		i := n - 1 - k%(n/2)
		if d := r.IntN(i); i%100 != 0 && !slices.Contains(deps[i], d) {
			deps[i] = append(deps[i], d)
			total++
		}
	}
	for i := range n {
		bad[i] = i%100 == 0
		for _, d := range deps[i] {
			bad[i] = bad[i] || bad[d]
		}
	}
	lines := make([]string, n)
	for i := range n {
		line := fmt.Sprintf("s%04d/i%d", i, i)
		if len(deps[i]) > 0 {
			names := make([]string, len(deps[i]))
			for k, d := range deps[i] {
				names[k] = fmt.Sprintf("s%04d", d)
			}
			line += " deps=" + strings.Join(names, ",")
		}
		switch {
		case i%100 == 0:
			line += " shallow=critical"
		case bad[i]:
			line += " deep=critical"
		}
		lines[i] = line
	}
	return registry(tb, lines...)
}

// The numbers go in docs/PERFORMANCE.md.
func BenchmarkGraph(b *testing.B) {
	snap := large(b, 1000, 5000)
	g := graph.Build(snap)
	b.Logf("%s; %d roots", g, len(g.Roots()))
	b.Run("build", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			graph.Build(snap)
		}
	})
	// The service with the most unhealthy dependencies behind it.
	worst, most := "", -1
	for _, n := range g.Nodes {
		if up, _ := g.Upstream(n.Name); !n.Healthy && len(up) > most {
			worst, most = n.Name, len(up)
		}
	}
	b.Run("why", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := g.Why(worst); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("roots", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g.Roots()
		}
	})
	b.Run("order", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := g.Order(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dot", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g.WriteDOT(io.Discard)
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.NewEncoder(io.Discard).Encode(g)
		}
	})
}
