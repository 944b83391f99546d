package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/internal/etcdtest"
	"github.com/rewire/rewire/registry/schema"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var testKeys = schema.Keys{Prefix: "/t"}

// putInstance writes a record the way a registrar would: shallow status,
// deep critical when a dependency is down, a failing check's output.
func putInstance(t *testing.T, cli *clientv3.Client, svc, id string, shallow, deep health.Status, deps ...string) {
	t.Helper()
	in := schema.Instance{V: 1, Service: svc, ID: id, Address: "127.0.0.1", Port: 8080, DependsOn: deps,
		Health: schema.Health{Shallow: shallow, Deep: deep,
			Checks: []schema.Check{{Name: "http", Kind: health.Shallow, Status: shallow, Output: "GET /healthz: " + string(shallow)}}}}
	b, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(context.Background(), testKeys.Instance(svc, id), string(b)); err != nil {
		t.Fatal(err)
	}
}

// failingChain is web → api → db (and web → cache, missing) with db down.
func failingChain(t *testing.T) *etcdtest.Etcd {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	putInstance(t, cli, "db", "db-1", health.Critical, health.Critical)
	putInstance(t, cli, "api", "api-1", health.Passing, health.Critical, "db")
	putInstance(t, cli, "api", "api-2", health.Passing, health.Critical, "db")
	putInstance(t, cli, "web", "web-1", health.Passing, health.Critical, "api", "cache")
	putInstance(t, cli, "admin", "admin-1", health.Passing, health.Passing)
	return e
}

// runCLI runs the registrar command line against e and returns its exit code,
// stdout and stderr.
func runCLI(t *testing.T, e *etcdtest.Etcd, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	all := append([]string{"registrar"}, args...)
	all = append(all, "--etcd", e.Endpoints[0], "--prefix", testKeys.Prefix)
	code := run(t.Context(), all, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestGraphCommand(t *testing.T) {
	e := failingChain(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // in stdout (exit 0) or stderr
	}{
		{"text", []string{"graph"}, 0, []string{
			"SERVICE  STATE    INSTANCES",
			"db       root     0/1 routable",
			"cache    missing  missing",
			"web      waiting  1/1 routable  1 passing   1 critical  api, cache",
		}},
		{"order", []string{"graph", "--order"}, 0, []string{"  1. admin, cache (missing), db\n  2. api\n  3. web\n"}},
		{"impact", []string{"graph", "--impact", "db"}, 0, []string{"2 services depend on db, directly or through others:\n  api\n  web\n"}},
		{"impact json", []string{"graph", "--impact", "db", "--format", "json"}, 0, []string{`{"impact":["api","web"],"service":"db"}`}},
		{"impact dot", []string{"graph", "--impact", "api", "--format", "dot"}, 0, []string{`"web" -> "api"`}},
		{"neighbourhood", []string{"graph", "--service", "api", "--format", "mermaid"}, 0, []string{"flowchart LR", `n0["api<br/>2/2 routable"]`, "n2 --> n0"}},
		{"dot", []string{"graph", "--format", "dot"}, 0, []string{`"db" [id="svc-db", class="svc root"`}},
		{"bad format", []string{"graph", "--format", "svg"}, 1, []string{`--format "svg": want text, json, dot or mermaid`}},
		{"two modes", []string{"graph", "--order", "--impact", "db"}, 1, []string{"--order, --impact and --service are alternatives"}},
		{"unknown", []string{"graph", "--impact", "nope"}, 1, []string{`service "nope" is not registered and nothing depends on it`}},
		{"bad name", []string{"graph", "--service", "No!"}, 1, []string{`--service: invalid name "No!"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, e, tc.args...)
			if code != tc.code {
				t.Fatalf("registrar %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", tc.args, code, tc.code, out, errOut)
			}
			got := out
			if code != 0 {
				got = errOut
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("registrar %v: output does not contain %q:\n%s", tc.args, w, got)
				}
			}
		})
	}
}

func TestGraphJSON(t *testing.T) {
	e := failingChain(t)
	code, out, errOut := runCLI(t, e, "graph", "--format", "json")
	if code != 0 {
		t.Fatalf("graph --format json: exit %d: %s", code, errOut)
	}
	var g struct {
		Nodes []struct {
			Name, State string
			Missing     bool
		}
		Edges []struct{ From, To string }
	}
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		t.Fatalf("graph --format json: %v\n%s", err, out)
	}
	var nodes, edges []string
	for _, n := range g.Nodes {
		nodes = append(nodes, n.Name+":"+n.State)
	}
	for _, e := range g.Edges {
		edges = append(edges, e.From+">"+e.To)
	}
	if got, want := strings.Join(nodes, " "), "admin:healthy api:waiting cache:missing db:root web:waiting"; got != want {
		t.Errorf("nodes = %q, want %q", got, want)
	}
	if got, want := strings.Join(edges, " "), "api>db web>api web>cache"; got != want {
		t.Errorf("edges = %q, want %q", got, want)
	}
}

func TestGraphOrderCycle(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	putInstance(t, cli, "a", "a-1", health.Passing, health.Passing, "b")
	putInstance(t, cli, "b", "b-1", health.Passing, health.Passing, "a")
	code, out, errOut := runCLI(t, e, "graph", "--order")
	if code == 0 || !strings.Contains(errOut, "dependency cycle: a → b → a") {
		t.Errorf("graph --order on a cycle: exit %d, stdout %q, stderr %q; want non-zero naming a → b → a", code, out, errOut)
	}
}

func TestWhyCommand(t *testing.T) {
	e := failingChain(t)
	code, out, errOut := runCLI(t, e, "why", "web")
	if code != 0 {
		t.Fatalf("why web: exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"web is unhealthy: it waits on api, cache; root causes: cache, db\n",
		"root cause: cache: not registered\n  chain:    web → cache\n  waiting:  1 service waits on cache: web\n",
		"root cause: db: no routable instance of 1 (1 shallow critical)\n  chain:    web → api → db\n" +
			"  failing:  db-1 http (shallow) critical: GET /healthz: critical\n  waiting:  2 services wait on db: api, web\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("why web: output does not contain %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, e, "why", "admin")
	if code != 0 || !strings.HasPrefix(out, "admin is healthy: 1 of 1 instances routable\n") ||
		!strings.Contains(out, "elsewhere in the registry:\n  2 services wait on db") {
		t.Errorf("why admin: exit %d:\n%s\nwant healthy, then the registry's roots grouped", code, out)
	}
	code, out, _ = runCLI(t, e, "why", "api", "--json")
	var d struct {
		Healthy bool
		Roots   []struct {
			Service string
			Chain   []string
		}
	}
	if err := json.Unmarshal([]byte(out), &d); code != 0 || err != nil || d.Healthy || len(d.Roots) != 1 || d.Roots[0].Service != "db" {
		t.Errorf("why api --json: exit %d, %v:\n%s", code, err, out)
	}
	if code, _, errOut := runCLI(t, e, "why", "nope"); code == 0 || !strings.Contains(errOut, `"nope" is not registered`) {
		t.Errorf("why nope: exit %d, stderr %q", code, errOut)
	}
}

func TestLsShowsWhatDeepCriticalWaitsOn(t *testing.T) {
	e := failingChain(t)
	code, out, errOut := runCLI(t, e, "ls")
	if code != 0 {
		t.Fatalf("ls: exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"api-1    127.0.0.1:8080  passing   critical        waits on db\n",
		// api is still routable: web-1's deep check fails on cache only.
		"web-1    127.0.0.1:8080  passing   critical        waits on cache\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ls: output does not contain %q:\n%s", want, out)
		}
	}
	for line := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(line, "admin") && strings.Contains(line, "waits") {
			t.Errorf("ls: a healthy instance waits on something: %q", line)
		}
	}
}

func TestLsNamesTheRootBehindADependency(t *testing.T) {
	// api goes down because db is: web waits on api, and db is the cause.
	e := etcdtest.Start(t)
	cli := e.Client(t)
	putInstance(t, cli, "db", "db-1", health.Critical, health.Critical)
	putInstance(t, cli, "api", "api-1", health.Critical, health.Critical, "db")
	putInstance(t, cli, "web", "web-1", health.Passing, health.Critical, "api")
	code, out, errOut := runCLI(t, e, "ls")
	if want := "web-1  127.0.0.1:8080  passing   critical        waits on api (root cause: db)\n"; code != 0 || !strings.Contains(out, want) {
		t.Errorf("ls: exit %d, output does not contain %q:\n%s%s", code, want, out, errOut)
	}
}
