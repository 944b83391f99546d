package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestBadConfigExitsNamingFileLineField(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"unknown-field.bad.yaml", []string{`unknown-field.bad.yaml:6: templates[0].reload_cmd: unknown field "reload_cmd"`}},
		{"missing.bad.yaml", []string{
			`missing.bad.yaml:2: templates[0].name: missing`,
			`missing.bad.yaml:5: templates[1].source: stat testdata/nonexistent.tmpl: no such file or directory`,
			`missing.bad.yaml:6: templates[1].destination: directory /nonexistent-dir does not exist`,
		}},
		{"bad-mode.bad.yaml", []string{`bad-mode.bad.yaml:5: templates[0].mode: mode "999": want an octal permission like "0644"`}},
		{"wrong-type.bad.yaml", []string{`wrong-type.bad.yaml:5: templates[0].check: want a string (run by /bin/sh -c) or a list (executed directly)`}},
		// Decode and validation errors of one file, all at once, each at its line.
		{"three-errors.bad.yaml", []string{
			`three-errors.bad.yaml:5: templates[0].mode: mode "999": want an octal permission like "0644"`,
			`three-errors.bad.yaml:6: templates[0].render_timeout: negative`,
			`three-errors.bad.yaml:7: templates[1].max_output: size "lots"`,
		}},
		{"broken-template.bad.yaml", []string{`render: template lb: parse: template: broken.tmpl:2: unclosed action started at broken.tmpl:1`}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			path := filepath.Join("testdata", tc.file)
			code := run(context.Background(), []string{"templater", "check", "-c", path}, &stdout, &stderr)
			if code != 2 {
				t.Errorf("check -c %s: exit code %d, want 2", path, code)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("check -c %s: stderr = %q, want it to contain %q", path, stderr.String(), w)
				}
			}
		})
	}
}

func TestGoodConfigChecks(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"templater", "check", "-c", "testdata/ok.good.yaml"}, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "1 templates OK") {
		t.Errorf("check = %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}
