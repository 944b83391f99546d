package haproxy_test

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/rewire/rewire/haproxy"
)

const goldenPath = "../examples/haproxy/testdata/haproxy.cfg.golden"

func TestParseSections(t *testing.T) {
	cfg := `# preamble comment
global
    maxconn 4096   # trailing comment
	stats socket /run/haproxy/admin.sock mode 600 level admin

defaults base
    mode http
    balance leastconn
    default-server inter 3s

defaults
    mode tcp

frontend fe
    bind 127.0.0.1:80
    http-request return status 200 string "a # not a comment" if { path /x }
    acl a path '/#'
    acl b path /a\#b
backend inherits-last
listen l from base
    bind :81
    server s1 10.0.0.1:80
resolvers dns
    nameserver ns1 10.0.0.53:53
peers p
    peer a 127.0.0.1:1024
    server b 127.0.0.1:1025
`
	c, err := haproxy.Parse([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	type sec struct {
		kind, name string
		args       []string
		line       int
		lines      []string
		servers    int
		defaults   string // Name of Defaults, "-" for nil
	}
	want := []sec{
		{"global", "", nil, 2, []string{"maxconn 4096", "stats socket /run/haproxy/admin.sock mode 600 level admin"}, 0, "-"},
		{"defaults", "base", nil, 6, []string{"mode http", "balance leastconn", "default-server inter 3s"}, 0, "-"},
		{"defaults", "", nil, 11, []string{"mode tcp"}, 0, "-"},
		{"frontend", "fe", nil, 14, []string{"bind 127.0.0.1:80", `http-request return status 200 string "a # not a comment" if { path /x }`, "acl a path '/#'", `acl b path /a\#b`}, 0, ""},
		{"backend", "inherits-last", nil, 19, nil, 0, ""},
		{"listen", "l", []string{"from", "base"}, 20, []string{"bind :81", "server s1 10.0.0.1:80"}, 1, "base"},
		{"resolvers", "dns", nil, 23, []string{"nameserver ns1 10.0.0.53:53"}, 0, "-"},
		{"peers", "p", nil, 25, []string{"peer a 127.0.0.1:1024", "server b 127.0.0.1:1025"}, 0, "-"},
	}
	if len(c.Sections) != len(want) {
		t.Fatalf("Parse: %d sections, want %d:\n%s", len(c.Sections), len(want), c)
	}
	for i, w := range want {
		s := c.Sections[i]
		var lines []string
		for _, l := range s.Lines {
			lines = append(lines, l.Text)
		}
		defaults := "-"
		if s.Defaults != nil {
			defaults = s.Defaults.Name
		}
		if s.Kind != w.kind || s.Name != w.name || !reflect.DeepEqual(s.Args, w.args) || s.Line != w.line ||
			!reflect.DeepEqual(lines, w.lines) || len(s.Servers) != w.servers || defaults != w.defaults {
			t.Errorf("section %d = %s %q %q line %d lines %q servers %d defaults %q, want %+v",
				i, s.Kind, s.Name, s.Args, s.Line, lines, len(s.Servers), defaults, w)
		}
	}
	if got, _ := c.Section("listen", "l").Setting("balance"); !reflect.DeepEqual(got, []string{"leastconn"}) {
		t.Errorf(`Setting("balance") of listen l = %q, want inherited [leastconn]`, got)
	}
	if got, ok := c.Section("backend", "inherits-last").Setting("balance"); ok {
		t.Errorf(`Setting("balance") of backend inherits-last = %q, want none (last defaults has none)`, got)
	}
	if p, ok := c.StatsSocket(); p != "/run/haproxy/admin.sock" || !ok {
		t.Errorf("StatsSocket() = %q, %t", p, ok)
	}
	if s, _ := c.Section("listen", "l").Server("s1"); !reflect.DeepEqual(s.Defaults, []string{"inter 3s"}) {
		t.Errorf("listen l server s1: Defaults %q, want [inter 3s] from defaults base", s.Defaults)
	}
}

func TestParseServers(t *testing.T) {
	cfg := `defaults
    default-server weight 20 check
backend be
    server ip4 10.0.0.1:8080
    server ip4noport 10.0.0.2
    server ip6 [2001:db8::1]:443 weight 5
    server ip6noport [2001:db8::2]
    server ip6bare ::1:9100
    server host app.example:80 disabled
    server map 10.0.0.3:+1
    server range 10.0.0.4:8000-8010
    server unix unix@/run/app.sock
    server env ${APP_ADDR}:80
    default-server weight 30 disabled
    server later 10.0.0.5:80 enabled inter 2s
    server src 10.0.0.6:80 source 10.1.0.1 usesrc clientip maxconn 10
    server unknown 10.0.0.7:80 frob a b check
    server badweight 10.0.0.8:80 weight x
`
	c, err := haproxy.Parse([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	be := c.Section("backend", "be")
	type srv struct {
		name, addr string
		port       int
		weight     int
		disabled   bool
		options    []string
		defaults   []string
	}
	d1 := []string{"check"}
	d2 := []string{"check"} // weight and disabled are pulled out
	want := []srv{
		{"ip4", "10.0.0.1", 8080, 20, false, nil, d1},
		{"ip4noport", "10.0.0.2", 0, 20, false, nil, d1},
		{"ip6", "2001:db8::1", 443, 5, false, nil, d1},
		{"ip6noport", "2001:db8::2", 0, 20, false, nil, d1},
		{"ip6bare", "::1", 9100, 20, false, nil, d1},
		{"host", "app.example", 80, 20, true, nil, d1},
		{"map", "10.0.0.3:+1", 0, 20, false, nil, d1},
		{"range", "10.0.0.4:8000-8010", 0, 20, false, nil, d1},
		{"unix", "unix@/run/app.sock", 0, 20, false, nil, d1},
		{"env", "${APP_ADDR}", 80, 20, false, nil, d1},
		{"later", "10.0.0.5", 80, 30, false, []string{"inter 2s"}, d2},
		{"src", "10.0.0.6", 80, 30, true, []string{"source 10.1.0.1 usesrc clientip", "maxconn 10"}, d2},
		{"unknown", "10.0.0.7", 80, 30, true, []string{"frob a b", "check"}, d2},
		{"badweight", "10.0.0.8", 80, 30, true, []string{"weight x"}, d2},
	}
	if len(be.Servers) != len(want) {
		t.Fatalf("Parse: %d servers, want %d", len(be.Servers), len(want))
	}
	for i, w := range want {
		s := be.Servers[i]
		got := srv{s.Name, s.Addr, s.Port, s.Weight, s.Disabled, s.Options, s.Defaults}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("server %d = %+v, want %+v", i, got, w)
		}
	}
	if s, _ := be.Server("ip6"); !s.IsIP() {
		t.Errorf("ip6.IsIP() = false")
	}
	if s, _ := be.Server("host"); s.IsIP() {
		t.Errorf("host.IsIP() = true")
	}
}

func TestParseError(t *testing.T) {
	for _, in := range []string{"backend b\n    server\n", "listen l\n    server s1 # no address\n"} {
		_, err := haproxy.Parse([]byte(in))
		var pe *haproxy.ParseError
		if !errors.As(err, &pe) || pe.Line != 2 || !strings.HasPrefix(err.Error(), "haproxy: line 2: ") {
			t.Errorf("Parse(%q) = %v, want a *ParseError at line 2", in, err)
		}
	}
	// A server line outside backend and listen is any other line.
	if _, err := haproxy.Parse([]byte("frontend f\n    server\n")); err != nil {
		t.Errorf("Parse(frontend with server) = %v", err)
	}
}

// TestGolden parses the example's golden output: it is one config the
// templater really renders.
func TestGolden(t *testing.T) {
	text, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := haproxy.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := haproxy.Diff(c, c)
	if err != nil || !plan.Empty() {
		t.Fatalf("Diff(golden, golden) = %+v, %v; want an empty plan", plan, err)
	}
	if p, ok := c.StatsSocket(); p != "/run/haproxy/admin.sock" || !ok {
		t.Errorf("StatsSocket() = %q, %t", p, ok)
	}
	api := c.Section("backend", "api")
	if api == nil || len(api.Servers) != 4 {
		t.Fatalf("backend api: %+v", api)
	}
	want := []haproxy.Server{
		{Name: "api-1", Addr: "10.0.1.1", Port: 9000, Weight: 100, Defaults: []string{"init-addr last,libc,none", "pool-purge-delay 200ms"}},
		{Name: "api-2", Addr: "10.0.1.2", Port: 9000, Weight: 100, Disabled: true, Defaults: []string{"init-addr last,libc,none", "pool-purge-delay 200ms"}},
		{Name: "api-3", Addr: "2001:db8::3", Port: 9000, Weight: 10, Defaults: []string{"init-addr last,libc,none", "pool-purge-delay 200ms"}},
		{Name: "api-4", Addr: "api-4.internal.example", Port: 9000, Weight: 100, Defaults: []string{"init-addr last,libc,none", "pool-purge-delay 200ms"}},
	}
	for i, w := range want {
		s := api.Servers[i]
		s.Line = 0
		if !reflect.DeepEqual(s, w) {
			t.Errorf("api server %d = %+v, want %+v", i, s, w)
		}
	}
	var servers int
	for _, s := range c.Sections {
		servers += len(s.Servers)
	}
	if servers != 11 {
		t.Errorf("golden: %d servers, want 11", servers)
	}
	// Normalising is stable.
	again, err := haproxy.Parse([]byte(c.String()))
	if err != nil || again.String() != c.String() {
		t.Errorf("Parse(String()) differs:\n%s\n---\n%s", c, again)
	}
}

func FuzzParse(f *testing.F) {
	if text, err := os.ReadFile(goldenPath); err == nil {
		f.Add(string(text))
	}
	f.Add(clientBody)
	f.Add(diffBase)
	f.Add("global\n\tstats socket unix@/x level admin\nbackend b from d\n server s [::1]:1 weight 3 disabled source 1.2.3.4 usesrc\n")
	f.Add("listen l 'a\\'b' \"#\" \\\n server a b:+1 c\"d e\"#x\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := haproxy.Parse([]byte(text))
		if err != nil {
			return
		}
		s := c.String()
		again, err := haproxy.Parse([]byte(s))
		if err != nil {
			t.Fatalf("Parse(String()) = %v\n%q", err, s)
		}
		if again.String() != s {
			t.Fatalf("Parse(String()).String() differs:\n%q\n%q", s, again.String())
		}
		plan, err := haproxy.Diff(c, again)
		if err != nil || len(plan.Changes) > 0 {
			t.Fatalf("Diff(c, Parse(c.String())) = %+v, %v; want no changes", plan, err)
		}
		_ = plan.Commands()
		c.StatsSocket()
	})
}
