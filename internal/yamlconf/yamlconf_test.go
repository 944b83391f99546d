package yamlconf

import (
	"strings"
	"testing"
	"time"
)

type check struct {
	Name     string        `yaml:"name"`
	Interval time.Duration `yaml:"interval"`
}

type conf struct {
	Listen   string `yaml:"listen"`
	Services []struct {
		Name   string  `yaml:"name"`
		Port   int     `yaml:"port"`
		Checks []check `yaml:"checks"`
	} `yaml:"services"`
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"unknown top", "listen: x\nlisen: y\n", `f.yaml:2: lisen: unknown field "lisen"`},
		{"unknown nested", "services:\n  - name: web\n    prot: 80\n", `f.yaml:3: services[0].prot: unknown field "prot"`},
		{"wrong type", "services:\n  - name: web\n    port: eighty\n", `f.yaml:3: services[0].port: cannot use str "eighty" here: want an integer`},
		{"bad duration", "services:\n  - name: web\n    checks:\n      - {name: a, interval: 2x}\n", `f.yaml:4: services[0].checks[0].interval: cannot use str "2x" here: want a duration like 2s or 500ms`},
		{"syntax", "services: [\n", `f.yaml:1: did not find expected node content`},
		{"empty", "", `f.yaml: file is empty`},
		{"two docs", "listen: a\n---\nlisten: b\n", `more than one YAML document`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c conf
			_, err := Decode("f.yaml", []byte(tc.in), &c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Decode(%q) error = %v, want it to contain %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestDocError(t *testing.T) {
	in := "listen: x\nservices:\n  - name: web\n    port: 1\n  - port: 2\n    checks:\n      - name: a\n"
	var c conf
	doc, err := Decode("f.yaml", []byte(in), &c)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want string
	}{
		{"services[0].port", "f.yaml:4: services[0].port: bad"},
		{"services[1].name", "f.yaml:5: services[1].name: bad"}, // missing: line of the item
		{"services[1].checks[0].name", "f.yaml:7: services[1].checks[0].name: bad"},
		{"listen", "f.yaml:1: listen: bad"},
	}
	for _, tc := range tests {
		if got := doc.Errorf(tc.path, "bad").Error(); got != tc.want {
			t.Errorf("Errorf(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("listen: x\nservices:\n  - name: web\n    port: 1\n")
	f.Add("services: [\n")
	f.Add("a: b\n---\n")
	f.Fuzz(func(t *testing.T, in string) {
		var c conf
		doc, err := Decode("f.yaml", []byte(in), &c)
		if err != nil && !strings.HasPrefix(err.Error(), "f.yaml") {
			t.Errorf("Decode(%q) error %q does not name the file", in, err)
		}
		_ = doc.Line("services[0].checks[1].name")
	})
}
