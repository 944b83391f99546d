package schema

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rewire/rewire/health/status"
)

// inst returns a valid, routable instance of svc.
func inst(svc, id string, mods ...func(*Instance)) Instance {
	in := Instance{
		V: Version, Service: svc, ID: id, Address: "10.0.0.5", Port: 8080, Weight: DefaultWeight,
		Health: Health{Shallow: status.Passing},
	}
	for _, m := range mods {
		m(&in)
	}
	return in
}

func marshal(t testing.TB, in Instance) []byte {
	t.Helper()
	b, err := in.Marshal()
	if err != nil {
		t.Fatalf("Marshal(%+v) error = %v", in, err)
	}
	return b
}

// putInstance stores in under its own key.
func putInstance(t testing.TB, x *Index, in Instance) {
	t.Helper()
	key := Keys{}.Instance(in.Service, in.ID)
	if err := x.Put(key, marshal(t, in)); err != nil {
		t.Fatalf("Put(%q) error = %v", key, err)
	}
}

func put(t testing.TB, x *Index, key, value string) {
	t.Helper()
	if err := x.Put(key, []byte(value)); err != nil {
		t.Fatalf("Put(%q, %q) error = %v", key, value, err)
	}
}

// ids returns the ids of the instances, in order.
func ids(ins []Instance) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.ID)
	}
	return out
}

func TestSnapshotEmpty(t *testing.T) {
	s := NewIndex(Keys{}).Snapshot(7)
	if s.Rev != 7 {
		t.Errorf("Snapshot(7).Rev = %d, want 7", s.Rev)
	}
	if names := s.ServiceNames(); len(names) != 0 {
		t.Errorf("ServiceNames() = %q, want none", names)
	}
	if sv := s.Service("web"); sv != nil {
		t.Errorf("Service(%q) = %+v, want nil", "web", sv)
	}
	if v, ok := s.Get("/rewire/config/x"); ok {
		t.Errorf("Get() = %q, true; want false", v)
	}
	if kvs := s.List(""); len(kvs) != 0 {
		t.Errorf("List(%q) = %q, want none", "", kvs)
	}
	var nilService *Service
	if r := nilService.Routable(); r != nil {
		t.Errorf("(*Service)(nil).Routable() = %v, want nil", r)
	}
}

func TestIndexInstances(t *testing.T) {
	k := Keys{}
	x := NewIndex(k)
	putInstance(t, x, inst("web", "web-2"))
	putInstance(t, x, inst("web", "web-1"))
	putInstance(t, x, inst("web", "web-10"))
	putInstance(t, x, inst("api", "api-1", func(in *Instance) { in.Port = 9000 }))

	s := x.Snapshot(10)
	if got, want := s.ServiceNames(), []string{"api", "web"}; !slices.Equal(got, want) {
		t.Errorf("ServiceNames() = %q, want %q", got, want)
	}
	web := s.Service("web")
	if web == nil || web.Name != "web" {
		t.Fatalf("Service(%q) = %+v, want it named %q", "web", web, "web")
	}
	if got, want := ids(web.Instances), []string{"web-1", "web-10", "web-2"}; !slices.Equal(got, want) {
		t.Errorf("Service(%q).Instances ids = %q, want %q (sorted by id)", "web", got, want)
	}
	if api := s.Service("api"); api == nil || len(api.Instances) != 1 || api.Instances[0].Port != 9000 {
		t.Errorf("Service(%q) = %+v, want one instance on port 9000", "api", api)
	}

	// Overwrite: the record is replaced.
	putInstance(t, x, inst("web", "web-1", func(in *Instance) { in.Weight = 7 }))
	x.Delete(k.Instance("web", "web-2"))
	x.Delete(k.Instance("api", "api-1"))
	x.Delete(k.Instance("api", "api-404")) // unknown: no-op
	s = x.Snapshot(11)
	if got, want := s.ServiceNames(), []string{"web"}; !slices.Equal(got, want) {
		t.Errorf("after deletes ServiceNames() = %q, want %q", got, want)
	}
	if s.Service("api") != nil {
		t.Errorf("after deleting its last instance Service(%q) = %+v, want nil", "api", s.Service("api"))
	}
	web = s.Service("web")
	if got, want := ids(web.Instances), []string{"web-1", "web-10"}; !slices.Equal(got, want) {
		t.Errorf("after deletes Service(%q).Instances ids = %q, want %q", "web", got, want)
	}
	if web.Instances[0].Weight != 7 {
		t.Errorf("after overwrite web-1 weight = %d, want 7", web.Instances[0].Weight)
	}
}

func TestIndexMaintenance(t *testing.T) {
	k := Keys{}
	x := NewIndex(k)
	putInstance(t, x, inst("web", "web-1"))
	putInstance(t, x, inst("web", "web-2"))
	putInstance(t, x, inst("api", "api-1"))

	maintenance := func(s *Snapshot, svc string) []bool {
		var out []bool
		for _, in := range s.Service(svc).Instances {
			out = append(out, in.Maintenance)
		}
		return out
	}

	// Per instance.
	put(t, x, k.Maintenance("web", "web-2"), `{"reason":"disk","by":"ops"}`)
	s := x.Snapshot(1)
	if got, want := maintenance(s, "web"), []bool{false, true}; !slices.Equal(got, want) {
		t.Errorf("instance maintenance: web Maintenance = %v, want %v", got, want)
	}
	if s.Service("web").Maintenance != nil {
		t.Errorf("instance maintenance: Service(web).Maintenance = %+v, want nil", s.Service("web").Maintenance)
	}
	if got, want := ids(s.Service("web").Routable()), []string{"web-1"}; !slices.Equal(got, want) {
		t.Errorf("instance maintenance: Routable() = %q, want %q", got, want)
	}

	// Service-wide.
	put(t, x, k.Maintenance("web", ""), `{"reason":"upgrade","by":"alice","since":"2026-11-21T19:00:00Z"}`)
	s = x.Snapshot(2)
	web := s.Service("web")
	if got, want := maintenance(s, "web"), []bool{true, true}; !slices.Equal(got, want) {
		t.Errorf("service maintenance: web Maintenance = %v, want %v", got, want)
	}
	if web.Maintenance == nil || web.Maintenance.Reason != "upgrade" || web.Maintenance.By != "alice" || web.Maintenance.Since.IsZero() {
		t.Errorf("service maintenance: Service(web).Maintenance = %+v, want reason upgrade by alice", web.Maintenance)
	}
	if r := web.Routable(); len(r) != 0 {
		t.Errorf("service maintenance: Routable() = %q, want none", ids(r))
	}
	if got, want := maintenance(s, "api"), []bool{false}; !slices.Equal(got, want) {
		t.Errorf("service maintenance of web: api Maintenance = %v, want %v", got, want)
	}

	// An unparsable value still means maintenance.
	put(t, x, k.Maintenance("api", ""), `not json`)
	s = x.Snapshot(3)
	if api := s.Service("api"); api.Maintenance == nil || !api.Instances[0].Maintenance {
		t.Errorf("unparsable maintenance value: Service(api) = %+v, want it in maintenance", api)
	}

	// Removing the keys ends maintenance.
	x.Delete(k.Maintenance("web", ""))
	x.Delete(k.Maintenance("web", "web-2"))
	x.Delete(k.Maintenance("api", ""))
	s = x.Snapshot(4)
	if got, want := maintenance(s, "web"), []bool{false, false}; !slices.Equal(got, want) {
		t.Errorf("after delete: web Maintenance = %v, want %v", got, want)
	}
	if s.Service("web").Maintenance != nil || s.Service("api").Maintenance != nil {
		t.Errorf("after delete: service maintenance still set")
	}

	// A service in maintenance with no instances is still a service.
	put(t, x, k.Maintenance("db", ""), `{"reason":"migration"}`)
	put(t, x, k.Maintenance("cache", "cache-1"), `{}`)
	s = x.Snapshot(5)
	if got, want := s.ServiceNames(), []string{"api", "cache", "db", "web"}; !slices.Equal(got, want) {
		t.Errorf("ServiceNames() = %q, want %q", got, want)
	}
	if db := s.Service("db"); db == nil || db.Maintenance == nil || len(db.Instances) != 0 {
		t.Errorf("Service(db) = %+v, want maintenance and no instances", db)
	}
}

func TestIndexExpect(t *testing.T) {
	k := Keys{}
	x := NewIndex(k)
	putInstance(t, x, inst("web", "web-1"))
	put(t, x, k.Expect("web"), `{"instances": 3}`)
	put(t, x, k.Expect("db"), `{"instances": 2}`)
	s := x.Snapshot(1)
	if got := s.Service("web").Expect; got != 3 {
		t.Errorf("Service(web).Expect = %d, want 3", got)
	}
	if db := s.Service("db"); db == nil || db.Expect != 2 || len(db.Instances) != 0 {
		t.Errorf("Service(db) = %+v, want Expect 2 and no instances", db)
	}

	for _, bad := range []string{`{"instances": -1}`, `three`, `{"instances": "3"}`} {
		err := x.Put(k.Expect("web"), []byte(bad))
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Key != k.Expect("web") {
			t.Errorf("Put(expect, %q) error = %v, want *InvalidError for the key", bad, err)
		}
		if got := x.Snapshot(2).Service("web").Expect; got != 0 {
			t.Errorf("after Put(expect, %q) Expect = %d, want 0 (invalid value removes it)", bad, got)
		}
		put(t, x, k.Expect("web"), `{"instances": 3}`)
	}

	x.Delete(k.Expect("db"))
	if s := x.Snapshot(3); s.Service("db") != nil {
		t.Errorf("after Delete(expect db) Service(db) = %+v, want nil", s.Service("db"))
	}
}

func TestIndexFreeForm(t *testing.T) {
	k := Keys{}
	x := NewIndex(k)
	put(t, x, "/rewire/config/web/timeout", "5s")
	put(t, x, "/rewire/config/web/maxconn", "100")
	put(t, x, "/rewire/config/api/maxconn", "50")
	put(t, x, "/rewire/config/webx", "x")
	put(t, x, "/rewire/config", "top")
	put(t, x, "/elsewhere/flag", "on")
	s := x.Snapshot(1)

	if v, ok := s.Get("/rewire/config/web/timeout"); !ok || v != "5s" {
		t.Errorf("Get(timeout) = %q, %t; want %q, true", v, ok, "5s")
	}
	if v, ok := s.Get("/elsewhere/flag"); !ok || v != "on" {
		t.Errorf("Get(/elsewhere/flag) = %q, %t; want %q, true", v, ok, "on")
	}
	if v, ok := s.Get("/rewire/config/web"); ok {
		t.Errorf("Get(/rewire/config/web) = %q, true; want false (no such key)", v)
	}
	tests := []struct {
		prefix string
		want   []KV
	}{
		{prefix: "/rewire/config/web/", want: []KV{{"/rewire/config/web/maxconn", "100"}, {"/rewire/config/web/timeout", "5s"}}},
		{prefix: "/rewire/config/web", want: []KV{
			{"/rewire/config/web/maxconn", "100"}, {"/rewire/config/web/timeout", "5s"}, {"/rewire/config/webx", "x"}}},
		{prefix: "/rewire/config", want: []KV{
			{"/rewire/config", "top"}, {"/rewire/config/api/maxconn", "50"},
			{"/rewire/config/web/maxconn", "100"}, {"/rewire/config/web/timeout", "5s"}, {"/rewire/config/webx", "x"}}},
		{prefix: "/nothing", want: nil},
		{prefix: "/rewire/config/web/timeout/", want: nil},
	}
	for _, tc := range tests {
		if got := s.List(tc.prefix); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
	if got := s.List(""); len(got) != 6 || !slices.IsSortedFunc(got, func(a, b KV) int { return strings.Compare(a.Key, b.Key) }) {
		t.Errorf("List(\"\") = %q, want all 6 keys sorted", got)
	}
	if len(s.ServiceNames()) != 0 {
		t.Errorf("free-form keys made services: %q", s.ServiceNames())
	}

	x.Delete("/rewire/config/web/timeout")
	put(t, x, "/rewire/config/web/maxconn", "200")
	s2 := x.Snapshot(2)
	if _, ok := s2.Get("/rewire/config/web/timeout"); ok {
		t.Errorf("after Delete Get(timeout) found it")
	}
	if got, want := s2.List("/rewire/config/web/"), []KV{{"/rewire/config/web/maxconn", "200"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("after Delete List = %q, want %q", got, want)
	}
	// The earlier snapshot is immutable.
	if v, _ := s.Get("/rewire/config/web/maxconn"); v != "100" {
		t.Errorf("old snapshot Get(maxconn) = %q, want %q", v, "100")
	}
	if len(s.List("")) != 6 {
		t.Errorf("old snapshot List(\"\") = %q, want 6 keys", s.List(""))
	}
}

func TestIndexInvalidRecord(t *testing.T) {
	k := Keys{}
	key := k.Instance("web", "web-1")
	tests := []struct {
		name      string
		value     []byte
		wantField string // "" when the error is not a field error
	}{
		{name: "address newline", value: record(t, "address", "10.0.0.1\nx"), wantField: "address"},
		{name: "address space", value: record(t, "address", "10.0.0.1 x"), wantField: "address"},
		{name: "port 0", value: record(t, "port", 0), wantField: "port"},
		{name: "port 70000", value: record(t, "port", 70000), wantField: "port"},
		{name: "tag hash", value: record(t, "tags", []string{"a#b"}), wantField: "tags[0]"},
		{name: "version 2", value: record(t, "v", 2), wantField: "v"},
		{name: "not JSON", value: []byte("10.0.0.1:8080")},
		{name: "empty", value: []byte{}},
		{name: "other service", value: record(t, "service", "api")},
		{name: "other id", value: record(t, "id", "web-2")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := NewIndex(k)
			putInstance(t, x, inst("web", "web-2"))
			err := x.Put(key, tc.value)
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Key != key {
				t.Fatalf("Put(%q, %q) error = %v, want *InvalidError for the key", key, tc.value, err)
			}
			if !strings.Contains(err.Error(), key) {
				t.Errorf("Put(%q, %q) error = %q, want it to name the key", key, tc.value, err)
			}
			var fe *FieldError
			if tc.wantField != "" && (!errors.As(err, &fe) || fe.Field != tc.wantField) {
				t.Errorf("Put(%q, %q) error = %v, want field %q", key, tc.value, err, tc.wantField)
			}
			s := x.Snapshot(1)
			if got, want := ids(s.Service("web").Instances), []string{"web-2"}; !slices.Equal(got, want) {
				t.Errorf("after invalid Put, web instances = %q, want %q", got, want)
			}
			if s.Service("api") != nil {
				t.Errorf("after invalid Put, Service(api) = %+v, want nil", s.Service("api"))
			}
		})
	}
}

func TestIndexValidRecordBecomesInvalid(t *testing.T) {
	k := Keys{}
	x := NewIndex(k)
	putInstance(t, x, inst("web", "web-1"))
	putInstance(t, x, inst("web", "web-2"))
	putInstance(t, x, inst("db", "db-1"))
	s1 := x.Snapshot(1)

	if err := x.Put(k.Instance("web", "web-1"), record(t, "id", "web-1", "address", "10.0.0.1 x")); err == nil {
		t.Fatalf("Put(invalid) error = nil, want *InvalidError")
	}
	if err := x.Put(k.Instance("db", "db-1"), record(t, "service", "db", "id", "db-1", "port", 0)); err == nil {
		t.Fatalf("Put(invalid) error = nil, want *InvalidError")
	}
	s2 := x.Snapshot(2)
	if got, want := ids(s2.Service("web").Instances), []string{"web-2"}; !slices.Equal(got, want) {
		t.Errorf("web instances = %q, want %q: the invalid record must disappear", got, want)
	}
	if s2.Service("db") != nil {
		t.Errorf("Service(db) = %+v, want nil: its only record became invalid", s2.Service("db"))
	}
	if got, want := ids(s1.Service("web").Instances), []string{"web-1", "web-2"}; !slices.Equal(got, want) {
		t.Errorf("old snapshot web instances = %q, want %q (snapshots are immutable)", got, want)
	}

	// Valid again: it comes back.
	putInstance(t, x, inst("web", "web-1"))
	if got, want := ids(x.Snapshot(3).Service("web").Instances), []string{"web-1", "web-2"}; !slices.Equal(got, want) {
		t.Errorf("after a valid Put, web instances = %q, want %q", got, want)
	}
}

func TestIndexInvalidKey(t *testing.T) {
	k := Keys{}
	x := NewIndex(k)
	for _, key := range []string{
		"/rewire/services/Web/web-1",
		"/rewire/services/web",
		"/rewire/services/web/web-1/x",
		"/rewire/maintenance/web/a b",
		"/rewire/expect/web/web-1",
	} {
		err := x.Put(key, marshal(t, inst("web", "web-1")))
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Key != key {
			t.Errorf("Put(%q) error = %v, want *InvalidError for the key", key, err)
		}
		x.Delete(key) // must not panic or touch anything
	}
	s := x.Snapshot(1)
	if len(s.ServiceNames()) != 0 || len(s.List("")) != 0 {
		t.Errorf("invalid keys reached the snapshot: services %q, kv %q", s.ServiceNames(), s.List(""))
	}
}

func TestSnapshotSharesUnchangedServices(t *testing.T) {
	k := Keys{}
	x := NewIndex(k)
	putInstance(t, x, inst("web", "web-1"))
	putInstance(t, x, inst("api", "api-1"))
	put(t, x, "/rewire/config/a", "1")
	s1 := x.Snapshot(1)

	putInstance(t, x, inst("api", "api-2"))
	s2 := x.Snapshot(2)
	if s1.Service("web") != s2.Service("web") {
		t.Errorf("unchanged service web: snapshots hold different *Service (%p, %p), want the same", s1.Service("web"), s2.Service("web"))
	}
	if s1.Service("api") == s2.Service("api") {
		t.Errorf("changed service api: snapshots share one *Service, want a new one")
	}
	if got := ids(s1.Service("api").Instances); !slices.Equal(got, []string{"api-1"}) {
		t.Errorf("old snapshot api instances = %q, want [api-1]", got)
	}

	// No change at all: everything is shared.
	s3 := x.Snapshot(3)
	for _, name := range []string{"web", "api"} {
		if s2.Service(name) != s3.Service(name) {
			t.Errorf("no change: Service(%q) not shared between snapshots", name)
		}
	}
	if s3.Rev != 3 {
		t.Errorf("Snapshot(3).Rev = %d, want 3", s3.Rev)
	}

	// A free-form key changes no service.
	put(t, x, "/rewire/config/a", "2")
	s4 := x.Snapshot(4)
	for _, name := range []string{"web", "api"} {
		if s3.Service(name) != s4.Service(name) {
			t.Errorf("free-form change: Service(%q) not shared between snapshots", name)
		}
	}
	if v, _ := s3.Get("/rewire/config/a"); v != "1" {
		t.Errorf("old snapshot Get = %q, want %q", v, "1")
	}
	if v, _ := s4.Get("/rewire/config/a"); v != "2" {
		t.Errorf("new snapshot Get = %q, want %q", v, "2")
	}

	// Maintenance of web rebuilds web only.
	put(t, x, k.Maintenance("web", ""), `{}`)
	s5 := x.Snapshot(5)
	if s4.Service("web") == s5.Service("web") || s4.Service("api") != s5.Service("api") {
		t.Errorf("maintenance of web: web shared %t, api shared %t; want false, true",
			s4.Service("web") == s5.Service("web"), s4.Service("api") == s5.Service("api"))
	}
}

func TestServiceRoutable(t *testing.T) {
	k := Keys{}
	x := NewIndex(k)
	putInstance(t, x, inst("web", "a-passing"))
	putInstance(t, x, inst("web", "b-warning", func(in *Instance) { in.Health.Shallow = status.Warning }))
	putInstance(t, x, inst("web", "c-critical", func(in *Instance) { in.Health.Shallow = status.Critical }))
	putInstance(t, x, inst("web", "d-deep-critical", func(in *Instance) { in.Health.Deep = status.Critical }))
	putInstance(t, x, inst("web", "e-draining", func(in *Instance) { in.Draining = true }))
	putInstance(t, x, inst("web", "f-maintenance"))
	put(t, x, k.Maintenance("web", "f-maintenance"), `{"reason":"x"}`)

	web := x.Snapshot(1).Service("web")
	if got, want := ids(web.Routable()), []string{"a-passing", "b-warning", "d-deep-critical"}; !slices.Equal(got, want) {
		t.Errorf("Routable() = %q, want %q", got, want)
	}
	if got := len(web.Instances); got != 6 {
		t.Errorf("Instances has %d entries, want all 6", got)
	}
}

func TestServiceTags(t *testing.T) {
	x := NewIndex(Keys{})
	putInstance(t, x, inst("web", "web-1", func(in *Instance) { in.Tags = []string{"v2", "canary"} }))
	putInstance(t, x, inst("web", "web-2", func(in *Instance) { in.Tags = []string{"v2", "blue"} }))
	putInstance(t, x, inst("web", "web-3"))
	if got, want := x.Snapshot(1).Service("web").Tags(), []string{"blue", "canary", "v2"}; !slices.Equal(got, want) {
		t.Errorf("Tags() = %q, want %q", got, want)
	}
}

// TestServiceTagsFollowChanges: a Snapshot's Service keeps its tags
// computed once; they must still follow every change to the instances,
// and an older snapshot must keep its own.
func TestServiceTagsFollowChanges(t *testing.T) {
	x := NewIndex(Keys{})
	putInstance(t, x, inst("web", "web-1", func(in *Instance) { in.Tags = []string{"v1"} }))
	s1 := x.Snapshot(1)
	putInstance(t, x, inst("web", "web-1", func(in *Instance) { in.Tags = []string{"v2"} }))
	putInstance(t, x, inst("web", "web-2", func(in *Instance) { in.Tags = []string{"canary"} }))
	s2 := x.Snapshot(2)
	x.Delete(Keys{}.Instance("web", "web-2"))
	s3 := x.Snapshot(3)
	for _, tc := range []struct {
		snap *Snapshot
		want []string
	}{
		{s1, []string{"v1"}},
		{s2, []string{"canary", "v2"}},
		{s3, []string{"v2"}},
	} {
		if got := tc.snap.Service("web").Tags(); !slices.Equal(got, tc.want) {
			t.Errorf("rev %d: Tags() = %q, want %q", tc.snap.Rev, got, tc.want)
		}
	}
	// A Service not built by an Index computes them.
	sv := &Service{Name: "web", Instances: []Instance{inst("web", "a", func(in *Instance) { in.Tags = []string{"x"} })}}
	if got := sv.Tags(); !slices.Equal(got, []string{"x"}) {
		t.Errorf("Tags() of a literal Service = %q, want [x]", got)
	}
}

// TestIndexMatchesModel applies random puts, deletes and maintenance
// changes, with snapshots taken at random points, and compares every
// snapshot with a plain map of the same operations. Every earlier
// snapshot must still read as it did when it was taken: the index merges
// changes into new slices and shares values between records, and neither
// may ever write into a published one.
func TestIndexMatchesModel(t *testing.T) {
	k := Keys{}
	rng := rand.New(rand.NewPCG(1, 2))
	x := NewIndex(k)
	model := map[string]map[string]Instance{} // service → id → record
	maint := map[string]bool{}                // "svc/id" or "svc/"
	type taken struct {
		snap *Snapshot
		want map[string][]Instance
	}
	var snaps []taken
	byVersion := map[uint64]Instance{}
	expected := func() map[string][]Instance {
		out := map[string][]Instance{}
		for svc, byID := range model {
			for _, id := range slices.Sorted(maps.Keys(byID)) {
				in := byID[id]
				in.Service = svc
				in.Maintenance = maint[svc+"/"] || maint[svc+"/"+id]
				out[svc] = append(out[svc], in)
			}
		}
		return out
	}
	check := func(tk taken) {
		t.Helper()
		for _, svc := range []string{"a", "b", "c"} {
			sv := tk.snap.Service(svc)
			var got []Instance
			if sv != nil {
				got = sv.Instances
			}
			want := tk.want[svc]
			if cap(got) != len(got) {
				t.Fatalf("rev %d service %s: Instances has len %d, cap %d: an append by a reader would write into the snapshot's array", tk.snap.Rev, svc, len(got), cap(got))
			}
			if len(got) != len(want) {
				t.Fatalf("rev %d service %s: %d instances %q, want %d %q", tk.snap.Rev, svc, len(got), ids(got), len(want), ids(want))
			}
			for i := range got {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("rev %d service %s instance %d:\n got %+v\nwant %+v", tk.snap.Rev, svc, i, got[i], want[i])
				}
			}
			if sv != nil && len(got) > 0 {
				union := (&Service{Instances: want}).Tags()
				if !slices.Equal(sv.Tags(), union) {
					t.Fatalf("rev %d service %s: Tags() = %q, want %q", tk.snap.Rev, svc, sv.Tags(), union)
				}
			}
			checkVersions(t, tk.snap, got, byVersion)
		}
	}
	for step := range 3000 {
		svc := []string{"a", "b", "c"}[rng.IntN(3)]
		id := fmt.Sprintf("i%02d", rng.IntN(30))
		switch r := rng.IntN(10); {
		case r < 6:
			in := inst(svc, id, func(in *Instance) {
				in.Tags = []string{"v" + strconv.Itoa(rng.IntN(2))}
				if rng.IntN(8) == 0 { // a tag few records have: the union changes
					in.Tags = append(in.Tags, "rare"+strconv.Itoa(rng.IntN(3)))
				}
				in.Meta = map[string]string{"version": strconv.Itoa(rng.IntN(2))}
				in.Node = "node" + strconv.Itoa(rng.IntN(3))
				in.Weight = rng.IntN(3)
				in.Health.Shallow = []status.Status{status.Passing, status.Critical}[rng.IntN(2)]
				in.Health.Checks = []Check{{Name: "alive", Kind: status.Shallow, Status: in.Health.Shallow, Output: "out" + strconv.Itoa(rng.IntN(2))}}
			})
			putInstance(t, x, in)
			if model[svc] == nil {
				model[svc] = map[string]Instance{}
			}
			stored, err := DecodeInstance(marshal(t, in))
			if err != nil {
				t.Fatal(err)
			}
			model[svc][id] = stored
		case r < 8:
			x.Delete(k.Instance(svc, id))
			delete(model[svc], id)
		default:
			if rng.IntN(4) == 0 {
				id = ""
			}
			if maint[svc+"/"+id] {
				x.Delete(k.Maintenance(svc, id))
				delete(maint, svc+"/"+id)
			} else {
				put(t, x, k.Maintenance(svc, id), `{}`)
				maint[svc+"/"+id] = true
			}
		}
		if rng.IntN(5) == 0 {
			tk := taken{x.Snapshot(int64(step)), expected()}
			check(tk)
			snaps = append(snaps, tk)
		}
	}
	for _, tk := range snaps {
		check(tk)
	}
}

// TestIndexNeverWritesPublished reads an earlier snapshot's records from
// another goroutine while the index stores records that share values with
// them. Run with -race: any write into a published record (even of an
// equal value) is reported.
func TestIndexNeverWritesPublished(t *testing.T) {
	x := NewIndex(Keys{})
	rec := func(id, output string) Instance {
		return inst("web", id, func(in *Instance) {
			in.Tags, in.Meta = []string{"v2"}, map[string]string{"version": "1"}
			in.Health.Checks = []Check{{Name: "alive", Kind: status.Shallow, Status: status.Passing, Output: output}}
		})
	}
	putInstance(t, x, rec("a", "a-out"))
	putInstance(t, x, rec("b", "b-out"))
	first := x.Snapshot(1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			for _, in := range first.Service("web").Instances {
				for _, c := range in.Health.Checks {
					_, _ = c.Name+c.Output+string(c.Status), in.Meta["version"]
				}
				_ = len(in.Tags) + len(in.ID) + len(in.Service)
			}
		}
	})
	for i := range 200 {
		out := "b-out"
		if i%2 == 1 {
			out = fmt.Sprintf("b-out-%d", i)
		}
		putInstance(t, x, rec("a", "a-out"))
		putInstance(t, x, rec("b", out))
		putInstance(t, x, rec(fmt.Sprintf("c%03d", i), "a-out"))
		x.Snapshot(int64(i + 2))
	}
	close(done)
	wg.Wait()
	if got := first.Service("web").Instances[1].Health.Checks[0].Output; got != "b-out" {
		t.Errorf("first snapshot's b output = %q, want b-out", got)
	}
}

// checkVersions checks that every record of list (a service's Instances
// in snap) has a number, and that a number seen before (in byVersion,
// which it fills) always stands for the same values.
func checkVersions(t *testing.T, snap *Snapshot, list []Instance, byVersion map[uint64]Instance) {
	t.Helper()
	if len(list) == 0 {
		return
	}
	vers := snap.Versions(list)
	if len(vers) != len(list) {
		t.Fatalf("rev %d: Versions(Instances of %s) has %d numbers, want %d", snap.Rev, list[0].Service, len(vers), len(list))
	}
	for i, v := range vers {
		seen, ok := byVersion[v]
		if !ok {
			byVersion[v] = list[i]
			continue
		}
		if !reflect.DeepEqual(seen, list[i]) {
			t.Fatalf("rev %d: number %d stands for\n%+v\nand\n%+v", snap.Rev, v, seen, list[i])
		}
	}
}

// TestSnapshotVersions: a record keeps its number while it is unchanged,
// gets a new one when it is put with other values or its maintenance
// changes, and keeps it when put again as it was. Lists other than a
// service's Instances have none, and a new Index never reuses a number.
func TestSnapshotVersions(t *testing.T) {
	k := Keys{}
	x := NewIndex(k)
	for i := range 4 {
		putInstance(t, x, inst("web", fmt.Sprintf("web-%d", i)))
	}
	putInstance(t, x, inst("db", "db-1"))
	s1 := x.Snapshot(1)
	v1 := s1.Versions(s1.Service("web").Instances)
	if len(v1) != 4 || slices.Contains(v1, 0) {
		t.Fatalf("Versions = %v, want 4 non-zero numbers", v1)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(v1)))) != 4 {
		t.Fatalf("Versions = %v, want 4 different numbers", v1)
	}
	critical := func(in *Instance) { in.Health.Shallow = status.Critical }
	for _, tc := range []struct {
		name    string
		change  func()
		changed []int // indexes (in the new list) whose number must change
		ids     []string
	}{
		{"health flip", func() { putInstance(t, x, inst("web", "web-2", critical)) }, []int{2}, nil},
		{"put again as it was", func() { putInstance(t, x, inst("web", "web-2", critical)) }, nil, nil},
		{"instance maintenance", func() { put(t, x, k.Maintenance("web", "web-1"), "{}") }, []int{1}, nil},
		{"service maintenance", func() { put(t, x, k.Maintenance("web", ""), "{}") }, []int{0, 2, 3}, nil},
		{"service maintenance ends", func() { x.Delete(k.Maintenance("web", "")) }, []int{0, 2, 3}, nil},
		{"delete", func() { x.Delete(k.Instance("web", "web-0")) }, nil, []string{"web-1", "web-2", "web-3"}},
		{"re-add with the same ID", func() { putInstance(t, x, inst("web", "web-0")) }, []int{0}, nil},
		{"other service", func() { putInstance(t, x, inst("db", "db-1", critical)) }, nil, nil},
	} {
		before := x.last
		prev := before.Versions(before.Service("web").Instances)
		tc.change()
		s := x.Snapshot(before.Rev + 1)
		list := s.Service("web").Instances
		got := s.Versions(list)
		if tc.ids != nil && !slices.Equal(ids(list), tc.ids) {
			t.Fatalf("%s: instances %q, want %q", tc.name, ids(list), tc.ids)
		}
		for i, in := range list {
			j := slices.IndexFunc(before.Service("web").Instances, func(o Instance) bool { return o.ID == in.ID })
			wantChanged := slices.Contains(tc.changed, i) || j < 0
			if changed := j < 0 || got[i] != prev[j]; changed != wantChanged {
				t.Errorf("%s: %s number changed = %t, want %t (%d → %d)", tc.name, in.ID, changed, wantChanged, prev[max(j, 0)], got[i])
			}
		}
	}
	last := x.last
	web := last.Service("web").Instances
	for _, tc := range []struct {
		name string
		list []Instance
	}{
		{"part", web[1:]},
		{"copy", slices.Clone(web)},
		{"routable", last.Service("web").Routable()},
		{"replaced Instances", last.With(&Service{Name: "web", Instances: slices.Clone(web)}).Service("web").Instances},
	} {
		if got := last.Versions(tc.list); got != nil {
			t.Errorf("Versions(%s) = %v, want nil", tc.name, got)
		}
	}
	// A copy of the Service struct with other Instances has none either.
	cp := *last.Service("web")
	cp.Instances = slices.Clone(web)
	if got := last.With(&cp).Versions(cp.Instances); got != nil {
		t.Errorf("Versions(Instances of a copied Service) = %v, want nil", got)
	}
	// A new Index (a reader's resync) numbers its records anew.
	y := NewIndex(k)
	for _, in := range web {
		putInstance(t, y, in)
	}
	ys := y.Snapshot(1)
	for i, v := range ys.Versions(ys.Service("web").Instances) {
		if slices.Contains(last.Versions(web), v) {
			t.Errorf("new Index: %s has number %d, which the old Index used", web[i].ID, v)
		}
	}
}
