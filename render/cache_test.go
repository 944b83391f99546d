package render_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"text/template"

	"github.com/rewire/rewire/registry/schema"
	"github.com/rewire/rewire/render"
)

// cachedTmpl renders each service through a cached block that also reads
// a key, so that both kinds of dependency invalidate the cache, and each
// instance through a block keyed by the instance, which reads a key too.
const cachedTmpl = `{{ range services }}{{ cachedTemplate "svc" .Name }}{{ end }}
{{- define "svc" }}
[{{ . }} weight={{ keyOrDefault (printf "app/%s/weight" .) "1" }}]
{{- range instances . }}{{ cachedTemplate "inst" . }}{{ end }}
{{ cachedRange "inst2" (service . "any") }}{{ cachedRange "word" (list "x" .) }}
{{ end }}
{{- define "inst2" }} {{ .ID }}:{{ .Weight }}:{{ .Draining }}:{{ keyOrDefault (printf "app/%s/tag" .ID) "-" }}{{ end }}
{{- define "word" }}<{{ . }}>{{ end }}
{{- define "inst" }} {{ .ID }}={{ .Health.Shallow }}{{ if .Maintenance }}/maint{{ end }}/{{ keyOrDefault (printf "app/%s/tag" .ID) "-" }}
{{ printf "%+v" . }} {{ printf "%s" .Marshal }}{{ end }}`

// recordFields are the choices each field of a test record takes: two or
// three values each, so that changes to any one of them, and repeats, are
// frequent.
var recordFields = []struct {
	name   string
	values []string
}{
	{"node", []string{`"n1"`, `"n2"`}},
	{"address", []string{`"10.0.0.1"`, `"10.0.0.2"`, `"::1"`}},
	{"port", []string{"80", "81"}},
	{"tags", []string{`["a"]`, `["a","b"]`, `[]`}},
	{"meta", []string{`{"k":"v"}`, `{"k":"w"}`, `{}`}},
	{"weight", []string{"1", "2"}},
	{"depends_on", []string{`["db"]`, `[]`}},
	{"draining", []string{"true", "false"}},
	{"registered_at", []string{`"2026-11-21T10:00:00Z"`, `"2026-11-21T10:00:01Z"`, `"2026-11-21T11:00:00+01:00"`}},
	{"shallow", []string{`"passing"`, `"warning"`, `"critical"`}},
	{"deep", []string{`"passing"`, `"critical"`}},
	{"since", []string{`"2026-11-21T10:00:00Z"`, `"2026-11-21T10:00:02Z"`}},
	{"output", []string{`"ok"`, `"slow"`}},
	{"check_status", []string{`"passing"`, `"warning"`}},
	{"zone", []string{`"a"`, `"b"`}}, // a field this version does not know
}

// records builds test records that change one field at a time.
type records struct {
	rng   *rand.Rand
	state map[string][]int // key → the value index of each field
}

// change returns svc/id's record with one field changed (a new record
// gets every field at random).
func (r *records) change(svc, id string) (key, value string) {
	key = keys.Instance(svc, id)
	st, ok := r.state[key]
	if !ok {
		st = make([]int, len(recordFields))
		for i, f := range recordFields {
			st[i] = r.rng.IntN(len(f.values))
		}
		r.state[key] = st
	} else {
		i := r.rng.IntN(len(recordFields))
		st[i] = (st[i] + 1 + r.rng.IntN(len(recordFields[i].values)-1)) % len(recordFields[i].values)
	}
	v := map[string]string{}
	for i, f := range recordFields {
		v[f.name] = f.values[st[i]]
	}
	return key, fmt.Sprintf(`{"v":1,"service":%q,"id":%q,"node":%s,"address":%s,"port":%s,"tags":%s,"meta":%s,"weight":%s,`+
		`"depends_on":%s,"draining":%s,"registered_at":%s,"health":{"shallow":%s,"deep":%s,"since":%s,`+
		`"checks":[{"name":"alive","kind":"shallow","status":%s,"output":%s}]},"zone":%s}`,
		svc, id, v["node"], v["address"], v["port"], v["tags"], v["meta"], v["weight"], v["depends_on"], v["draining"],
		v["registered_at"], v["shallow"], v["deep"], v["since"], v["check_status"], v["output"], v["zone"])
}

// TestCachedTemplateMatchesUncached applies a random sequence of changes
// and checks after each one that the Target's output (with cached blocks)
// equals an uncached render of the same snapshot.
func TestCachedTemplateMatchesUncached(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	services := []string{"a", "b", "c", "d"}
	src := newMemSource(t, map[string]string{})
	tg := mkTarget(t, "cached", cachedTmpl, render.TargetConfig{}, render.Options{})
	plain, err := render.Parse("plain.tmpl", cachedTmpl)
	if err != nil {
		t.Fatal(err)
	}
	statuses := []string{"passing", "warning", "critical"}
	recs := &records{rng: rng, state: map[string][]int{}}
	for step := range 600 {
		svc := services[rng.IntN(len(services))]
		id := fmt.Sprintf("%s-%d", svc, rng.IntN(4))
		var kv map[string]string
		var dels []string
		switch rng.IntN(7) {
		case 0:
			k, v := rec(svc, id, statuses[rng.IntN(3)])
			kv = map[string]string{k: v}
		case 1, 6:
			k, v := recs.change(svc, id)
			kv = map[string]string{k: v}
		case 2:
			dels = []string{"/rewire/services/" + svc + "/" + id}
		case 3:
			kv = map[string]string{"/rewire/app/" + svc + "/weight": fmt.Sprint(rng.IntN(3))}
		case 4:
			kv = map[string]string{"/rewire/app/" + id + "/tag": fmt.Sprint(rng.IntN(3))}
		case 5:
			if rng.IntN(2) == 0 {
				kv = map[string]string{keys.Maintenance(svc, id): "{}"}
			} else {
				dels = []string{keys.Maintenance(svc, id)}
			}
		}
		snap := src.change(t, kv, dels...)
		got, err := tg.Render(snap)
		if err != nil {
			t.Fatalf("step %d: Render: %v", step, err)
		}
		want, err := render.Execute(plain, snap, keys)
		if err != nil {
			t.Fatalf("step %d: Execute: %v", step, err)
		}
		if string(got) != string(want) {
			t.Fatalf("step %d (change %v, delete %v): cached render =\n%s\nwant\n%s", step, kv, dels, got, want)
		}
	}
}

// rangeTmpl uses cachedRange in every way the cache treats differently:
// at top level and in a cached block; printed as it is (written straight
// into the block's output) or piped, or kept in a variable; over a
// service's Instances (compared by record number), over a filtered copy
// (compared field by field) and over strings with repeats; with element
// blocks that read keys, and with cached blocks and cachedRange calls
// nested in an element; with a call made only on a condition, so that the
// calls after it move. "line" prints every field of the record, unknown
// ones included, so a stale line cannot go unnoticed.
const rangeTmpl = `top:{{ cachedRange "line" (instances "a") }}
piped:{{ cachedRange "line" (instances "b") | trim }}
{{ range services }}{{ cachedTemplate "svc" .Name }}{{ end }}
{{- define "svc" }}
[{{ . }} w={{ keyOrDefault (printf "app/%s/weight" .) "1" }}]
{{- if eq (keyOrDefault (printf "app/%s/weight" .) "1") "2" }}{{ cachedRange "short" (instances .) }}{{ end }}
{{ cachedRange "line" (instances .) }}
{{- $held := cachedRange "nest" (instances .) }}
routable:{{ cachedRange "line" (service . "passing,warning") }}
{{ $held }}{{ $held }}
words:{{ cachedRange "word" (list "x" . "x") }}
{{ end }}
{{- define "line" }}
 {{ .ID }}{{ if .Maintenance }}/m{{ end }}/{{ keyOrDefault (printf "app/%s/tag" .ID) "-" }} {{ printf "%+v" . }}
{{- end }}
{{- define "nest" }}<{{ cachedTemplate "word" .ID }}{{ cachedRange "word" (list .Service .Node) }}|{{ .Address }}>{{ end }}
{{- define "word" }}({{ . }}:{{ keyOrDefault (printf "app/%s/word" .) "" }}){{ end }}
{{- define "short" }} {{ .ID }}{{ end }}`

// unprinted turns every action that only prints a cachedTemplate or
// cachedRange call into one that pipes it through print: the same output,
// printed by text/template itself instead of written by the call.
func unprinted(text string) string {
	re := regexp.MustCompile(`\{\{(-?) (cached(?:Range|Template) [^}]*?) (-?)\}\}`)
	return re.ReplaceAllString(text, "{{$1 $2 | print $3}}")
}

// TestCachedRangeMatchesUncached applies a random sequence of changes
// (puts with any field changed, deletes and re-adds with the same ID, of
// one instance or of a run of them, maintenance of an instance or a whole
// service, changes to the keys the blocks read), renders after most of
// them, and checks that the Target's output (cached blocks, cachedRange
// reusing the unchanged elements) equals an uncached render of the same
// snapshot by a template that prints every block through text/template.
func TestCachedRangeMatchesUncached(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	services := []string{"a", "b", "c", "d"}
	src := newMemSource(t, map[string]string{})
	tg := mkTarget(t, "ranges", rangeTmpl, render.TargetConfig{}, render.Options{})
	ref := unprinted(rangeTmpl)
	if ref == rangeTmpl || !strings.Contains(ref, `{{ cachedRange "line" (instances .) | print }}`) {
		t.Fatalf("unprinted left the template as it was:\n%s", ref)
	}
	plain, err := render.Parse("plain.tmpl", ref)
	if err != nil {
		t.Fatal(err)
	}
	statuses := []string{"passing", "warning", "critical"}
	recs := &records{rng: rng, state: map[string][]int{}}
	id := func(svc string, n int) string { return fmt.Sprintf("%s-%02d", svc, n) }
	for step := range 600 {
		svc := services[rng.IntN(len(services))]
		n := rng.IntN(24)
		kv := map[string]string{}
		var dels []string
		switch rng.IntN(10) {
		case 0:
			k, v := rec(svc, id(svc, n), statuses[rng.IntN(3)])
			kv[k] = v
		case 1, 2, 3:
			k, v := recs.change(svc, id(svc, n))
			kv[k] = v
		case 4:
			dels = append(dels, keys.Instance(svc, id(svc, n)))
		case 5: // a run of instances deleted, or put (again)
			del := rng.IntN(2) == 0
			for m := n; m < min(n+1+rng.IntN(12), 24); m++ {
				if del {
					dels = append(dels, keys.Instance(svc, id(svc, m)))
				} else {
					k, v := recs.change(svc, id(svc, m))
					kv[k] = v
				}
			}
		case 6:
			kv["/rewire/app/"+svc+"/weight"] = fmt.Sprint(rng.IntN(3))
		case 7:
			kv["/rewire/app/"+id(svc, n)+"/tag"] = fmt.Sprint(rng.IntN(3))
		case 8:
			word := []string{"x", svc, id(svc, n), "n1", "n2"}[rng.IntN(5)]
			kv["/rewire/app/"+word+"/word"] = fmt.Sprint(rng.IntN(3))
		case 9:
			target := id(svc, n)
			if rng.IntN(3) == 0 {
				target = ""
			}
			if rng.IntN(2) == 0 {
				kv[keys.Maintenance(svc, target)] = "{}"
			} else {
				dels = append(dels, keys.Maintenance(svc, target))
			}
		}
		snap := src.change(t, kv, dels...)
		if rng.IntN(4) == 0 {
			continue // some renders see several changes at once
		}
		got, err := tg.Render(snap)
		if err != nil {
			t.Fatalf("step %d: Render: %v", step, err)
		}
		want, err := render.Execute(plain, snap, keys)
		if err != nil {
			t.Fatalf("step %d: Execute: %v", step, err)
		}
		if string(got) != string(want) {
			t.Fatalf("step %d (change %v, delete %v): cached render =\n%s\nwant\n%s", step, kv, dels, got, want)
		}
	}
}

// TestCachedErrorNames: an error in a block that printDirect rewrote names
// the call as the template does.
func TestCachedErrorNames(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"cachedRange", `{{ cachedRange "x" (list "a") }}{{ define "x" }}{{ fail "boom" }}{{ end }}`,
			`at <cachedRange "x" (list "a")>: error calling cachedRange: template: t.tmpl:1:`},
		{"cachedTemplate", `{{ cachedTemplate "x" "a" }}{{ define "x" }}{{ fail "boom" }}{{ end }}`,
			`at <cachedTemplate "x" "a">: error calling cachedTemplate: template: t.tmpl:1:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := render.Parse("t.tmpl", tc.text)
			if err != nil {
				t.Fatal(err)
			}
			snap, _ := snapshot(t, nil)
			_, err = render.Execute(tmpl, snap, keys)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "_rewire") || !strings.Contains(err.Error(), "boom") {
				t.Fatalf("Execute(%q) error = %v, want it to contain %q", tc.text, err, tc.want)
			}
			var ee template.ExecError
			if !errors.As(err, &ee) {
				t.Errorf("Execute(%q) error = %v, not a template.ExecError", tc.text, err)
			}
		})
	}
}

// TestCachedRangeConcurrentRenders renders snapshots of a random sequence
// of changes from two goroutines through one Target, whose block cache
// they share (Render may run while the runner applies), and checks each
// output against an uncached render; with -race, also that the calls'
// memories are never written while another render reads them.
func TestCachedRangeConcurrentRenders(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	src := newMemSource(t, map[string]string{})
	tg := mkTarget(t, "concurrent", rangeTmpl, render.TargetConfig{}, render.Options{})
	plain, err := render.Parse("plain.tmpl", unprinted(rangeTmpl))
	if err != nil {
		t.Fatal(err)
	}
	recs := &records{rng: rng, state: map[string][]int{}}
	var snaps []*schema.Snapshot
	for range 120 {
		svc := []string{"a", "b", "c"}[rng.IntN(3)]
		k, v := recs.change(svc, fmt.Sprintf("%s-%02d", svc, rng.IntN(12)))
		var dels []string
		if rng.IntN(5) == 0 {
			dels = append(dels, keys.Instance(svc, fmt.Sprintf("%s-%02d", svc, rng.IntN(12))))
		}
		snaps = append(snaps, src.change(t, map[string]string{k: v}, dels...))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for g := range 2 {
		wg.Go(func() {
			for i := g; i < len(snaps); i += 1 + g { // the two walk the sequence at different paces
				got, err := tg.Render(snaps[i])
				if err == nil {
					var want []byte
					if want, err = render.Execute(plain, snaps[i], keys); err == nil && string(got) != string(want) {
						err = fmt.Errorf("snapshot %d: cached render =\n%s\nwant\n%s", i, got, want)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
