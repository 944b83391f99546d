package yamlconf

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
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
		// yaml.v3 says line 2, where the enclosing block starts.
		{"misindented key", "listen: x\nservices:\n  - name: web\n    port: 8080\n   checks: []\n", `f.yaml:5: did not find expected '-' indicator`},
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

// cmd fails like a custom unmarshaler does, with only a line number.
type cmd []string

func (c *cmd) UnmarshalYAML(n *yaml.Node) error {
	var argv []string
	if err := n.Decode(&argv); err != nil {
		return err
	}
	if len(argv) == 0 {
		return fmt.Errorf("line %d: command list is empty", n.Line)
	}
	*c = argv
	return nil
}

type tconf struct {
	Templates []struct {
		Name   string        `yaml:"name"`
		Check  cmd           `yaml:"check"`
		Reload cmd           `yaml:"reload"`
		Wait   time.Duration `yaml:"wait"`
	} `yaml:"templates"`
}

// TestDecodeEveryError: every decode error of a file is reported, each at
// its own line and field, flow mappings included (a custom unmarshaler's
// error used to stop decoding and land on the line's first field).
func TestDecodeEveryError(t *testing.T) {
	in := "templates:\n" +
		"  - {name: a, reload: []}\n" +
		"  - {name: b, check: [x], wait: 2x, reload: []}\n" +
		"  - name: c\n" +
		"    relaod: [y]\n"
	var c tconf
	_, err := Decode("f.yaml", []byte(in), &c)
	want := []string{
		"f.yaml:2: templates[0].reload: command list is empty",
		`f.yaml:3: templates[1].wait: cannot use str "2x" here: want a duration like 2s or 500ms`,
		"f.yaml:3: templates[1].reload: command list is empty",
		`f.yaml:5: templates[2].relaod: unknown field "relaod"`,
	}
	if got := strings.Split(fmt.Sprint(err), "\n"); !slices.Equal(got, want) {
		t.Errorf("Decode errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(c.Templates) != 3 || c.Templates[1].Check[0] != "x" || c.Templates[2].Name != "c" {
		t.Errorf("what decoded was not kept: %+v", c.Templates)
	}
}

// TestMerge drops validation errors of fields that did not decode and
// sorts the rest by line.
func TestMerge(t *testing.T) {
	var c conf
	doc, err := Decode("f.yaml", []byte("listen: x\nservices:\n  - name: web\n    port: eighty\n  - name: db\n"), &c)
	if err == nil || !doc.Parsed() {
		t.Fatalf("Decode = %v, parsed %t; want a decode error in a parsed file", err, doc.Parsed())
	}
	v := errors.Join(doc.Errorf("services[1].port", "missing"), doc.Errorf("services[0].port", "0 out of range"), doc.Errorf("listen", "bad"))
	got := doc.Merge(err, v).Error()
	want := "f.yaml:1: listen: bad\n" +
		`f.yaml:4: services[0].port: cannot use str "eighty" here: want an integer` + "\n" +
		"f.yaml:5: services[1].port: missing"
	if got != want {
		t.Errorf("Merge =\n%s\nwant\n%s", got, want)
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

// TestDecodeInline: the fields of a struct embedded with `yaml:",inline"`
// are decoded, and located, as fields of the struct around it.
func TestDecodeInline(t *testing.T) {
	type Base struct {
		Name   string `yaml:"name"`
		Reload cmd    `yaml:"reload"`
	}
	var c struct {
		Templates []struct {
			Base  `yaml:",inline"`
			Extra *check `yaml:"extra"`
		} `yaml:"templates"`
	}
	in := "templates:\n" +
		"  - name: a\n" +
		"    extra: {name: x, interval: 2s}\n" +
		"  - {name: b, reload: [], nmae: c}\n"
	_, err := Decode("f.yaml", []byte(in), &c)
	want := []string{
		"f.yaml:4: templates[1].reload: command list is empty",
		`f.yaml:4: templates[1].nmae: unknown field "nmae"`,
	}
	if got := strings.Split(fmt.Sprint(err), "\n"); !slices.Equal(got, want) {
		t.Errorf("Decode errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(c.Templates) != 2 || c.Templates[0].Name != "a" || c.Templates[0].Extra == nil ||
		c.Templates[0].Extra.Interval != 2*time.Second || c.Templates[1].Name != "b" {
		t.Errorf("decoded %+v", c.Templates)
	}
}
