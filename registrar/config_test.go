package registrar

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rewire/rewire/internal/yamlconf"
)

func TestGoodConfig(t *testing.T) {
	cfg, _, err := loadConfig("testdata/full.good.yaml")
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if got := cfg.Services[0].Address; got != "127.0.0.1" {
		t.Errorf("address template resolved to %q, want 127.0.0.1", got)
	}
	if got := cfg.Services[1].ID; got != "app1-9090" {
		t.Errorf("default id = %q, want app1-9090", got)
	}
	if got := cfg.Services[0].Checks[2].check().Kind; got != "deep" {
		t.Errorf("kind = %q, want deep", got)
	}
}

// wantErr is one located error LoadConfig must report.
type wantErr struct {
	line  int
	field string
	text  string // a substring of the message after "file:line: field: "
}

// TestBadConfigs loads every testdata/*.bad.yaml. Each problem must be its
// own error, located at file:line and naming the field path.
func TestBadConfigs(t *testing.T) {
	tests := []struct {
		file string
		want []wantErr
	}{
		{file: "bad-duration.bad.yaml", want: []wantErr{
			{line: 9, field: "services[0].checks[0].interval", text: `cannot use str "2 seconds" here: want a duration like 2s or 500ms`},
		}},
		{file: "bad-fields.bad.yaml", want: []wantErr{
			{line: 3, field: "services[0].name", text: `invalid name "Web_Server"`},
			{line: 4, field: "services[0].address", text: `"10.0.0.1 backup" is neither an IP address nor a DNS name`},
			{line: 5, field: "services[0].port", text: "70000 out of range 1-65535"},
			{line: 6, field: "services[0].weight", text: "300 out of range 0-256"},
			{line: 7, field: "services[0].tags[0]", text: `"a b": contains ' '`},
			{line: 8, field: "services[0].depends_on[0]", text: `invalid name "DB!"`},
		}},
		{file: "duplicate-id.bad.yaml", want: []wantErr{
			{line: 4, field: "services[1].id", text: "duplicate instance web/web-1 (also services[0])"},
		}},
		{file: "missing-name.bad.yaml", want: []wantErr{
			{line: 6, field: "services[1].name", text: "missing"},
		}},
		{file: "two-check-types.bad.yaml", want: []wantErr{
			{line: 7, field: "services[0].checks[0].tcp", text: "check sets http and tcp: set exactly one of http, tcp, exec, grpc, ttl"},
		}},
		{file: "unknown-field.bad.yaml", want: []wantErr{
			{line: 5, field: "services[0].adress", text: `unknown field "adress"`},
		}},
		{file: "wrong-type.bad.yaml", want: []wantErr{
			{line: 5, field: "services[0].port", text: `cannot use str "eighty" here: want an integer`},
		}},
		{file: "bad-dep-name.bad.yaml", want: []wantErr{
			{line: 8, field: "services[0].depends_on[1]", text: `invalid name "Bad Name": must match`},
		}},
		{file: "self-dependency.bad.yaml", want: []wantErr{
			{line: 9, field: "services[1].depends_on[1]", text: "service web cannot depend on itself"},
		}},
		{file: "grpc-target.bad.yaml", want: []wantErr{
			{line: 10, field: "services[0].checks[1].grpc", text: `"localhost/api.v1.Health": want host:port or host:port/service`},
		}},
		{file: "ttl-too-short.bad.yaml", want: []wantErr{
			{line: 8, field: "services[0].checks[0].ttl", text: "500ms is too short: use 1s or more"},
		}},
		// Decode and validation errors together, each at its own line, and in
		// a flow mapping at the field that is wrong, not the first one.
		{file: "four-errors.bad.yaml", want: []wantErr{
			{line: 4, field: "services[0].port", text: "70000 out of range 1-65535"},
			{line: 6, field: "services[0].checks[0].interval", text: `cannot use str "2x" here: want a duration`},
			{line: 7, field: "services[0].checks[1].exec", text: "empty command"},
			{line: 10, field: "services[1].tgas", text: `unknown field "tgas"`},
		}},
		{file: "listen-all.bad.yaml", want: []wantErr{
			{line: 3, field: "listen", text: `":9701" binds every interface: the registrar would be reachable from the network; use 127.0.0.1 or [::1], or set listen_non_loopback: true`},
			{line: 4, field: "api_socket_mode", text: "0666 lets every local user write to the API"},
		}},
		{file: "reserved-check-name.bad.yaml", want: []wantErr{
			{line: 9, field: "services[0].checks[1].name", text: `"dep.db": names starting with "dep." are reserved for dependencies`},
		}},
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		covered[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			_, err := LoadConfig(path)
			if err == nil {
				t.Fatalf("LoadConfig(%q) = nil error, want %d errors", path, len(tc.want))
			}
			got := unjoin(err)
			if len(got) != len(tc.want) {
				t.Fatalf("LoadConfig(%q) returned %d errors, want %d:\n%v", path, len(got), len(tc.want), err)
			}
			for i, w := range tc.want {
				var ye *yamlconf.Error
				if !errors.As(got[i], &ye) {
					t.Errorf("error %d = %T (%v), want a *yamlconf.Error", i, got[i], got[i])
					continue
				}
				if ye.File != path || ye.Line != w.line || ye.Field != w.field {
					t.Errorf("error %d at %s:%d field %q, want %s:%d field %q", i, ye.File, ye.Line, ye.Field, path, w.line, w.field)
				}
				prefix := path + ":" + strconv.Itoa(w.line) + ": " + w.field + ": "
				if msg := got[i].Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, w.text) {
					t.Errorf("error %d = %q, want %q followed by something containing %q", i, msg, prefix, w.text)
				}
			}
		})
	}
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("%s has no entry in the table", f)
		}
	}
}

// TestCheckListen: only loopback addresses are accepted, unless
// listen_non_loopback opts in.
func TestCheckListen(t *testing.T) {
	for _, tc := range []struct {
		listen string
		opt    bool
		ok     bool
	}{
		{"127.0.0.1:9701", false, true},
		{"127.0.0.2:9701", false, true},
		{"[::1]:9701", false, true},
		{"localhost:9701", false, true},
		{"", false, false},
		{":9701", false, false},
		{"0.0.0.0:9701", false, false},
		{"[::]:9701", false, false},
		{"10.1.2.3:9701", false, false},
		{"app1.example:9701", false, false},
		{"10.1.2.3:9701", true, true},
		{":9701", true, true},
		{"9701", true, false},
	} {
		err := Config{Listen: tc.listen, ListenNonLoopback: tc.opt}.CheckListen()
		if (err == nil) != tc.ok {
			t.Errorf("CheckListen(%q, listen_non_loopback %t) = %v, want ok %t", tc.listen, tc.opt, err, tc.ok)
		}
	}
}
