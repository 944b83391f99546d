// Package yamlconf decodes YAML config files strictly and reports every
// problem with the file, line and field it concerns:
//
//	var cfg Config
//	doc, err := yamlconf.Load("registrar.yaml", &cfg)   // unknown fields, wrong types
//	if err == nil {
//		err = cfg.Validate(doc)                        // doc.Error("services[1].port", ...)
//	}
//	// registrar.yaml:7: services[1].port: 70000 out of range 1-65535
//
// A Doc is immutable after Load and safe for concurrent use.
package yamlconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one problem in a config file.
type Error struct {
	File  string
	Line  int    // 0 when unknown
	Field string // dotted path such as services[1].checks[0].interval; may be empty
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Doc is a loaded file: its name and YAML tree, to place errors found
// after decoding.
type Doc struct {
	File string
	root *yaml.Node
}

// Load reads path and decodes it strictly into v.
func Load(path string, v any) (*Doc, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Decode(path, data, v)
}

// Decode decodes data strictly into v: an unknown field, a wrong type or a
// second document is an error. name is used in error messages.
func Decode(name string, data []byte, v any) (*Doc, error) {
	d := &Doc{File: name, root: &yaml.Node{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(d.root); err != nil {
		if errors.Is(err, io.EOF) {
			return d, &Error{File: name, Err: errors.New("file is empty")}
		}
		return d, d.wrapYAML(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return d, &Error{File: name, Line: extra.Line, Err: errors.New("more than one YAML document")}
	}
	// Re-decode from the bytes so KnownFields applies.
	dec = yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return d, d.wrapYAML(err)
	}
	return d, nil
}

var (
	lineRE     = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	unknownRE  = regexp.MustCompile(`^field (\S+) not found in type .*$`)
	typeRE     = regexp.MustCompile("^cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
)

// wrapYAML turns yaml.v3's errors into one *Error per problem.
func (d *Doc) wrapYAML(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, 0, len(te.Errors))
		for _, msg := range te.Errors {
			errs = append(errs, d.fromMessage(msg))
		}
		return errors.Join(errs...)
	}
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: d.File, Line: line, Err: errors.New(m[2])}
	}
	// Errors from custom unmarshalers carry "line N: ..." themselves.
	return d.fromMessage(strings.TrimPrefix(msg, "yaml: "))
}

func (d *Doc) fromMessage(msg string) error {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return &Error{File: d.File, Err: errors.New(msg)}
	}
	line, _ := strconv.Atoi(m[1])
	text := m[2]
	if u := unknownRE.FindStringSubmatch(text); u != nil {
		field := d.pathAt(line, u[1], "")
		return &Error{File: d.File, Line: line, Field: field, Err: fmt.Errorf("unknown field %q", u[1])}
	}
	t := typeRE.FindStringSubmatch(text)
	value := ""
	if t != nil {
		value = t[2]
	}
	field := d.pathAt(line, "", value)
	if t != nil {
		want := t[3]
		if want == "time.Duration" {
			want = "a duration like 2s or 500ms"
		}
		text = fmt.Sprintf("cannot use %s %q here: want %s", t[1], t[2], friendlyType(want))
	}
	return &Error{File: d.File, Line: line, Field: field, Err: errors.New(text)}
}

func friendlyType(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case t == "int" || strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "an integer"
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.Contains(t, "."):
		return "a mapping"
	}
	return t
}

// Error returns an *Error for the field at path (as in "services[1].port"),
// placed at that field's line, or at its nearest ancestor that is present in
// the file.
func (d *Doc) Error(path string, err error) error {
	return &Error{File: d.File, Line: d.Line(path), Field: path, Err: err}
}

// Errorf is Error with a formatted message.
func (d *Doc) Errorf(path, format string, args ...any) error {
	return d.Error(path, fmt.Errorf(format, args...))
}

// Line returns the line of the field at path, or of its nearest ancestor
// present in the file; 0 if nothing matches.
func (d *Doc) Line(path string) int {
	n := d.top()
	if n == nil {
		return 0
	}
	line := n.Line
	for _, step := range splitPath(path) {
		next, keyLine := child(n, step)
		if next == nil {
			if keyLine > 0 {
				line = keyLine
			}
			break
		}
		n, line = next, keyLine
	}
	return line
}

func (d *Doc) top() *yaml.Node {
	if d == nil || d.root == nil || len(d.root.Content) == 0 {
		return nil
	}
	return d.root.Content[0]
}

// child returns the node for step under n and the line to report for it
// (the key's line for mapping entries).
func child(n *yaml.Node, step string) (*yaml.Node, int) {
	if i, err := strconv.Atoi(step); err == nil {
		if n.Kind == yaml.SequenceNode && i >= 0 && i < len(n.Content) {
			return n.Content[i], n.Content[i].Line
		}
		return nil, 0
	}
	if n.Kind != yaml.MappingNode {
		return nil, 0
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == step {
			return n.Content[i+1], n.Content[i].Line
		}
	}
	return nil, 0
}

// splitPath turns "services[1].checks[0].http" into
// ["services" "1" "checks" "0" "http"].
func splitPath(path string) []string {
	path = strings.NewReplacer("[", ".", "]", "").Replace(path)
	var out []string
	for p := range strings.SplitSeq(path, ".") {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// pathAt finds the dotted path of the entry at line whose key is key, or
// (key empty) whose scalar value is value, or failing that the first entry
// on that line.
func (d *Doc) pathAt(line int, key, value string) string {
	if value != "" {
		if p := d.pathWhere(line, func(k, v *yaml.Node) bool { return v.Kind == yaml.ScalarNode && v.Value == value }); p != "" {
			return p
		}
	}
	return d.pathWhere(line, func(k, v *yaml.Node) bool { return key == "" || k.Value == key })
}

// pathWhere returns the path of the first node at line that match accepts;
// for sequence items match sees a nil key.
func (d *Doc) pathWhere(line int, match func(k, v *yaml.Node) bool) string {
	var found string
	var walk func(n *yaml.Node, path string) bool
	walk = func(n *yaml.Node, path string) bool {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := joinPath(path, k.Value)
				if k.Line == line && match(k, v) {
					found = p
					return true
				}
				if walk(v, p) {
					return true
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if c.Kind == yaml.ScalarNode && c.Line == line && match(&yaml.Node{}, c) {
					found = p
					return true
				}
				if walk(c, p) {
					return true
				}
			}
		}
		return false
	}
	if top := d.top(); top != nil {
		walk(top, "")
	}
	return found
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Has reports whether the field at path (as in "templates[0].guards.hold")
// is present in the file, so that a default can apply only where the file
// is silent, and an explicit zero stays zero.
func (d *Doc) Has(path string) bool {
	n := d.top()
	for _, step := range splitPath(path) {
		if n == nil {
			return false
		}
		n, _ = child(n, step)
	}
	return n != nil
}
