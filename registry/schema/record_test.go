package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewire/rewire/health/status"
)

// minimal is a record with only the required fields.
const minimal = `{"v":1,"service":"web","id":"web-1","address":"10.0.0.5","port":8080,"health":{"shallow":"passing"}}`

// deleted, as a value in record's pairs, removes the field.
var deleted = &struct{ deleted bool }{true}

// record returns minimal with fields changed: sets holds path, value pairs,
// where a path is a field name or "health.<field>".
func record(t testing.TB, sets ...any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(minimal), &m); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(sets); i += 2 {
		path := strings.Split(sets[i].(string), ".")
		obj := m
		for _, p := range path[:len(path)-1] {
			next, ok := obj[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				obj[p] = next
			}
			obj = next
		}
		last := path[len(path)-1]
		if sets[i+1] == deleted {
			delete(obj, last)
		} else {
			obj[last] = sets[i+1]
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fieldsOf returns the Field of every *FieldError in err's tree.
func fieldsOf(err error) []string {
	var fields []string
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *FieldError:
			fields = append(fields, e.Field)
		case interface{ Unwrap() []error }:
			for _, e := range e.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return fields
}

// canonical returns in with times in UTC and unknown fields re-encoded
// canonically, so that reflect.DeepEqual compares meaning, not spelling.
func canonical(t testing.TB, in Instance) Instance {
	t.Helper()
	in.RegisteredAt = in.RegisteredAt.UTC()
	in.Health.Since = in.Health.Since.UTC()
	in.Health.Checks = slices.Clone(in.Health.Checks)
	for i := range in.Health.Checks {
		in.Health.Checks[i].Since = in.Health.Checks[i].Since.UTC()
	}
	if in.extra != nil {
		extra := make(map[string]json.RawMessage, len(in.extra))
		for k, v := range in.extra {
			extra[k] = canonicalJSON(t, v)
		}
		in.extra = extra
	}
	return in
}

func canonicalJSON(t testing.TB, raw []byte) []byte {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("unknown field value %q: %v", raw, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("unknown field value %q: %v", raw, err)
	}
	return b
}

func TestDecodeInstanceMinimalDefaults(t *testing.T) {
	got, err := DecodeInstance([]byte(minimal))
	if err != nil {
		t.Fatalf("DecodeInstance(%q) error = %v", minimal, err)
	}
	want := Instance{
		V: 1, Service: "web", ID: "web-1", Address: "10.0.0.5", Port: 8080,
		Tags: []string{}, Meta: map[string]string{}, Weight: DefaultWeight, DependsOn: []string{},
		Health: Health{Shallow: status.Passing, Deep: status.Passing, Checks: []Check{}},
	}
	// DeepEqual tells nil from empty, so this also checks that lists and
	// maps are empty, not nil (templates range over them).
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DecodeInstance(%q) =\n%#v\nwant\n%#v", minimal, got, want)
	}
}

func TestDecodeInstanceDeepDefaultsToShallow(t *testing.T) {
	for _, s := range []status.Status{status.Passing, status.Warning, status.Critical} {
		data := record(t, "health.shallow", s)
		got, err := DecodeInstance(data)
		if err != nil || got.Health.Deep != s {
			t.Errorf("DecodeInstance(%q) = deep %q, %v; want deep %q", data, got.Health.Deep, err, s)
		}
	}
	data := record(t, "health.shallow", "passing", "health.deep", "critical")
	if got, err := DecodeInstance(data); err != nil || got.Health.Deep != status.Critical {
		t.Errorf("DecodeInstance(%q) = deep %q, %v; want deep %q", data, got.Health.Deep, err, status.Critical)
	}
}

func TestDecodeInstanceFull(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "records", "full.good.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeInstance(data)
	if err != nil {
		t.Fatalf("DecodeInstance(full.good.json) error = %v", err)
	}
	want := Instance{
		V: 1, Service: "web", ID: "web-app1-8080", Node: "app1",
		Address: "10.0.0.5", Port: 8080,
		Tags: []string{"v2"}, Meta: map[string]string{"version": "1.4.2"}, Weight: 100,
		DependsOn: []string{"api", "db"},
		Health: Health{
			Shallow: status.Passing, Deep: status.Critical,
			Checks: []Check{{Name: "http", Kind: status.Shallow, Status: status.Passing, Output: "200 OK",
				Since: time.Date(2026, 11, 21, 18, 59, 58, 0, time.UTC)}},
			Since: time.Date(2026, 11, 21, 19, 0, 0, 0, time.UTC),
		},
		RegisteredAt: time.Date(2026, 11, 21, 17, 0, 0, 123456789, time.UTC),
	}
	if g, w := canonical(t, got), canonical(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("DecodeInstance(full.good.json) =\n%#v\nwant\n%#v", g, w)
	}
}

func TestDecodeInstance(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name      string
		sets      []any  // path, value pairs applied to minimal
		wantField string // "" means the record is valid
		// alsoFields are further fields the error names: deep defaults
		// to shallow, so a bad shallow status makes deep bad too.
		alsoFields []string
		wantIs     error
	}{
		{name: "minimal"},

		{name: "v missing", sets: []any{"v", deleted}, wantField: "v", wantIs: ErrVersion},
		{name: "v 2", sets: []any{"v", 2}, wantField: "v", wantIs: ErrVersion},
		{name: "v 0", sets: []any{"v", 0}, wantField: "v", wantIs: ErrVersion},

		{name: "service missing", sets: []any{"service", deleted}, wantField: "service"},
		{name: "service uppercase", sets: []any{"service", "Web"}, wantField: "service"},
		{name: "id missing", sets: []any{"id", deleted}, wantField: "id"},
		{name: "id with space", sets: []any{"id", "web 1"}, wantField: "id"},

		{name: "address IPv4", sets: []any{"address", "192.168.1.20"}},
		{name: "address IPv6", sets: []any{"address", "2001:db8::1"}},
		{name: "address IPv6 loopback", sets: []any{"address", "::1"}},
		{name: "address IPv4-mapped IPv6", sets: []any{"address", "::ffff:10.0.0.1"}},
		{name: "address DNS name", sets: []any{"address", "web-1.internal.example.com"}},
		{name: "address DNS name trailing dot", sets: []any{"address", "web-1.example.com."}},
		{name: "address single label", sets: []any{"address", "localhost"}},
		{name: "address underscore label", sets: []any{"address", "_http._tcp.example.com"}},
		{name: "address 63-byte label", sets: []any{"address", long(63) + ".example"}},
		{name: "address missing", sets: []any{"address", deleted}, wantField: "address"},
		{name: "address empty", sets: []any{"address", ""}, wantField: "address"},
		{name: "address newline", sets: []any{"address", "10.0.0.1\nx"}, wantField: "address"},
		{name: "address trailing newline", sets: []any{"address", "10.0.0.1\n"}, wantField: "address"},
		{name: "address space", sets: []any{"address", "10.0.0.1 x"}, wantField: "address"},
		{name: "address tab", sets: []any{"address", "web\t1"}, wantField: "address"},
		{name: "address zoned IPv6", sets: []any{"address", "fe80::1%eth0"}, wantField: "address"},
		{name: "address with port", sets: []any{"address", "10.0.0.1:80"}, wantField: "address"},
		{name: "address bracketed IPv6", sets: []any{"address", "[::1]"}, wantField: "address"},
		{name: "address URL", sets: []any{"address", "http://web"}, wantField: "address"},
		{name: "address leading hyphen", sets: []any{"address", "-web.example.com"}, wantField: "address"},
		{name: "address trailing hyphen", sets: []any{"address", "web-.example.com"}, wantField: "address"},
		{name: "address empty label", sets: []any{"address", "web..example.com"}, wantField: "address"},
		{name: "address only dot", sets: []any{"address", "."}, wantField: "address"},
		{name: "address 64-byte label", sets: []any{"address", long(64) + ".example"}, wantField: "address"},
		{name: "address over 253 bytes", sets: []any{"address", strings.Repeat(long(50)+".", 5) + "abcd"}, wantField: "address"},
		{name: "address quote", sets: []any{"address", `web"1`}, wantField: "address"},
		{name: "address hash", sets: []any{"address", "web#1"}, wantField: "address"},
		{name: "address non-ASCII", sets: []any{"address", "wéb.example"}, wantField: "address"},

		{name: "port 1", sets: []any{"port", 1}},
		{name: "port 65535", sets: []any{"port", 65535}},
		{name: "port missing", sets: []any{"port", deleted}, wantField: "port"},
		{name: "port 0", sets: []any{"port", 0}, wantField: "port"},
		{name: "port -1", sets: []any{"port", -1}, wantField: "port"},
		{name: "port 65536", sets: []any{"port", 65536}, wantField: "port"},
		{name: "port 70000", sets: []any{"port", 70000}, wantField: "port"},

		{name: "weight 0", sets: []any{"weight", 0}},
		{name: "weight 256", sets: []any{"weight", 256}},
		{name: "weight -1", sets: []any{"weight", -1}, wantField: "weight"},
		{name: "weight 257", sets: []any{"weight", 257}, wantField: "weight"},

		{name: "tags", sets: []any{"tags", []string{"v2", "canary", "env=prod", "ünï"}}},
		{name: "tags empty list", sets: []any{"tags", []string{}}},
		{name: "tag empty", sets: []any{"tags", []string{""}}, wantField: "tags[0]"},
		{name: "tag space", sets: []any{"tags", []string{"a b"}}, wantField: "tags[0]"},
		{name: "tag leading space", sets: []any{"tags", []string{" a"}}, wantField: "tags[0]"},
		{name: "tag tab", sets: []any{"tags", []string{"a\tb"}}, wantField: "tags[0]"},
		{name: "tag newline", sets: []any{"tags", []string{"a\nb"}}, wantField: "tags[0]"},
		{name: "tag carriage return", sets: []any{"tags", []string{"a\rb"}}, wantField: "tags[0]"},
		{name: "tag NUL", sets: []any{"tags", []string{"a\x00b"}}, wantField: "tags[0]"},
		{name: "tag DEL", sets: []any{"tags", []string{"a\x7fb"}}, wantField: "tags[0]"},
		{name: "tag no-break space", sets: []any{"tags", []string{"a\u00a0b"}}, wantField: "tags[0]"},
		{name: "tag line separator", sets: []any{"tags", []string{"a\u2028b"}}, wantField: "tags[0]"},
		{name: "tag double quote", sets: []any{"tags", []string{`a"b`}}, wantField: "tags[0]"},
		{name: "tag single quote", sets: []any{"tags", []string{"a'b"}}, wantField: "tags[0]"},
		{name: "tag backquote", sets: []any{"tags", []string{"a`b"}}, wantField: "tags[0]"},
		{name: "tag backslash", sets: []any{"tags", []string{`a\b`}}, wantField: "tags[0]"},
		{name: "tag hash", sets: []any{"tags", []string{"a#b"}}, wantField: "tags[0]"},
		{name: "tag replacement char", sets: []any{"tags", []string{"a\uFFFDb"}}, wantField: "tags[0]"},
		{name: "tag too long", sets: []any{"tags", []string{long(254)}}, wantField: "tags[0]"},
		{name: "second tag bad", sets: []any{"tags", []string{"ok", "not ok"}}, wantField: "tags[1]"},

		{name: "meta", sets: []any{"meta", map[string]string{"version": "1.4.2", "a.b-c_D9": "x", "empty": ""}}},
		{name: "meta key empty", sets: []any{"meta", map[string]string{"": "x"}}, wantField: `meta[""]`},
		{name: "meta key space", sets: []any{"meta", map[string]string{"a b": "x"}}, wantField: `meta["a b"]`},
		{name: "meta key slash", sets: []any{"meta", map[string]string{"a/b": "x"}}, wantField: `meta["a/b"]`},
		{name: "meta key colon", sets: []any{"meta", map[string]string{"a:b": "x"}}, wantField: `meta["a:b"]`},
		{name: "meta key non-ASCII", sets: []any{"meta", map[string]string{"vérsion": "x"}}, wantField: `meta["vérsion"]`},
		{name: "meta key 63 bytes", sets: []any{"meta", map[string]string{long(63): "x"}}},
		{name: "meta key 64 bytes", sets: []any{"meta", map[string]string{long(64): "x"}}, wantField: `meta["` + long(64) + `"]`},
		{name: "meta value space", sets: []any{"meta", map[string]string{"k": "a b"}}, wantField: `meta["k"]`},
		{name: "meta value newline", sets: []any{"meta", map[string]string{"k": "a\nb"}}, wantField: `meta["k"]`},
		{name: "meta value quote", sets: []any{"meta", map[string]string{"k": `a"b`}}, wantField: `meta["k"]`},
		{name: "meta value hash", sets: []any{"meta", map[string]string{"k": "a#b"}}, wantField: `meta["k"]`},
		{name: "meta value too long", sets: []any{"meta", map[string]string{"k": long(254)}}, wantField: `meta["k"]`},

		{name: "node", sets: []any{"node", "app1.example"}},
		{name: "node space", sets: []any{"node", "app 1"}, wantField: "node"},
		{name: "node hash", sets: []any{"node", "app#1"}, wantField: "node"},

		{name: "depends_on", sets: []any{"depends_on", []string{"api", "db"}}},
		{name: "depends_on bad name", sets: []any{"depends_on", []string{"Api"}}, wantField: "depends_on[0]"},
		{name: "depends_on second empty", sets: []any{"depends_on", []string{"api", ""}}, wantField: "depends_on[1]"},

		{name: "health missing", sets: []any{"health", deleted}, wantField: "health.shallow"},
		{name: "health null", sets: []any{"health", nil}, wantField: "health.shallow"},
		{name: "health.shallow missing", sets: []any{"health.shallow", deleted}, wantField: "health.shallow", alsoFields: []string{"health.deep"}},
		{name: "health.shallow bad", sets: []any{"health.shallow", "ok"}, wantField: "health.shallow", alsoFields: []string{"health.deep"}},
		{name: "health.shallow uppercase", sets: []any{"health.shallow", "Passing"}, wantField: "health.shallow", alsoFields: []string{"health.deep"}},
		{name: "health.shallow bad, deep set", sets: []any{"health.shallow", "maintenance", "health.deep", "passing"}, wantField: "health.shallow"},
		{name: "health.deep bad", sets: []any{"health.deep", "down"}, wantField: "health.deep"},

		{name: "registered_at", sets: []any{"registered_at", "2026-11-21T19:00:00.5+23:59"}},
		{name: "registered_at year 0", sets: []any{"registered_at", "0000-01-01T00:00:00+01:00"}},
		{name: "registered_at offset 24h", sets: []any{"registered_at", "2026-11-21T19:00:00+24:00"}, wantField: "registered_at"},
		{name: "health.since offset 24h", sets: []any{"health.since", "2026-11-21T19:00:00-24:00"}, wantField: "health.since"},
		{name: "check since offset 24h", sets: []any{"health.checks", []map[string]any{{"name": "http", "kind": "shallow", "status": "passing", "since": "2026-11-21T19:00:00+24:00"}}}, wantField: "health.checks[0].since"},

		{name: "check", sets: []any{"health.checks", []map[string]any{{"name": "http", "kind": "deep", "status": "warning",
			"output": "HTTP 429 Too Many Requests — ünïcode is fine", "since": "2026-11-21T19:00:00Z"}}}},
		{name: "check output newline", sets: []any{"health.checks", []map[string]any{{"name": "http", "kind": "shallow", "status": "passing", "output": "200\nOK"}}}, wantField: "health.checks[0].output"},
		{name: "check output escape", sets: []any{"health.checks", []map[string]any{{"name": "http", "kind": "shallow", "status": "passing", "output": "\x1b[31mred"}}}, wantField: "health.checks[0].output"},
		{name: "check output NUL", sets: []any{"health.checks", []map[string]any{{"name": "http", "kind": "shallow", "status": "passing", "output": "a\x00"}}}, wantField: "health.checks[0].output"},
		{name: "check output too long", sets: []any{"health.checks", []map[string]any{{"name": "http", "kind": "shallow", "status": "passing", "output": long(1025)}}}, wantField: "health.checks[0].output"},
		{name: "check name bad", sets: []any{"health.checks", []map[string]any{{"name": "HTTP check", "kind": "shallow", "status": "passing"}}}, wantField: "health.checks[0].name"},
		{name: "check kind bad", sets: []any{"health.checks", []map[string]any{{"name": "http", "kind": "medium", "status": "passing"}}}, wantField: "health.checks[0].kind"},
		{name: "check status bad", sets: []any{"health.checks", []map[string]any{{"name": "http", "kind": "shallow", "status": "ok"}}}, wantField: "health.checks[0].status"},
		{name: "second check bad", sets: []any{"health.checks", []map[string]any{
			{"name": "http", "kind": "shallow", "status": "passing"},
			{"name": "tcp", "kind": "shallow", "status": "passing", "output": "a\rb"}}}, wantField: "health.checks[1].output"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := record(t, tc.sets...)
			in, err := DecodeInstance(data)
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("DecodeInstance(%q) error = %v, want nil", data, err)
				}
				if err := in.Validate(); err != nil {
					t.Errorf("DecodeInstance(%q).Validate() = %v, want nil", data, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeInstance(%q) error = nil, want field %q", data, tc.wantField)
			}
			if !reflect.DeepEqual(in, Instance{}) {
				t.Errorf("DecodeInstance(%q) = %#v with an error, want the zero Instance", data, in)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.wantField {
				t.Fatalf("DecodeInstance(%q) error = %v, want field %q", data, err, tc.wantField)
			}
			want := append([]string{tc.wantField}, tc.alsoFields...)
			if fields := fieldsOf(err); !reflect.DeepEqual(fields, want) {
				t.Errorf("DecodeInstance(%q) error = %v, fields %q; want fields %q", data, err, fields, want)
			}
			if !strings.HasPrefix(err.Error(), tc.wantField+": ") {
				t.Errorf("DecodeInstance(%q) error = %q, want it to start with %q", data, err, tc.wantField+": ")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("DecodeInstance(%q) error = %v, want errors.Is %v", data, err, tc.wantIs)
			}
		})
	}
}

func TestDecodeInstanceMalformed(t *testing.T) {
	tests := []struct{ name, data string }{
		{name: "empty", data: ""},
		{name: "truncated", data: `{"v":1,`},
		{name: "array", data: `[1]`},
		{name: "string", data: `"web"`},
		{name: "v string", data: `{"v":"1","service":"web","id":"web-1","address":"10.0.0.5","port":8080,"health":{"shallow":"passing"}}`},
		{name: "v float", data: `{"v":1.5,"service":"web","id":"web-1","address":"10.0.0.5","port":8080,"health":{"shallow":"passing"}}`},
		{name: "port string", data: `{"v":1,"service":"web","id":"web-1","address":"10.0.0.5","port":"8080","health":{"shallow":"passing"}}`},
		{name: "port float", data: `{"v":1,"service":"web","id":"web-1","address":"10.0.0.5","port":80.5,"health":{"shallow":"passing"}}`},
		{name: "tags string", data: `{"v":1,"service":"web","id":"web-1","address":"10.0.0.5","port":8080,"tags":"v2","health":{"shallow":"passing"}}`},
		{name: "meta number", data: `{"v":1,"service":"web","id":"web-1","address":"10.0.0.5","port":8080,"meta":{"k":1},"health":{"shallow":"passing"}}`},
		{name: "health string", data: `{"v":1,"service":"web","id":"web-1","address":"10.0.0.5","port":8080,"health":"passing"}`},
		{name: "bad time", data: `{"v":1,"service":"web","id":"web-1","address":"10.0.0.5","port":8080,"health":{"shallow":"passing"},"registered_at":"yesterday"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if in, err := DecodeInstance([]byte(tc.data)); err == nil {
				t.Errorf("DecodeInstance(%q) = %#v, nil; want an error", tc.data, in)
			}
		})
	}
	// JSON null decodes to nothing at all: the version is missing.
	if _, err := DecodeInstance([]byte("null")); !errors.Is(err, ErrVersion) {
		t.Errorf("DecodeInstance(%q) error = %v, want %v", "null", err, ErrVersion)
	}
}

func TestDecodeInstanceReportsEveryField(t *testing.T) {
	data := record(t, "port", 0, "weight", 300, "tags", []string{"ok", "a b"}, "health.deep", "bad")
	_, err := DecodeInstance(data)
	got := fieldsOf(err)
	want := []string{"port", "weight", "tags[1]", "health.deep"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DecodeInstance(%q) error = %v, fields %q; want %q", data, err, got, want)
	}
}

func TestTestdataRecords(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "records", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata records: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = DecodeInstance(data)
			switch {
			case strings.HasSuffix(file, ".good.json") && err != nil:
				t.Errorf("DecodeInstance(%s) error = %v, want nil", file, err)
			case strings.HasSuffix(file, ".bad.json") && err == nil:
				t.Errorf("DecodeInstance(%s) error = nil, want an error", file)
			case !strings.HasSuffix(file, ".good.json") && !strings.HasSuffix(file, ".bad.json"):
				t.Errorf("%s: name must end in .good.json or .bad.json", file)
			}
		})
	}
}

func TestUnknownFieldsSurviveRoundTrip(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "records", "unknown-fields.good.json"))
	if err != nil {
		t.Fatal(err)
	}
	in, err := DecodeInstance(data)
	if err != nil {
		t.Fatalf("DecodeInstance(unknown-fields.good.json) error = %v", err)
	}
	// "maintenance" is not a record field: a record cannot put itself in
	// maintenance, but the field is kept like any other unknown one.
	if in.Maintenance {
		t.Errorf("DecodeInstance(unknown-fields.good.json).Maintenance = true, want false")
	}
	out, err := in.Marshal()
	if err != nil {
		t.Fatalf("Marshal() error = %v", err)
	}
	var orig, got map[string]json.RawMessage
	if err := json.Unmarshal(data, &orig); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("Marshal() = %s: %v", out, err)
	}
	for _, k := range []string{"zone", "x-owner", "maintenance", "future"} {
		if g, w := canonicalJSON(t, got[k]), canonicalJSON(t, orig[k]); got[k] == nil || !bytes.Equal(g, w) {
			t.Errorf("Marshal() field %q = %s, want %s (from %s)", k, got[k], orig[k], out)
		}
	}
	again, err := DecodeInstance(out)
	if err != nil {
		t.Fatalf("DecodeInstance(Marshal()) error = %v", err)
	}
	if g, w := canonical(t, again), canonical(t, in); !reflect.DeepEqual(g, w) {
		t.Errorf("DecodeInstance(Marshal(x)) =\n%#v\nwant\n%#v", g, w)
	}
}

// A key that encoding/json folds onto a known field (any case, or "ſ" for
// "s") is decoded into that field, so it is not an unknown field to keep:
// keeping it would let Marshal write it after the real one, and the next
// read would take its value instead.
func TestCaseFoldedKeysAreNotUnknownFields(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{name: "long s before", data: `{"ſervice":"evil","v":1,"service":"web","id":"web-1","address":"10.0.0.5","port":8080,"health":{"shallow":"passing"}}`},
		{name: "long s after", data: `{"v":1,"service":"evil","id":"web-1","address":"10.0.0.5","port":8080,"health":{"shallow":"passing"},"ſervice":"web"}`},
		{name: "uppercase before", data: `{"SERVICE":"evil","v":1,"service":"web","id":"web-1","address":"10.0.0.5","port":8080,"health":{"shallow":"passing"}}`},
		{name: "mixed case after", data: `{"v":1,"service":"evil","id":"web-1","address":"10.0.0.5","port":8080,"health":{"shallow":"passing"},"Service":"web"}`},
		{name: "long s tags", data: `{"tagſ":["evil"],"v":1,"service":"web","id":"web-1","address":"10.0.0.5","port":8080,"tags":["v2"],"health":{"shallow":"passing"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := DecodeInstance([]byte(tc.data))
			if err != nil {
				t.Fatalf("DecodeInstance(%q) error = %v", tc.data, err)
			}
			if in.Service != "web" || slices.Contains(in.Tags, "evil") {
				t.Fatalf("DecodeInstance(%q) = service %q, tags %q; want service %q and no tag %q", tc.data, in.Service, in.Tags, "web", "evil")
			}
			out, err := in.Marshal()
			if err != nil {
				t.Fatalf("Marshal() error = %v", err)
			}
			if bytes.Contains(out, []byte("evil")) {
				t.Errorf("Marshal() = %s, want no trace of the overridden value", out)
			}
			again, err := DecodeInstance(out)
			if err != nil || again.Service != "web" || slices.Contains(again.Tags, "evil") {
				t.Errorf("DecodeInstance(%s) = service %q, tags %q, %v; want service %q", out, again.Service, again.Tags, err, "web")
			}
		})
	}
}

func TestMarshal(t *testing.T) {
	in := Instance{
		Service: "web", ID: "web-1", Address: "10.0.0.5", Port: 8080, Weight: 100,
		Health:      Health{Shallow: status.Passing},
		Maintenance: true,
	}
	out, err := in.Marshal()
	if err != nil {
		t.Fatalf("Marshal() error = %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"v": 1.0, "service": "web", "id": "web-1", "address": "10.0.0.5", "port": 8080.0,
		"tags": []any{}, "meta": map[string]any{}, "weight": 100.0, "depends_on": []any{}, "draining": false,
		"health": map[string]any{"shallow": "passing", "deep": "passing", "checks": []any{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Marshal() = %s\nwant %v", out, want)
	}
	if in.V != 0 || in.Tags != nil {
		t.Errorf("Marshal() changed its receiver: %#v", in)
	}
}

func TestMarshalValidates(t *testing.T) {
	in := Instance{V: 1, Service: "web", ID: "web-1", Address: "10.0.0.1\nx", Port: 8080, Health: Health{Shallow: status.Passing}}
	out, err := in.Marshal()
	if fields := fieldsOf(err); out != nil || !reflect.DeepEqual(fields, []string{"address"}) {
		t.Errorf("Marshal() = %q, %v; want nil, error for field %q", out, err, "address")
	}
	in.Address, in.V = "10.0.0.1", 2
	if _, err := in.Marshal(); !errors.Is(err, ErrVersion) || !slices.Equal(fieldsOf(err), []string{"v"}) {
		t.Errorf("Marshal() of v 2 error = %v, want field %q wrapping %v", err, "v", ErrVersion)
	}
	in.V, in.RegisteredAt = 1, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := in.Marshal(); !slices.Equal(fieldsOf(err), []string{"registered_at"}) {
		t.Errorf("Marshal() of year 10000 error = %v, want field %q", err, "registered_at")
	}
}

func TestInstanceRoutable(t *testing.T) {
	tests := []struct {
		name        string
		shallow     status.Status
		deep        status.Status
		maintenance bool
		draining    bool
		want        bool
	}{
		{name: "passing", shallow: status.Passing, deep: status.Passing, want: true},
		{name: "warning", shallow: status.Warning, deep: status.Warning, want: true},
		{name: "deep critical", shallow: status.Passing, deep: status.Critical, want: true},
		{name: "critical", shallow: status.Critical, deep: status.Critical, want: false},
		{name: "maintenance", shallow: status.Passing, deep: status.Passing, maintenance: true, want: false},
		{name: "draining", shallow: status.Passing, deep: status.Passing, draining: true, want: false},
		{name: "warning draining", shallow: status.Warning, deep: status.Passing, draining: true, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Instance{Health: Health{Shallow: tc.shallow, Deep: tc.deep}, Maintenance: tc.maintenance, Draining: tc.draining}
			if got := in.Routable(); got != tc.want {
				t.Errorf("Instance{shallow %s, deep %s, maintenance %t, draining %t}.Routable() = %t, want %t",
					tc.shallow, tc.deep, tc.maintenance, tc.draining, got, tc.want)
			}
		})
	}
}

// FuzzDecodeInstance checks that DecodeInstance never panics, and that a
// record it accepts can be written back and reads the same.
func FuzzDecodeInstance(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "records", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no testdata records: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(minimal))
	f.Add([]byte(`{"v":1,"service":"web","id":"web-1","address":"10.0.0.5","port":8080,"health":{"shallow":"passing"},"ſervice":"x","Tags":["a"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := DecodeInstance(data)
		if err != nil {
			return
		}
		if err := in.Validate(); err != nil {
			t.Fatalf("DecodeInstance(%q) accepted an invalid record: %v", data, err)
		}
		out, err := in.Marshal()
		if err != nil {
			t.Fatalf("DecodeInstance(%q) ok, but Marshal() error = %v", data, err)
		}
		again, err := DecodeInstance(out)
		if err != nil {
			t.Fatalf("DecodeInstance(%q) ok, but DecodeInstance(Marshal() = %q) error = %v", data, out, err)
		}
		if g, w := canonical(t, again), canonical(t, in); !reflect.DeepEqual(g, w) {
			t.Fatalf("DecodeInstance(Marshal(x)) != x\ninput   %q\nmarshal %q\ngot  %#v\nwant %#v", data, out, g, w)
		}
		out2, err := again.Marshal()
		if err != nil || !bytes.Equal(out2, out) {
			t.Fatalf("Marshal is not stable: %q then %q, %v", out, out2, err)
		}
	})
}

// TestInstanceSame changes every field of a record in turn, found by
// reflection so that a field added later is covered too, and wants Same
// to see each change.
func TestInstanceSame(t *testing.T) {
	since := time.Date(2026, 11, 21, 19, 0, 0, 0, time.UTC)
	base := func() Instance {
		return Instance{V: Version, Service: "web", ID: "w1", Node: "n1", Address: "10.0.0.1", Port: 80,
			Tags: []string{"a"}, Meta: map[string]string{"k": "v"}, Weight: 5, DependsOn: []string{"db"},
			Health: Health{Shallow: status.Passing, Deep: status.Passing, Since: since,
				Checks: []Check{{Name: "alive", Kind: status.Shallow, Status: status.Passing, Output: "ok", Since: since}}},
			Draining: true, RegisteredAt: since, Maintenance: true,
			extra: map[string]json.RawMessage{"zone": json.RawMessage(`"a"`)}}
	}
	a := base()
	if b := base(); !a.Same(&b) {
		t.Fatal("Same() = false for two equal records")
	}
	paths := leafPaths(reflect.TypeFor[Instance](), "", nil)
	for name, path := range paths {
		b := base()
		v := reflect.ValueOf(&b).Elem()
		for _, i := range path {
			if i < 0 {
				v = v.Index(0)
			} else {
				v = v.Field(i)
			}
		}
		switch {
		case v.Type() == reflect.TypeFor[time.Time]():
			v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Second)))
		case v.Kind() == reflect.String:
			v.SetString(v.String() + "x")
		case v.Kind() == reflect.Int:
			v.SetInt(v.Int() + 1)
		case v.Kind() == reflect.Bool:
			v.SetBool(!v.Bool())
		case v.Kind() == reflect.Slice:
			v.Set(reflect.Append(v, reflect.ValueOf("x").Convert(v.Type().Elem())))
		case v.Kind() == reflect.Map:
			v.SetMapIndex(reflect.ValueOf("other"), reflect.ValueOf("x"))
		default:
			t.Fatalf("%s: no change known for a %s", name, v.Kind())
		}
		if a.Same(&b) {
			t.Errorf("Same() = true after changing %s", name)
		}
	}
	b := base()
	b.extra = map[string]json.RawMessage{"zone": json.RawMessage(`"b"`)}
	if a.Same(&b) {
		t.Error("Same() = true for records whose unknown fields differ")
	}
	if len(paths) < 20 {
		t.Errorf("changed only %d fields: %q", len(paths), slices.Collect(maps.Keys(paths)))
	}
}

// leafPaths maps each exported field of t that is not itself a struct
// (time.Time counts as a leaf) to its index path; -1 steps into element 0
// of a slice of structs.
func leafPaths(t reflect.Type, prefix string, path []int) map[string][]int {
	out := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue // extra: checked by hand
		}
		name, p := prefix+"."+f.Name, append(slices.Clip(path), i)
		switch {
		case f.Type == reflect.TypeFor[time.Time]():
			out[name] = p
		case f.Type.Kind() == reflect.Struct:
			maps.Copy(out, leafPaths(f.Type, name, p))
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			maps.Copy(out, leafPaths(f.Type.Elem(), name+"[0]", append(p, -1)))
		default:
			out[name] = p
		}
	}
	return out
}
