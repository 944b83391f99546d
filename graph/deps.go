package graph

import (
	"maps"
	"slices"

	"github.com/rewire/rewire/registry/schema"
)

// DependsOn returns what a service depends on: the union of its
// instances' depends_on, sorted. These are the edges Build draws; the
// template functions use it without building a whole graph.
func DependsOn(sv *schema.Service) []string {
	if sv == nil {
		return []string{}
	}
	set := map[string]bool{}
	for _, in := range sv.Instances {
		for _, d := range in.DependsOn {
			set[d] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// DependentsIn returns the services of snap that depend on name directly,
// sorted: the reverse of DependsOn, by one pass over the registry.
func DependentsIn(snap *schema.Snapshot, name string) []string {
	out := []string{}
	for _, n := range snap.ServiceNames() {
		for _, in := range snap.Service(n).Instances {
			if slices.Contains(in.DependsOn, name) {
				out = append(out, n)
				break
			}
		}
	}
	return out
}
