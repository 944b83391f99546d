package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBadConfigExitsNamingFileLineField(t *testing.T) {
	tests := []struct {
		file string
		want []string // each must appear in stderr
	}{
		{"unknown-field.bad.yaml", []string{`unknown-field.bad.yaml:5: services[0].adress: unknown field "adress"`}},
		{"wrong-type.bad.yaml", []string{`wrong-type.bad.yaml:5: services[0].port: cannot use str "eighty" here: want an integer`}},
		{"missing-name.bad.yaml", []string{`missing-name.bad.yaml:6: services[1].name: missing`}},
		{"bad-duration.bad.yaml", []string{`bad-duration.bad.yaml:9: services[0].checks[0].interval: cannot use str "2 seconds" here: want a duration`}},
		{"two-check-types.bad.yaml", []string{`two-check-types.bad.yaml:7: services[0].checks[0].tcp: check sets http and tcp: set exactly one of http, tcp, exec, grpc, ttl`}},
		{"duplicate-id.bad.yaml", []string{`duplicate-id.bad.yaml:4: services[1].id: duplicate instance web/web-1 (also services[0])`}},
		{"bad-fields.bad.yaml", []string{
			`bad-fields.bad.yaml:3: services[0].name: invalid name "Web_Server"`,
			`bad-fields.bad.yaml:4: services[0].address: "10.0.0.1 backup" is neither an IP address nor a DNS name`,
			`bad-fields.bad.yaml:5: services[0].port: 70000 out of range 1-65535`,
			`bad-fields.bad.yaml:6: services[0].weight: 300 out of range 0-256`,
			`bad-fields.bad.yaml:7: services[0].tags[0]: "a b": contains ' '`,
			`bad-fields.bad.yaml:8: services[0].depends_on[0]: invalid name "DB!"`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("..", "..", "registrar", "testdata", tc.file)
			for _, cmd := range []string{"run", "check"} {
				var stdout, stderr bytes.Buffer
				code := run(context.Background(), []string{"registrar", cmd, "-c", path}, &stdout, &stderr)
				if code != 2 {
					t.Errorf("%s -c %s: exit code %d, want 2", cmd, path, code)
				}
				for _, w := range tc.want {
					if !strings.Contains(stderr.String(), w) {
						t.Errorf("%s -c %s: stderr = %q, want it to contain %q", cmd, path, stderr.String(), w)
					}
				}
			}
		})
	}
}

func TestFlagOverridesEnvOverridesFile(t *testing.T) {
	// ls reads only flags and env; run reads the file too. Use ls with an
	// unreachable etcd to see which prefix and endpoint win, via the error.
	for _, tc := range []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"default", "", nil, "127.0.0.1:2379"},
		{"env", "127.0.0.1:1", nil, "127.0.0.1:1"},
		{"flag beats env", "127.0.0.1:1", []string{"--etcd", "127.0.0.1:2"}, "127.0.0.1:2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "default" {
				// Debian's etcd-server package may run an etcd on the
				// default address; then ls would succeed.
				if c, err := net.DialTimeout("tcp", "127.0.0.1:2379", 100*time.Millisecond); err == nil {
					c.Close()
					t.Skip("an etcd is listening on 127.0.0.1:2379, the default endpoint")
				}
			}
			if tc.env != "" {
				t.Setenv("REGISTRAR_ETCD", tc.env)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*1e6)
			defer cancel()
			var stdout, stderr bytes.Buffer
			args := append([]string{"registrar", "ls"}, tc.args...)
			if code := run(ctx, args, &stdout, &stderr); code == 0 {
				t.Fatalf("ls against nothing succeeded: %s", stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("ls %v with REGISTRAR_ETCD=%q: stderr %q does not name %s", tc.args, tc.env, stderr.String(), tc.want)
			}
		})
	}
}

func TestCheckAcceptsAGoodConfig(t *testing.T) {
	var stdout, stderr bytes.Buffer
	path := filepath.Join("..", "..", "registrar", "testdata", "full.good.yaml")
	code := run(context.Background(), []string{"registrar", "check", "-c", path}, &stdout, &stderr)
	if code != 0 || !strings.HasSuffix(stdout.String(), "checks OK\n") {
		t.Errorf("check -c %s = %d, stdout %q, stderr %q; want 0 and OK", path, code, stdout.String(), stderr.String())
	}
}

func TestVersionAndHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--version"}, []string{"registrar version ", "go1.", "build tags: "}},
		{[]string{"ls", "--help"}, []string{"--etcd value", "(default: 127.0.0.1:2379)", "$REWIRE_ETCD"}},
		{[]string{"completion", "bash"}, []string{"complete -o bashdefault -o default -F _registrar_complete registrar"}},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"registrar"}, tc.args...), &stdout, &stderr)
		for _, w := range tc.want {
			if code != 0 || !strings.Contains(stdout.String(), w) {
				t.Errorf("registrar %v = %d, stdout %q; want 0 and %q in it (stderr %q)", tc.args, code, stdout.String(), w, stderr.String())
			}
		}
	}
}
