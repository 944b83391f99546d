package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/rewire/rewire/health/status"
)

// Version is the record format version this package reads and writes.
const Version = 1

// Limits on record fields.
const (
	MaxWeight     = 256
	DefaultWeight = 100
	maxTokenLen   = 253
	maxOutputLen  = 1024
)

// Instance is one registered instance of a service: the record stored at
// <prefix>/services/<service>/<id>, plus Maintenance, which the registry
// derives from the operator's maintenance keys and never stores in the
// record. Its exported fields are a public contract: templates print them.
type Instance struct {
	V            int               `json:"v"`
	Service      string            `json:"service"`
	ID           string            `json:"id"`
	Node         string            `json:"node,omitempty"`
	Address      string            `json:"address"`
	Port         int               `json:"port"`
	Tags         []string          `json:"tags"`
	Meta         map[string]string `json:"meta"`
	Weight       int               `json:"weight"`
	DependsOn    []string          `json:"depends_on"`
	Health       Health            `json:"health"`
	Draining     bool              `json:"draining"`
	RegisteredAt time.Time         `json:"registered_at,omitzero"`

	// Maintenance is true when the operator put the instance or its whole
	// service in maintenance. Not part of the stored record.
	Maintenance bool `json:"-"`

	// extra holds fields this version does not know, so that rewriting a
	// record never drops them.
	extra map[string]json.RawMessage
}

// Health is the health part of a record.
type Health struct {
	Shallow status.Status `json:"shallow"`
	Deep    status.Status `json:"deep"`
	Checks  []Check       `json:"checks"`
	Since   time.Time     `json:"since,omitzero"`
}

// Check is the reported state of one health check.
type Check struct {
	Name   string        `json:"name"`
	Kind   status.Kind   `json:"kind"`
	Status status.Status `json:"status"`
	Output string        `json:"output"`
	Since  time.Time     `json:"since,omitzero"`
}

// Routable reports whether traffic may be sent to the instance: shallow
// health passing or warning, not in maintenance, not draining.
func (in Instance) Routable() bool {
	return in.Health.Shallow != status.Critical && !in.Maintenance && !in.Draining
}

// Same reports whether in and o hold the same values, everything a
// template can print included (unknown fields and the derived Maintenance
// too). Records of a Snapshot share their slices and maps with their
// earlier versions while those are unchanged, so for them this is mostly
// pointer comparisons. Times are the same when they are equal instants in
// the same *time.Location.
func (in *Instance) Same(o *Instance) bool {
	if in == nil || o == nil {
		return in == o
	}
	return in.V == o.V && in.Service == o.Service && in.ID == o.ID && in.Node == o.Node &&
		in.Address == o.Address && in.Port == o.Port && in.Weight == o.Weight &&
		in.Draining == o.Draining && in.Maintenance == o.Maintenance &&
		sameTime(in.RegisteredAt, o.RegisteredAt) &&
		in.Health.Shallow == o.Health.Shallow && in.Health.Deep == o.Health.Deep &&
		sameTime(in.Health.Since, o.Health.Since) &&
		slices.Equal(in.Tags, o.Tags) && slices.Equal(in.DependsOn, o.DependsOn) &&
		maps.Equal(in.Meta, o.Meta) &&
		slices.EqualFunc(in.Health.Checks, o.Health.Checks, func(a, b Check) bool {
			return a.Name == b.Name && a.Kind == b.Kind && a.Status == b.Status && a.Output == b.Output && sameTime(a.Since, b.Since)
		}) &&
		maps.EqualFunc(in.extra, o.extra, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) })
}

func sameTime(a, b time.Time) bool { return a.Equal(b) && a.Location() == b.Location() }

// FieldError is a validation failure of one record field.
type FieldError struct {
	Field string // JSON name, e.g. "port" or "tags[2]"
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// ErrVersion is returned for records of a format version this package does
// not understand.
var ErrVersion = errors.New("schema: unsupported record version")

type wireInstance struct {
	V            *int              `json:"v"`
	Service      string            `json:"service"`
	ID           string            `json:"id"`
	Node         string            `json:"node"`
	Address      string            `json:"address"`
	Port         int               `json:"port"`
	Tags         []string          `json:"tags"`
	Meta         map[string]string `json:"meta"`
	Weight       *int              `json:"weight"`
	DependsOn    []string          `json:"depends_on"`
	Health       *Health           `json:"health"`
	Draining     bool              `json:"draining"`
	RegisteredAt time.Time         `json:"registered_at"`
}

var knownFields = []string{"v", "service", "id", "node", "address", "port", "tags", "meta",
	"weight", "depends_on", "health", "draining", "registered_at"}

// DecodeInstance parses and validates a record. Missing optional fields get
// their defaults (weight 100, deep = shallow, empty lists and maps); unknown
// fields are kept and written back by Marshal.
func DecodeInstance(data []byte) (Instance, error) {
	var w wireInstance
	if err := json.Unmarshal(data, &w); err != nil {
		return Instance{}, fmt.Errorf("schema: decode record: %w", err)
	}
	if w.V == nil {
		return Instance{}, &FieldError{"v", fmt.Errorf("%w: missing", ErrVersion)}
	}
	if *w.V != Version {
		return Instance{}, &FieldError{"v", fmt.Errorf("%w %d (this build reads %d)", ErrVersion, *w.V, Version)}
	}
	if w.Health == nil {
		return Instance{}, &FieldError{"health.shallow", errors.New("missing")}
	}
	in := Instance{
		V: *w.V, Service: w.Service, ID: w.ID, Node: w.Node, Address: w.Address, Port: w.Port,
		Tags: w.Tags, Meta: w.Meta, Weight: DefaultWeight, DependsOn: w.DependsOn,
		Health: *w.Health, Draining: w.Draining, RegisteredAt: w.RegisteredAt,
	}
	if w.Weight != nil {
		in.Weight = *w.Weight
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err == nil {
		for k, v := range all {
			// encoding/json matched any case-folded spelling of a known
			// field ("SERVICE", "ſervice") to it: that is not an unknown field.
			if !slices.ContainsFunc(knownFields, func(f string) bool { return strings.EqualFold(f, k) }) {
				if in.extra == nil {
					in.extra = map[string]json.RawMessage{}
				}
				in.extra[k] = v
			}
		}
	}
	in.setDefaults()
	if err := in.Validate(); err != nil {
		return Instance{}, err
	}
	return in, nil
}

func (in *Instance) setDefaults() {
	if in.V == 0 {
		in.V = Version
	}
	if in.Health.Deep == "" {
		in.Health.Deep = in.Health.Shallow
	}
	if in.Tags == nil {
		in.Tags = []string{}
	}
	if in.Meta == nil {
		in.Meta = map[string]string{}
	}
	if in.DependsOn == nil {
		in.DependsOn = []string{}
	}
	if in.Health.Checks == nil {
		in.Health.Checks = []Check{}
	}
	for i := range in.Health.Checks {
		if in.Health.Checks[i].Kind == "" {
			in.Health.Checks[i].Kind = status.Shallow
		}
	}
}

// Marshal validates the record and encodes it, unknown fields included.
func (in Instance) Marshal() ([]byte, error) {
	in.setDefaults()
	if err := in.Validate(); err != nil {
		return nil, err
	}
	type plain Instance
	b, err := json.Marshal(plain(in))
	if err != nil || len(in.extra) == 0 {
		return b, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	for k, v := range in.extra {
		all[k] = v
	}
	return json.Marshal(all)
}

// Validate checks every field a template can print. The error joins one
// *FieldError per problem.
func (in Instance) Validate() error {
	var errs []error
	add := func(field string, err error) {
		if err != nil {
			errs = append(errs, &FieldError{field, err})
		}
	}
	if in.V != Version {
		add("v", fmt.Errorf("%w %d", ErrVersion, in.V))
	}
	add("service", ValidateName(in.Service))
	add("id", ValidateName(in.ID))
	if in.Node != "" {
		add("node", validateToken(in.Node))
	}
	add("address", ValidateAddress(in.Address))
	if in.Port < 1 || in.Port > 65535 {
		add("port", fmt.Errorf("%d out of range 1-65535", in.Port))
	}
	if in.Weight < 0 || in.Weight > MaxWeight {
		add("weight", fmt.Errorf("%d out of range 0-%d", in.Weight, MaxWeight))
	}
	for i, t := range in.Tags {
		add(fmt.Sprintf("tags[%d]", i), validateToken(t))
	}
	for k, v := range in.Meta {
		add(fmt.Sprintf("meta[%q]", k), validateMetaKey(k))
		if v != "" {
			add(fmt.Sprintf("meta[%q]", k), validateToken(v))
		}
	}
	for i, d := range in.DependsOn {
		add(fmt.Sprintf("depends_on[%d]", i), ValidateName(d))
	}
	add("health.shallow", validateStatus(in.Health.Shallow))
	add("health.deep", validateStatus(in.Health.Deep))
	add("health.since", validateTime(in.Health.Since))
	add("registered_at", validateTime(in.RegisteredAt))
	for i, c := range in.Health.Checks {
		f := fmt.Sprintf("health.checks[%d]", i)
		add(f+".name", ValidateName(c.Name))
		if c.Kind != status.Shallow && c.Kind != status.Deep {
			add(f+".kind", fmt.Errorf("invalid kind %q", c.Kind))
		}
		add(f+".status", validateStatus(c.Status))
		add(f+".output", validateText(c.Output))
		add(f+".since", validateTime(c.Since))
	}
	return errors.Join(errs...)
}

// validateTime accepts the zero time (not written) and any time that
// encodes as RFC 3339, so that a record that was read can be written back:
// encoding/json reads a zone offset of +24:00 but refuses to write it.
func validateTime(t time.Time) error {
	if t.IsZero() {
		return nil
	}
	_, err := t.MarshalJSON()
	return err
}

func validateStatus(s status.Status) error {
	if !s.Valid() {
		return fmt.Errorf("invalid status %q", s)
	}
	return nil
}

// ValidateAddress accepts an IP address (v4 or v6, no zone) or a DNS name.
func ValidateAddress(s string) error {
	if s == "" {
		return errors.New("missing")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return fmt.Errorf("%q: zoned IPv6 addresses are not accepted", s)
		}
		return nil
	}
	if len(s) > 253 {
		return fmt.Errorf("%.20q…: longer than 253 characters", s)
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(s, "."), ".") {
		if !validLabel(label) {
			return fmt.Errorf("%q is neither an IP address nor a DNS name", s)
		}
	}
	return nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// badTokenRunes can end or split a config line or a quoted string in the
// configs templates render, so tags, meta values and node names reject them.
const badTokenRunes = "\"'`\\#"

// validateToken accepts a non-empty string with no whitespace, no control
// characters and none of badTokenRunes.
func validateToken(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > maxTokenLen {
		return fmt.Errorf("%.20q…: longer than %d bytes", s, maxTokenLen)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar || strings.ContainsRune(badTokenRunes, r) {
			return fmt.Errorf("%q: contains %q (whitespace, control characters and %s are not allowed)", s, r, badTokenRunes)
		}
	}
	return nil
}

func validateMetaKey(k string) error {
	if k == "" || len(k) > 63 {
		return fmt.Errorf("key %q: must be 1-63 characters", k)
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return fmt.Errorf("key %q: only letters, digits, '_', '-' and '.' are allowed", k)
		}
	}
	return nil
}

// validateText accepts free text (check output) without control characters.
func validateText(s string) error {
	if len(s) > maxOutputLen {
		return fmt.Errorf("longer than %d bytes", maxOutputLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("contains control character %q", r)
		}
	}
	return nil
}

// Maintenance is the value of a maintenance key.
type Maintenance struct {
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	Since  time.Time `json:"since"`
}

// Expect is the value of an expect key.
type Expect struct {
	Instances int `json:"instances"`
}
