package graph_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rewire/rewire/graph"
	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/registry/schema"
)

var testKeys = schema.Keys{Prefix: "/t"}

// registry builds a snapshot from one line per key, as a registry would
// hold them:
//
//	web/w1 deps=api,db shallow=passing deep=critical draining
//	maint db [REASON...]     (maint db/d1 for one instance)
//	expect web 3
//
// shallow defaults to passing and deep to shallow; an instance gets a
// failing "http" check when shallow is not passing, and a "dep.X" check
// for every dependency, critical when deep is.
func registry(t testing.TB, lines ...string) *schema.Snapshot {
	t.Helper()
	x := schema.NewIndex(testKeys)
	for _, line := range lines {
		f := strings.Fields(line)
		var key string
		var value []byte
		switch f[0] {
		case "maint":
			svc, id, _ := strings.Cut(f[1], "/")
			key = testKeys.Maintenance(svc, id)
			value, _ = json.Marshal(schema.Maintenance{Reason: strings.Join(f[2:], " "), By: "test"})
		case "expect":
			key = testKeys.Expect(f[1])
			value = []byte(`{"instances": ` + f[2] + `}`)
		default:
			key, value = instance(t, f)
		}
		if err := x.Put(key, value); err != nil {
			t.Fatalf("registry line %q: %v", line, err)
		}
	}
	return x.Snapshot(7)
}

func instance(t testing.TB, f []string) (string, []byte) {
	t.Helper()
	svc, id, _ := strings.Cut(f[0], "/")
	in := schema.Instance{V: 1, Service: svc, ID: id, Address: "127.0.0.1", Port: 80,
		Health: schema.Health{Shallow: health.Passing}}
	for _, opt := range f[1:] {
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "deps":
			in.DependsOn = strings.Split(v, ",")
		case "shallow":
			in.Health.Shallow = health.Status(v)
		case "deep":
			in.Health.Deep = health.Status(v)
		case "draining":
			in.Draining = true
		default:
			t.Fatalf("registry: unknown option %q", opt)
		}
	}
	if in.Health.Deep == "" {
		in.Health.Deep = in.Health.Shallow
	}
	if in.Health.Shallow != health.Passing {
		in.Health.Checks = append(in.Health.Checks, schema.Check{Name: "http", Kind: health.Shallow, Status: in.Health.Shallow, Output: "connection refused"})
	}
	for _, d := range in.DependsOn {
		st := health.Passing
		if in.Health.Deep == health.Critical {
			st = health.Critical
		}
		in.Health.Checks = append(in.Health.Checks, schema.Check{Name: "dep." + d, Kind: health.Deep, Status: st, Output: d + ": status " + string(st)})
	}
	b, err := in.Marshal()
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	return testKeys.Instance(svc, id), b
}

// describe is a graph in one line: "api:waiting db:root web:waiting |
// api>db web>api".
func describe(g *graph.Graph) string {
	var nodes, edges []string
	for _, n := range g.Nodes {
		nodes = append(nodes, n.Name+":"+n.State)
	}
	for _, e := range g.Edges {
		edges = append(edges, e.From+">"+e.To)
	}
	return strings.Join(nodes, " ") + " | " + strings.Join(edges, " ")
}
