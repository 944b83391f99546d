package render

import (
	"maps"
	"slices"

	"github.com/rewire/rewire/registry/schema"
)

// Deps records what one render read from a snapshot, so that a later
// snapshot can be checked for changes that matter to the template without
// rendering it. Snapshots share each unchanged *schema.Service, so a
// service dependency is a pointer comparison.
type Deps struct {
	services    map[string]*schema.Service // nil value: the service was absent
	allServices map[string]*schema.Service // set when the template listed services
	keys        map[string]keyDep
	prefixes    map[string][]schema.KV
	// Panicked names the services for which serviceOrAll fell back to
	// every instance.
	Panicked []string
}

type keyDep struct {
	value string
	ok    bool
}

// newDeps returns an empty Deps. Its maps are made on first use: most
// cached blocks (one per instance in a large service) read nothing.
func newDeps() *Deps { return &Deps{} }

// noDeps is an empty Deps shared by every cached block that read nothing.
// Never write to it.
var noDeps = &Deps{}

// empty reports whether d records no read at all.
func (d *Deps) empty() bool {
	return len(d.services) == 0 && d.allServices == nil && len(d.keys) == 0 && len(d.prefixes) == 0 && len(d.Panicked) == 0
}

// set stores v under k in *m, making the map first if needed.
func set[V any](m *map[string]V, k string, v V) {
	if *m == nil {
		*m = map[string]V{}
	}
	(*m)[k] = v
}

func (d *Deps) service(snap *schema.Snapshot, name string) {
	if d != nil {
		set(&d.services, name, snap.Service(name))
	}
}

func (d *Deps) all(snap *schema.Snapshot) {
	if d == nil || d.allServices != nil {
		return
	}
	d.allServices = map[string]*schema.Service{}
	for _, n := range snap.ServiceNames() {
		d.allServices[n] = snap.Service(n)
	}
}

func (d *Deps) key(key, value string, ok bool) {
	if d != nil {
		set(&d.keys, key, keyDep{value, ok})
	}
}

func (d *Deps) prefix(p string, kvs []schema.KV) {
	if d != nil {
		set(&d.prefixes, p, kvs)
	}
}

// Changed reports whether anything the render read is different in snap.
// A nil Deps (never rendered) has always changed.
func (d *Deps) Changed(snap *schema.Snapshot) bool {
	if d == nil {
		return true
	}
	for name, sv := range d.services {
		if snap.Service(name) != sv {
			return true
		}
	}
	if d.allServices != nil {
		names := snap.ServiceNames()
		if len(names) != len(d.allServices) {
			return true
		}
		for _, n := range names {
			if sv, ok := d.allServices[n]; !ok || snap.Service(n) != sv {
				return true
			}
		}
	}
	for k, dep := range d.keys {
		if v, ok := snap.Get(k); ok != dep.ok || v != dep.value {
			return true
		}
	}
	for p, kvs := range d.prefixes {
		if !slices.Equal(snap.List(p), kvs) {
			return true
		}
	}
	return false
}

// Services returns the names of the services the render read, sorted.
func (d *Deps) Services() []string {
	if d == nil {
		return nil
	}
	names := map[string]bool{}
	for n := range d.services {
		names[n] = true
	}
	for n := range d.allServices {
		names[n] = true
	}
	return slices.Sorted(maps.Keys(names))
}
