package schema

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{in: "web"},
		{in: "a"},
		{in: "0"},
		{in: "web-1"},
		{in: "web.v2"},
		{in: "web_1"},
		{in: "web-app1-8080"},
		{in: "9lives"},
		{in: "a" + strings.Repeat("b", 62)}, // 63 characters
		{in: "", wantErr: true},
		{in: "a" + strings.Repeat("b", 63), wantErr: true}, // 64 characters
		{in: "Web", wantErr: true},
		{in: "wEb", wantErr: true},
		{in: "-web", wantErr: true},
		{in: ".web", wantErr: true},
		{in: "_web", wantErr: true},
		{in: "web/1", wantErr: true},
		{in: "web 1", wantErr: true},
		{in: "web\n", wantErr: true},
		{in: "web\x00", wantErr: true},
		{in: "wéb", wantErr: true},
		{in: "web:80", wantErr: true},
		{in: "web#1", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			err := ValidateName(tc.in)
			if (err != nil) != tc.wantErr {
				t.Errorf("ValidateName(%q) error = %v, want error %t", tc.in, err, tc.wantErr)
			}
		})
	}
}

func TestNormalizePrefix(t *testing.T) {
	tests := []struct{ in, want string }{
		{in: "", want: "/rewire"},
		{in: "/", want: "/rewire"},
		{in: "//", want: "/rewire"},
		{in: "/rewire", want: "/rewire"},
		{in: "rewire", want: "/rewire"},
		{in: "/rewire/", want: "/rewire"},
		{in: "a/b", want: "/a/b"},
		{in: "/a/b/", want: "/a/b"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := NormalizePrefix(tc.in); got != tc.want {
				t.Errorf("NormalizePrefix(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestKeysBuild(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{name: "zero Root", got: Keys{}.Root(), want: "/rewire/"},
		{name: "Root", got: Keys{Prefix: "/team-a/"}.Root(), want: "/team-a/"},
		{name: "Services", got: Keys{}.Services(), want: "/rewire/services/"},
		{name: "Service", got: Keys{}.Service("web"), want: "/rewire/services/web/"},
		{name: "Instance", got: Keys{}.Instance("web", "web-1"), want: "/rewire/services/web/web-1"},
		{name: "Instance prefix", got: Keys{Prefix: "x"}.Instance("web", "web-1"), want: "/x/services/web/web-1"},
		{name: "Maintenance service", got: Keys{}.Maintenance("web", ""), want: "/rewire/maintenance/web"},
		{name: "Maintenance instance", got: Keys{}.Maintenance("web", "web-1"), want: "/rewire/maintenance/web/web-1"},
		{name: "Expect", got: Keys{}.Expect("web"), want: "/rewire/expect/web"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
			}
		})
	}
}

func TestKeysParse(t *testing.T) {
	tests := []struct {
		name     string
		prefix   string
		key      string
		wantKind KeyKind
		wantSvc  string
		wantID   string
		wantErr  bool
	}{
		{name: "instance", key: "/rewire/services/web/web-1", wantKind: KindInstance, wantSvc: "web", wantID: "web-1"},
		{name: "instance custom prefix", prefix: "/team/a/", key: "/team/a/services/web/web-1", wantKind: KindInstance, wantSvc: "web", wantID: "web-1"},
		{name: "maintenance service", key: "/rewire/maintenance/web", wantKind: KindMaintenance, wantSvc: "web"},
		{name: "maintenance instance", key: "/rewire/maintenance/web/web-1", wantKind: KindMaintenance, wantSvc: "web", wantID: "web-1"},
		{name: "expect", key: "/rewire/expect/web", wantKind: KindExpect, wantSvc: "web"},

		{name: "other under prefix", key: "/rewire/config/web/timeout", wantKind: KindOther},
		{name: "other section only", key: "/rewire/config", wantKind: KindOther},
		{name: "root itself", key: "/rewire/", wantKind: KindOther},
		{name: "prefix without slash", key: "/rewire", wantKind: KindOther},
		{name: "outside prefix", key: "/other/services/web/web-1", wantKind: KindOther},
		{name: "longer prefix", key: "/rewirex/services/web/web-1", wantKind: KindOther},
		{name: "relative key", key: "rewire/services/web/web-1", wantKind: KindOther},
		{name: "other prefix's services", prefix: "/team", key: "/rewire/services/web/web-1", wantKind: KindOther},
		{name: "section case", key: "/rewire/Services/web/web-1", wantKind: KindOther},
		{name: "empty", key: "", wantKind: KindOther},

		{name: "bad service name", key: "/rewire/services/Web/web-1", wantErr: true},
		{name: "bad instance id", key: "/rewire/services/web/-1", wantErr: true},
		{name: "empty service", key: "/rewire/services//web-1", wantErr: true},
		{name: "empty id", key: "/rewire/services/web/", wantErr: true},
		{name: "id with space", key: "/rewire/services/web/web 1", wantErr: true},
		{name: "id with newline", key: "/rewire/services/web/web-1\n", wantErr: true},
		{name: "bad maintenance service", key: "/rewire/maintenance/WEB", wantErr: true},
		{name: "bad maintenance id", key: "/rewire/maintenance/web/x y", wantErr: true},
		{name: "bad expect service", key: "/rewire/expect/web!", wantErr: true},

		{name: "services section", key: "/rewire/services", wantErr: true},
		{name: "services slash", key: "/rewire/services/", wantErr: true},
		{name: "service without id", key: "/rewire/services/web", wantErr: true},
		{name: "instance too deep", key: "/rewire/services/web/web-1/extra", wantErr: true},
		{name: "maintenance too deep", key: "/rewire/maintenance/web/web-1/extra", wantErr: true},
		{name: "maintenance section", key: "/rewire/maintenance", wantErr: true},
		{name: "expect with id", key: "/rewire/expect/web/web-1", wantErr: true},
		{name: "expect section", key: "/rewire/expect/", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := Keys{Prefix: tc.prefix}
			kind, svc, id, err := k.Parse(tc.key)
			if tc.wantErr {
				if err == nil {
					t.Errorf("Keys{%q}.Parse(%q) = %v, %q, %q, nil; want an error", tc.prefix, tc.key, kind, svc, id)
				} else if !strings.Contains(err.Error(), tc.key) {
					t.Errorf("Keys{%q}.Parse(%q) error = %q, want it to name the key", tc.prefix, tc.key, err)
				}
				return
			}
			if err != nil || kind != tc.wantKind || svc != tc.wantSvc || id != tc.wantID {
				t.Errorf("Keys{%q}.Parse(%q) = %v, %q, %q, %v; want %v, %q, %q, nil",
					tc.prefix, tc.key, kind, svc, id, err, tc.wantKind, tc.wantSvc, tc.wantID)
			}
		})
	}
}

// TestKeysParseBuilt parses what the builders produce.
func TestKeysParseBuilt(t *testing.T) {
	for _, prefix := range []string{"", "/rewire", "team", "/a/b/"} {
		k := Keys{Prefix: prefix}
		tests := []struct {
			key      string
			wantKind KeyKind
			wantID   string
		}{
			{key: k.Instance("web", "web-1"), wantKind: KindInstance, wantID: "web-1"},
			{key: k.Maintenance("web", ""), wantKind: KindMaintenance},
			{key: k.Maintenance("web", "web-1"), wantKind: KindMaintenance, wantID: "web-1"},
			{key: k.Expect("web"), wantKind: KindExpect},
		}
		for _, tc := range tests {
			kind, svc, id, err := k.Parse(tc.key)
			if err != nil || kind != tc.wantKind || svc != "web" || id != tc.wantID {
				t.Errorf("Keys{%q}.Parse(%q) = %v, %q, %q, %v; want %v, %q, %q, nil",
					prefix, tc.key, kind, svc, id, err, tc.wantKind, "web", tc.wantID)
			}
		}
	}
}

// keySeeds returns the lines of testdata/keys.txt.
func keySeeds(t testing.TB) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "keys.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		keys = append(keys, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// FuzzKeysParse checks that Parse never panics and that a key it accepts is
// exactly the key the builders make from its parts.
func FuzzKeysParse(f *testing.F) {
	for _, key := range keySeeds(f) {
		f.Add("", key)
		f.Add("/team/a", key)
	}
	f.Fuzz(func(t *testing.T, prefix, key string) {
		k := Keys{Prefix: prefix}
		kind, svc, id, err := k.Parse(key)
		if err != nil {
			if !strings.HasPrefix(key, k.Root()) {
				t.Fatalf("Keys{%q}.Parse(%q) error = %v for a key outside the prefix", prefix, key, err)
			}
			return
		}
		var rebuilt string
		switch kind {
		case KindOther:
			if svc != "" || id != "" {
				t.Fatalf("Keys{%q}.Parse(%q) = other, %q, %q; want no names", prefix, key, svc, id)
			}
			return
		case KindInstance:
			rebuilt = k.Instance(svc, id)
		case KindMaintenance:
			rebuilt = k.Maintenance(svc, id)
		case KindExpect:
			rebuilt = k.Expect(svc)
		default:
			t.Fatalf("Keys{%q}.Parse(%q) kind = %v", prefix, key, kind)
		}
		if rebuilt != key {
			t.Fatalf("Keys{%q}.Parse(%q) = %v, %q, %q; rebuilt key = %q", prefix, key, kind, svc, id, rebuilt)
		}
		if err := ValidateName(svc); err != nil {
			t.Fatalf("Keys{%q}.Parse(%q) service %q: %v", prefix, key, svc, err)
		}
		if id != "" {
			if err := ValidateName(id); err != nil {
				t.Fatalf("Keys{%q}.Parse(%q) id %q: %v", prefix, key, id, err)
			}
		}
	})
}
