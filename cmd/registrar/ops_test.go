package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// registry is an etcd holding instance records written by hand, and the
// commands run against it in process.
type testRegistry struct {
	t   *testing.T
	e   *etcdtest.Etcd
	cli *clientv3.Client
}

func newRegistry(t *testing.T) *testRegistry {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	e := etcdtest.Start(t)
	return &testRegistry{t: t, e: e, cli: e.Client(t)}
}

// add registers an instance record with the given shallow health.
func (r *testRegistry) add(service, id, shallow string) {
	r.t.Helper()
	rec := fmt.Sprintf(`{"v":1,"service":%q,"id":%q,"node":"vm1","address":"10.0.0.1","port":8080,"health":{"shallow":%q}}`, service, id, shallow)
	ctx, cancel := context.WithTimeout(r.t.Context(), 5*time.Second)
	defer cancel()
	if _, err := r.cli.Put(ctx, "/rw/services/"+service+"/"+id, rec); err != nil {
		r.t.Fatal(err)
	}
}

// has reports whether key exists.
func (r *testRegistry) has(key string) bool {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), 5*time.Second)
	defer cancel()
	resp, err := r.cli.Get(ctx, key)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp.Count > 0
}

// run runs `registrar ARGS --etcd … --prefix /rw`.
func (r *testRegistry) run(args ...string) (code int, stdout, stderr string) {
	r.t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(r.t.Context(), 20*time.Second)
	defer cancel()
	argv := append(append([]string{"registrar"}, args...), "--etcd", r.e.Endpoints[0], "--prefix", "/rw")
	code = run(ctx, argv, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestMaintEnableChecksItsTarget(t *testing.T) {
	r := newRegistry(t)
	r.add("web", "web-1", "passing")
	r.add("web", "web-2", "passing")
	r.add("db", "db-1", "critical")
	r.add("api", "api-1", "passing")
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		key     string // written when code is 0
		stdout  string
		stderr  string
		noWrite string // key that must not be written
	}{
		{name: "service nobody registered", args: []string{"maint", "enable", "nosuch"}, code: 1,
			stderr: `service "nosuch" has no registered instance (registered: api, db, web); pass --force`, noWrite: "/rw/maintenance/nosuch"},
		{name: "instance of a service nobody registered", args: []string{"maint", "enable", "nosuch/x"}, code: 1,
			stderr: `service "nosuch" has no registered instance`, noWrite: "/rw/maintenance/nosuch/x"},
		{name: "unknown instance", args: []string{"maint", "enable", "web/web-9"}, code: 1,
			stderr: `web has no instance "web-9" (instances: web-1, web-2); pass --force`, noWrite: "/rw/maintenance/web/web-9"},
		{name: "ahead of registration, forced", args: []string{"maint", "enable", "nosuch", "--force"},
			key: "/rw/maintenance/nosuch", stdout: "nosuch: maintenance on (by "},
		{name: "one of two routable", args: []string{"maint", "enable", "web/web-1", "--reason", "disk swap"},
			key: "/rw/maintenance/web/web-1", stdout: ": disk swap)\n"},
		{name: "the last routable", args: []string{"maint", "enable", "web/web-2"}, code: 1,
			stderr: "web/web-2 is the last routable instance of web: in maintenance, web has none and its traffic fails; pass --force", noWrite: "/rw/maintenance/web/web-2"},
		{name: "the last routable, forced", args: []string{"maint", "enable", "web/web-2", "--force"},
			key: "/rw/maintenance/web/web-2", stderr: "warning: web now has no routable instance"},
		{name: "a whole service warns", args: []string{"maint", "enable", "api"},
			key: "/rw/maintenance/api", stderr: "warning: api now has no routable instance: its traffic fails until `registrar maint disable api`"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := r.run(tc.args...)
			if code != tc.code {
				t.Errorf("%v: exit code %d, want %d (stdout %q, stderr %q)", tc.args, code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("%v: stdout %q, stderr %q; want them to contain %q and %q", tc.args, stdout, stderr, tc.stdout, tc.stderr)
			}
			if tc.key != "" && !r.has(tc.key) {
				t.Errorf("%v: %s not written", tc.args, tc.key)
			}
			if tc.noWrite != "" && r.has(tc.noWrite) {
				t.Errorf("%v: %s written although refused", tc.args, tc.noWrite)
			}
		})
	}
	// db had no routable instance before: nothing to warn about.
	if _, _, stderr := r.run("maint", "enable", "db"); stderr != "" {
		t.Errorf("maint enable db (no routable instance anyway): stderr %q, want none", stderr)
	}
}

func TestMaintEnableWithoutReason(t *testing.T) {
	r := newRegistry(t)
	r.add("web", "web-1", "passing")
	r.add("web", "web-2", "passing")
	code, stdout, _ := r.run("maint", "enable", "web/web-1")
	if code != 0 || !strings.HasSuffix(stdout, ")\n") || strings.Contains(stdout, ": )") || !strings.Contains(stdout, "maintenance on (by ") {
		t.Errorf("maint enable without --reason = %d, %q; want \"…maintenance on (by user@host)\"", code, stdout)
	}
}

func TestLsShowsMaintenanceAndStaysAligned(t *testing.T) {
	r := newRegistry(t)
	r.add("api", "api-1", "passing")
	r.add("web", "web-1", "passing")
	r.add("web", "web-2", "passing")
	r.add("web", "web-3", "passing")
	for _, args := range [][]string{
		{"expect", "api", "3"},
		{"maint", "enable", "web/web-1", "--reason", "kernel upgrade"},
		{"maint", "enable", "web/web-2"},
	} {
		if code, stdout, stderr := r.run(args...); code != 0 {
			t.Fatalf("%v = %d: %s%s", args, code, stdout, stderr)
		}
	}
	code, stdout, stderr := r.run("ls")
	if code != 0 {
		t.Fatalf("ls = %d: %s", code, stderr)
	}
	t.Logf("ls:\n%s", stdout)
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	col := strings.Index(lines[0], "SHALLOW")
	var rows int
	for _, l := range lines[1:] {
		if strings.Contains(l, "reporting") {
			if !strings.Contains(l, "(1 of 3 reporting)") || strings.Index(l, "(1 of") != strings.Index(lines[0], "NOTES") {
				t.Errorf("summary line %q: want (1 of 3 reporting) in the NOTES column", l)
			}
			continue
		}
		rows++
		if len(l) < col || !strings.HasPrefix(l[col:], "passing") {
			t.Errorf("row %q: the SHALLOW column does not start at %d like the header's", l, col)
		}
		switch {
		case strings.Contains(l, "web-1") && !strings.Contains(l, "maintenance by ") || strings.Contains(l, "web-1") && !strings.HasSuffix(l, ": kernel upgrade"):
			t.Errorf("row %q: want the maintenance reason", l)
		case strings.Contains(l, "web-2") && (!strings.Contains(l, "maintenance by ") || strings.HasSuffix(l, ":")):
			t.Errorf("row %q: want maintenance by someone, no dangling colon", l)
		case strings.Contains(l, "web-3") && strings.Contains(l, "maintenance"):
			t.Errorf("row %q: not in maintenance", l)
		}
	}
	if rows != 4 {
		t.Errorf("ls listed %d instances, want 4", rows)
	}
	if _, stdout, _ := r.run("ls", "--json"); !strings.Contains(stdout, `"reason": "kernel upgrade"`) {
		t.Errorf("ls --json does not show the maintenance entry:\n%s", stdout)
	}
}

func TestExpectNegativeCount(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"registrar", "expect", "web", "-1", "--etcd", "127.0.0.1:1"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "count must be ≥ 0, got -1") || strings.Contains(stdout.String()+stderr.String(), "USAGE") {
		t.Errorf("expect web -1 = %d, stdout %q, stderr %q; want \"count must be ≥ 0\" and no usage", code, stdout.String(), stderr.String())
	}
}

func TestWaitSaysWhatItWaitsFor(t *testing.T) {
	r := newRegistry(t)
	r.add("db", "db-1", "critical")
	code, stdout, _ := r.run("wait", "web", "db", "--timeout", "300ms")
	if code != 3 {
		t.Errorf("wait = %d, want 3 (timed out)", code)
	}
	if !strings.HasPrefix(stdout, "waiting for: web (not registered); db (1 registered, none routable)\n") {
		t.Errorf("wait printed %q, want it to start with what it waits for", stdout)
	}
}
