package daemon

import (
	"slices"
	"strings"
	"testing"

	"github.com/rewire/rewire/registry"
	"github.com/urfave/cli/v2"
)

func TestApplyEtcdFlagsPrecedence(t *testing.T) {
	file := registry.Config{Endpoints: []string{"file:2379"}, Prefix: "/file"}
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		from       registry.Config
		wantEP     []string
		wantPrefix string
	}{
		{name: "default", from: registry.Config{}, wantEP: []string{"127.0.0.1:2379"}},
		{name: "file", from: file, wantEP: []string{"file:2379"}, wantPrefix: "/file"},
		{name: "shared env beats file", from: file, env: map[string]string{"REWIRE_ETCD": "env:1"}, wantEP: []string{"env:1"}, wantPrefix: "/file"},
		{name: "app env beats file", from: file, env: map[string]string{"TEST_ETCD": "env:2", "TEST_PREFIX": "/env"}, wantEP: []string{"env:2"}, wantPrefix: "/env"},
		{name: "flag beats env", from: file, env: map[string]string{"TEST_ETCD": "env:2"}, args: []string{"--etcd", "a:1, b:2", "--prefix", "/flag"}, wantEP: []string{"a:1", "b:2"}, wantPrefix: "/flag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var got registry.Config
			app := &cli.App{Flags: EtcdFlags("TEST"), Action: func(c *cli.Context) error {
				got = ApplyEtcdFlags(c, tc.from)
				return nil
			}}
			if err := app.Run(append([]string{"x"}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Endpoints, tc.wantEP) || got.Prefix != tc.wantPrefix {
				t.Errorf("ApplyEtcdFlags(%v, env %v) = %v %q, want %v %q", tc.args, tc.env, got.Endpoints, got.Prefix, tc.wantEP, tc.wantPrefix)
			}
		})
	}
}

func TestInterspersedArgs(t *testing.T) {
	app := &cli.App{Commands: []*cli.Command{
		{Name: "maint", Subcommands: []*cli.Command{{Name: "enable", Flags: []cli.Flag{
			&cli.StringFlag{Name: "reason"}, &cli.BoolFlag{Name: "json"},
		}}}},
		{Name: "wait", Flags: []cli.Flag{&cli.DurationFlag{Name: "timeout"}}},
	}}
	tests := []struct{ in, want string }{
		{"r maint enable web --reason disk", "r maint enable --reason disk -- web"},
		{"r maint enable --reason=disk web --json", "r maint enable --reason=disk --json -- web"},
		{"r wait web db --timeout 5s", "r wait --timeout 5s -- web db"},
		{"r wait web -- --timeout", "r wait web -- --timeout"},
		{"r wait web", "r wait web"},
		{"r wait web -1 --timeout 5s", "r wait --timeout 5s -- web -1"},
		{"r", "r"},
	}
	for _, tc := range tests {
		got := strings.Join(InterspersedArgs(app, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("InterspersedArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
