package schema

import (
	"fmt"
	"regexp"
	"strings"
)

// DefaultPrefix is the key prefix used when none is configured.
const DefaultPrefix = "/rewire"

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidateName reports whether s is a valid service or instance id. Names end
// up in file names, HAProxy server names and etcd keys, so nothing but
// ^[a-z0-9][a-z0-9._-]{0,62}$ is accepted.
func ValidateName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("invalid name %q: must match %s", s, nameRE)
	}
	return nil
}

// NormalizePrefix returns p with exactly one leading slash and no trailing
// slash; "" becomes DefaultPrefix.
func NormalizePrefix(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return DefaultPrefix
	}
	return "/" + p
}

// KeyKind says what a key under the prefix holds.
type KeyKind int

// Kinds of keys.
const (
	KindOther       KeyKind = iota // free-form application config
	KindInstance                   // <prefix>/services/<service>/<id>
	KindMaintenance                // <prefix>/maintenance/<service>[/<id>]
	KindExpect                     // <prefix>/expect/<service>
)

// Keys builds and parses keys under one prefix. The zero value uses
// DefaultPrefix.
type Keys struct {
	Prefix string
}

func (k Keys) root() string { return NormalizePrefix(k.Prefix) }

// Root returns the normalized prefix followed by "/", the range every key of
// the registry lives under.
func (k Keys) Root() string { return k.root() + "/" }

// Services returns the prefix of every instance key.
func (k Keys) Services() string { return k.root() + "/services/" }

// Service returns the prefix of one service's instance keys.
func (k Keys) Service(service string) string { return k.Services() + service + "/" }

// Instance returns the key of one instance record.
func (k Keys) Instance(service, id string) string { return k.Service(service) + id }

// Maintenance returns the maintenance key of a service, or of one instance
// when id is not empty.
func (k Keys) Maintenance(service, id string) string {
	if id == "" {
		return k.root() + "/maintenance/" + service
	}
	return k.root() + "/maintenance/" + service + "/" + id
}

// Expect returns the key holding the expected instance count of a service.
func (k Keys) Expect(service string) string { return k.root() + "/expect/" + service }

// Parse classifies key. For instance, maintenance and expect keys it returns
// the service and (where present) the instance id. A key in one of the
// registry's own ranges whose names are invalid is an error; keys elsewhere
// are KindOther.
func (k Keys) Parse(key string) (kind KeyKind, service, id string, err error) {
	rest, ok := strings.CutPrefix(key, k.Root())
	if !ok {
		return KindOther, "", "", nil
	}
	section, rest, _ := strings.Cut(rest, "/")
	parts := strings.Split(rest, "/")
	switch section {
	case "services":
		if len(parts) != 2 {
			return 0, "", "", fmt.Errorf("key %s: want %sservices/<service>/<id>", key, k.Root())
		}
		kind = KindInstance
	case "maintenance":
		if len(parts) > 2 {
			return 0, "", "", fmt.Errorf("key %s: want %smaintenance/<service>[/<id>]", key, k.Root())
		}
		kind = KindMaintenance
	case "expect":
		if len(parts) != 1 {
			return 0, "", "", fmt.Errorf("key %s: want %sexpect/<service>", key, k.Root())
		}
		kind = KindExpect
	default:
		return KindOther, "", "", nil
	}
	if err := ValidateName(parts[0]); err != nil {
		return 0, "", "", fmt.Errorf("key %s: service: %w", key, err)
	}
	if len(parts) == 2 {
		if err := ValidateName(parts[1]); err != nil {
			return 0, "", "", fmt.Errorf("key %s: instance id: %w", key, err)
		}
		id = parts[1]
	}
	return kind, parts[0], id, nil
}
