package yamlconf

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// decodeParts decodes node n into rv piece by piece, following the Go
// type: each struct field, list item and leaf on its own. yaml.v3 stops at
// the first error of a custom unmarshaler, and places errors by line only,
// which cannot tell the fields of a flow mapping apart; here every
// problem is found, and each is reported with the path it happened at.
// Whatever decodes is kept in rv.
func (d *Doc) decodeParts(n *yaml.Node, rv reflect.Value, path string, line int) []error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	t := rv.Type()
	switch {
	case reflect.PointerTo(t).Implements(unmarshalerType), t.Implements(unmarshalerType):
		return d.leaf(n, rv, path, line)
	case t.Kind() == reflect.Pointer:
		if n.Tag == "!!null" {
			return d.leaf(n, rv, path, line)
		}
		if rv.IsNil() {
			rv.Set(reflect.New(t.Elem()))
		}
		return d.decodeParts(n, rv.Elem(), path, line)
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		return d.structParts(n, rv, path)
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode && t.Elem().Kind() != reflect.Uint8:
		rv.Set(reflect.MakeSlice(t, len(n.Content), len(n.Content)))
		var errs []error
		for i, c := range n.Content {
			errs = append(errs, d.decodeParts(c, rv.Index(i), fmt.Sprintf("%s[%d]", path, i), c.Line)...)
		}
		return errs
	}
	return d.leaf(n, rv, path, line)
}

// structParts decodes a mapping into a struct field by field; a key no
// field is named after is an unknown field.
func (d *Doc) structParts(n *yaml.Node, rv reflect.Value, path string) []error {
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := joinPath(path, k.Value)
		f, ok := fieldByTag(rv, k.Value)
		if !ok {
			d.fail(p)
			errs = append(errs, &Error{File: d.File, Line: k.Line, Field: p, Err: fmt.Errorf("unknown field %q", k.Value)})
			continue
		}
		errs = append(errs, d.decodeParts(v, f, p, k.Line)...)
	}
	return errs
}

// fieldByTag returns the exported field of struct rv whose yaml name is
// name (the tag's name, or the lower-cased field name without one),
// looking into structs marked `yaml:",inline"` as yaml.v3 does.
func fieldByTag(rv reflect.Value, name string) (reflect.Value, bool) {
	t := rv.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if tag == "-" {
			continue
		}
		if opts == "inline" && sf.Type.Kind() == reflect.Struct {
			if f, ok := fieldByTag(rv.Field(i), name); ok {
				return f, true
			}
			continue
		}
		if tag == "" {
			tag = strings.ToLower(sf.Name)
		}
		if tag == name {
			return rv.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// leaf decodes n into rv in one piece and places its errors at path.
func (d *Doc) leaf(n *yaml.Node, rv reflect.Value, path string, line int) []error {
	err := n.Decode(rv.Addr().Interface())
	if err == nil {
		return nil
	}
	d.fail(path)
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var errs []error
	for _, msg := range msgs {
		e := d.fromMessage(msg).(*Error)
		if e.Line == 0 {
			e.Line = line
		}
		// The path is known here; the message's own guess at the field
		// (from its line) is only needed inside a nested value.
		if e.Field == "" || !strings.HasPrefix(e.Field, path) {
			e.Field = path
		}
		errs = append(errs, e)
	}
	return errs
}

// fail records that path did not decode: validation errors at or under it
// would only repeat the problem (see Merge).
func (d *Doc) fail(path string) {
	if d.failed == nil {
		d.failed = map[string]bool{}
	}
	d.failed[path] = true
}

// Merge joins the errors of Load or Decode with those a Validate found
// afterwards on what did decode, one per line, sorted by line. Validation
// errors at or under a field that failed to decode are dropped: they would
// only repeat that problem (a field that did not decode looks missing).
func (d *Doc) Merge(decodeErr, validateErr error) error {
	errs := unjoin(decodeErr)
	for _, err := range unjoin(validateErr) {
		var e *Error
		if errors.As(err, &e) && d.failedAt(e.Field) {
			continue
		}
		errs = append(errs, err)
	}
	slices.SortStableFunc(errs, func(a, b error) int { return lineOf(a) - lineOf(b) })
	return errors.Join(errs...)
}

func (d *Doc) failedAt(field string) bool {
	for p := range d.failed {
		if field == p || strings.HasPrefix(field, p+".") || strings.HasPrefix(field, p+"[") {
			return true
		}
	}
	return false
}

func lineOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Line
	}
	return 0
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

// maxSyntaxScan bounds the files whose syntax errors syntaxError places by
// re-parsing: it costs one parse per line.
const maxSyntaxScan = 2000

// syntaxError places a YAML syntax error at the line where the problem
// is. yaml.v3 reports the line where the enclosing block starts (a key
// indented one space too few on line 5 is reported at line 2); the first
// line whose addition makes the file unparsable is the one to look at.
func (d *Doc) syntaxError(data []byte, err error) error {
	e, ok := d.wrapYAML(err).(*Error)
	if !ok || e.Line == 0 {
		return d.wrapYAML(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) > maxSyntaxScan {
		return e
	}
	for k := e.Line; k <= len(lines); k++ {
		var n yaml.Node
		perr := yaml.Unmarshal([]byte(strings.Join(lines[:k], "")), &n)
		if perr == nil {
			continue
		}
		e.Line = k
		break
	}
	return e
}
