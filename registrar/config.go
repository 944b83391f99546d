package registrar

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr/template"
	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/internal/yamlconf"
	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/registry/schema"
)

// Config is registrar.yaml, a public contract: see README.md "registrar.yaml".
type Config struct {
	Etcd     registry.Config `yaml:"etcd"`
	LeaseTTL time.Duration   `yaml:"lease_ttl"`
	Listen   string          `yaml:"listen"`
	// ListenNonLoopback allows a listen address other than loopback,
	// which exposes /metrics, /healthz and the read-only API to the
	// network (writes still need the token).
	ListenNonLoopback bool `yaml:"listen_non_loopback"`
	// APISocket is a unix socket serving the local API (relative paths:
	// relative to this file). Its mode and group are the access control
	// for writes; the kernel names the caller.
	APISocket      string `yaml:"api_socket"`
	APISocketMode  string `yaml:"api_socket_mode"`  // octal; default "0660"
	APISocketGroup string `yaml:"api_socket_group"` // name or id; default the registrar's
	// APITokenFile holds a token that authorizes local API writes over
	// listen ("Authorization: Bearer <token>"); it must not be readable
	// by everyone.
	APITokenFile string `yaml:"api_token_file"`
	Node         string `yaml:"node"`
	// WriteInterval rate-limits rewrites of one record (bursts of 3 pass);
	// changes in between coalesce. Default 1s.
	WriteInterval time.Duration   `yaml:"write_interval"`
	Services      []ServiceConfig `yaml:"services"`

	apiToken   string      // read from APITokenFile by Validate
	socketMode fs.FileMode // parsed from APISocketMode by Validate
}

// ServiceConfig is one entry of `services:`.
type ServiceConfig struct {
	Name      string            `yaml:"name"`
	ID        string            `yaml:"id"`
	Address   string            `yaml:"address"`
	Port      int               `yaml:"port"`
	Tags      []string          `yaml:"tags"`
	Meta      map[string]string `yaml:"meta"`
	Weight    *int              `yaml:"weight"`
	DependsOn []string          `yaml:"depends_on"`
	// Drain is how long the instance stays registered as draining on
	// shutdown before it is deregistered.
	Drain  time.Duration `yaml:"drain"`
	Checks []CheckConfig `yaml:"checks"`
}

// CheckConfig is one entry of a service's `checks:`.
type CheckConfig struct {
	Name     string        `yaml:"name"`
	Kind     string        `yaml:"kind"`
	HTTP     string        `yaml:"http"`
	TCP      string        `yaml:"tcp"`
	Exec     []string      `yaml:"exec"`
	GRPC     string        `yaml:"grpc"` // host:port or host:port/service
	TTL      time.Duration `yaml:"ttl"`  // pushed by the app to the local API
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
	Rise     int           `yaml:"rise"`
	Fall     int           `yaml:"fall"`
}

// DefaultConfig returns every default of registrar.yaml (a function, so
// that no caller can change the defaults of another).
func DefaultConfig() Config {
	return Config{
		LeaseTTL:      10 * time.Second,
		Listen:        "127.0.0.1:9701",
		WriteInterval: time.Second,
	}
}

// defaultAddress is used when a service sets no address.
const defaultAddress = "{{ GetPrivateIP }}"

// LoadConfig reads, defaults and validates path. Every problem is an
// error naming the file, line and field.
func LoadConfig(path string) (Config, error) {
	cfg, _, err := loadConfig(path)
	return cfg, err
}

func loadConfig(path string) (Config, *yamlconf.Doc, error) {
	cfg := DefaultConfig()
	doc, decodeErr := yamlconf.Load(path, &cfg)
	if decodeErr != nil && !doc.Parsed() {
		return cfg, doc, decodeErr
	}
	// Validate what decoded too: every problem of the file at once.
	if cfg.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return cfg, doc, doc.Merge(decodeErr, doc.Errorf("node", "not set and the hostname is unknown: %w", err))
		}
		cfg.Node = strings.ToLower(h)
	}
	return cfg, doc, doc.Merge(decodeErr, cfg.Validate(doc))
}

// Validate checks everything that can be checked before connecting,
// returning one located error per problem. It resolves address templates
// and fills default ids in place.
func (c *Config) Validate(doc *yamlconf.Doc) error {
	var errs []error
	bad := func(path string, err error) { errs = append(errs, doc.Error(path, err)) }
	if c.LeaseTTL < 2*time.Second {
		bad("lease_ttl", fmt.Errorf("%s is too short: use 2s or more", c.LeaseTTL))
	}
	if c.WriteInterval < 0 {
		bad("write_interval", errors.New("negative"))
	}
	if len(c.Services) == 0 {
		bad("services", errors.New("no services configured"))
	}
	if err := c.CheckListen(); err != nil {
		bad("listen", err)
	}
	c.validateAPI(doc, bad)
	seen := map[string]int{}
	for i := range c.Services {
		c.validateService(doc, i, seen, bad)
	}
	return errors.Join(errs...)
}

// validateService checks services[i] and fills its defaults in place: the
// id, the address (a go-sockaddr template is resolved here), relative exec
// paths. seen maps service/id to the index that first used it, to catch
// duplicates.
func (c *Config) validateService(doc *yamlconf.Doc, i int, seen map[string]int, bad func(string, error)) {
	s := &c.Services[i]
	p := fmt.Sprintf("services[%d]", i)
	nameErr := schema.ValidateName(s.Name)
	if s.Name == "" {
		nameErr = errors.New("missing")
	}
	if nameErr != nil {
		bad(p+".name", nameErr)
	}
	if s.ID == "" {
		s.ID = c.Node + "-" + strconv.Itoa(s.Port)
		if err := schema.ValidateName(s.ID); err != nil {
			bad(p+".id", fmt.Errorf("not set, and the default <node>-<port> %q is not a valid id; set one", s.ID))
		}
	}
	key := s.Name + "/" + s.ID
	if j, dup := seen[key]; dup && nameErr == nil {
		bad(p+".id", fmt.Errorf("duplicate instance %s (also services[%d])", key, j))
	}
	seen[key] = i
	if !s.resolveAddress(p, bad) {
		return
	}
	// The record's own validation covers every printable field.
	var fe *schema.FieldError
	for _, err := range unjoin(s.record(c.Node, time.Time{}, nil).Validate()) {
		if errors.As(err, &fe) && !strings.HasPrefix(fe.Field, "health") && fe.Field != "service" && fe.Field != "id" {
			bad(p+"."+configField(fe.Field), fe.Err)
		}
	}
	for j, d := range s.DependsOn {
		if d == s.Name {
			bad(fmt.Sprintf("%s.depends_on[%d]", p, j), fmt.Errorf("service %s cannot depend on itself", d))
		}
	}
	if s.Drain < 0 {
		bad(p+".drain", errors.New("negative"))
	}
	s.validateChecks(doc, p, bad)
}

// resolveAddress defaults the address and resolves a go-sockaddr template
// in it. It reports false, after naming the problem under p, when the
// template does not resolve: the rest of the service is not checked then.
func (s *ServiceConfig) resolveAddress(p string, bad func(string, error)) bool {
	if s.Address == "" {
		s.Address = defaultAddress
	}
	if !strings.Contains(s.Address, "{{") {
		return true
	}
	addr, err := sockaddr.Parse(s.Address)
	switch {
	case err != nil:
		bad(p+".address", fmt.Errorf("go-sockaddr template %q: %w", s.Address, err))
		return false
	case strings.TrimSpace(addr) == "":
		bad(p+".address", fmt.Errorf("go-sockaddr template %q resolved to nothing on this host; set an address", s.Address))
		return false
	}
	s.Address = strings.TrimSpace(addr)
	return true
}

// validateChecks checks the service's checks (p is the service's path in
// the file) and makes relative exec paths relative to the config file.
func (s *ServiceConfig) validateChecks(doc *yamlconf.Doc, p string, bad func(string, error)) {
	names := map[string]bool{}
	for j, ch := range s.Checks {
		// Like the templater's paths: a command path with a slash is
		// relative to this file, not to the working directory; a bare
		// name is looked up in PATH.
		if len(ch.Exec) > 0 && strings.Contains(ch.Exec[0], "/") && !filepath.IsAbs(ch.Exec[0]) {
			ch.Exec[0] = filepath.Join(filepath.Dir(doc.File), ch.Exec[0])
		}
		cp := fmt.Sprintf("%s.checks[%d]", p, j)
		for _, err := range ch.validate() {
			bad(cp+"."+err.field, err.err)
		}
		if names[ch.Name] {
			bad(cp+".name", fmt.Errorf("duplicate check name %q", ch.Name))
		}
		names[ch.Name] = true
	}
}

// CheckListen refuses a listen address that is not loopback unless
// listen_non_loopback is set: "" or ":9701" would expose the registrar to
// the network.
func (c Config) CheckListen() error {
	if c.Listen == "" {
		return errors.New(`"" binds every interface; use 127.0.0.1:9701`)
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("%q: want host:port", c.Listen)
	}
	if c.ListenNonLoopback {
		return nil
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	what := "is not a loopback address"
	if host == "" || (net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified()) {
		what = "binds every interface"
	}
	return fmt.Errorf("%q %s: the registrar would be reachable from the network; use 127.0.0.1 or [::1], or set listen_non_loopback: true", c.Listen, what)
}

// validateAPI checks the local API settings, resolves relative paths
// against the config file's directory and reads the token.
func (c *Config) validateAPI(doc *yamlconf.Doc, bad func(string, error)) {
	base := filepath.Dir(doc.File)
	if c.APISocket != "" && !filepath.IsAbs(c.APISocket) {
		c.APISocket = filepath.Join(base, c.APISocket)
	}
	c.socketMode = 0o660
	if c.APISocketMode != "" {
		m, err := strconv.ParseUint(c.APISocketMode, 8, 32)
		switch {
		case err != nil || m > 0o777:
			bad("api_socket_mode", fmt.Errorf("%q: want an octal mode such as \"0660\"", c.APISocketMode))
		case m&0o002 != 0:
			bad("api_socket_mode", fmt.Errorf("%s lets every local user write to the API: use 0660 and api_socket_group", c.APISocketMode))
		default:
			c.socketMode = fs.FileMode(m)
		}
	}
	if c.APITokenFile == "" {
		return
	}
	if !filepath.IsAbs(c.APITokenFile) {
		c.APITokenFile = filepath.Join(base, c.APITokenFile)
	}
	st, err := os.Stat(c.APITokenFile)
	if err != nil {
		bad("api_token_file", err)
		return
	}
	if st.Mode().Perm()&0o004 != 0 {
		bad("api_token_file", fmt.Errorf("%s is readable by every user (mode %04o): chmod o-r it", c.APITokenFile, st.Mode().Perm()))
		return
	}
	b, err := os.ReadFile(c.APITokenFile)
	if err != nil {
		bad("api_token_file", err)
		return
	}
	if c.apiToken = strings.TrimSpace(string(b)); len(c.apiToken) < 16 {
		bad("api_token_file", fmt.Errorf("%s: the token is shorter than 16 characters", c.APITokenFile))
	}
}

// Socket returns the local API socket's options, nil without api_socket.
func (c Config) Socket() *SocketOptions {
	if c.APISocket == "" {
		return nil
	}
	return &SocketOptions{Path: c.APISocket, Mode: c.socketMode, Group: c.APISocketGroup}
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

// configField maps a record field name to the config's spelling.
func configField(f string) string {
	f = strings.ReplaceAll(f, `meta["`, "meta.")
	return strings.ReplaceAll(f, `"]`, "")
}

type fieldErr struct {
	field string
	err   error
}

func (ch CheckConfig) validate() []fieldErr {
	var errs []fieldErr
	bad := func(f string, err error) { errs = append(errs, fieldErr{f, err}) }
	switch {
	case ch.Name == "":
		bad("name", errors.New("missing"))
	case schema.ValidateName(ch.Name) != nil:
		bad("name", schema.ValidateName(ch.Name))
	case strings.HasPrefix(ch.Name, depCheckPrefix):
		bad("name", fmt.Errorf("%q: names starting with %q are reserved for dependencies", ch.Name, depCheckPrefix))
	}
	if _, err := health.ParseKind(ch.Kind); err != nil {
		bad("kind", fmt.Errorf("%q: want shallow or deep", ch.Kind))
	}
	var kinds []string
	if ch.HTTP != "" {
		kinds = append(kinds, "http")
		if !strings.HasPrefix(ch.HTTP, "http://") && !strings.HasPrefix(ch.HTTP, "https://") {
			bad("http", fmt.Errorf("%q: want an http:// or https:// URL", ch.HTTP))
		}
	}
	if ch.TCP != "" {
		kinds = append(kinds, "tcp")
	}
	if ch.Exec != nil {
		kinds = append(kinds, "exec")
		if len(ch.Exec) == 0 || ch.Exec[0] == "" {
			bad("exec", errors.New("empty command"))
		}
	}
	if ch.GRPC != "" {
		kinds = append(kinds, "grpc")
		target, _, _ := strings.Cut(ch.GRPC, "/")
		if _, _, err := net.SplitHostPort(target); err != nil {
			bad("grpc", fmt.Errorf("%q: want host:port or host:port/service", ch.GRPC))
		}
	}
	if ch.TTL != 0 {
		kinds = append(kinds, "ttl")
		if ch.TTL < time.Second {
			bad("ttl", fmt.Errorf("%s is too short: use 1s or more", ch.TTL))
		}
	}
	const oneOf = "set exactly one of http, tcp, exec, grpc, ttl"
	switch len(kinds) {
	case 0:
		bad("name", errors.New("check has no type: "+oneOf))
	case 1:
	default:
		bad(kinds[1], fmt.Errorf("check sets %s: %s", strings.Join(kinds, " and "), oneOf))
	}
	if ch.Interval < 0 {
		bad("interval", errors.New("negative"))
	}
	if ch.Timeout < 0 {
		bad("timeout", errors.New("negative"))
	}
	if ch.Rise < 0 || ch.Fall < 0 {
		bad(map[bool]string{true: "rise", false: "fall"}[ch.Rise < 0], errors.New("negative"))
	}
	return errs
}

// check turns the config into a health.Check.
func (ch CheckConfig) check() health.Check {
	kind, _ := health.ParseKind(ch.Kind)
	var c health.Checker
	switch {
	case ch.HTTP != "":
		c = health.HTTP{URL: ch.HTTP}
	case ch.TCP != "":
		c = health.TCP{Addr: ch.TCP}
	case ch.GRPC != "":
		target, svc, _ := strings.Cut(ch.GRPC, "/")
		c = health.GRPC{Target: target, Service: svc}
	case ch.TTL != 0:
		// A pushed status is re-evaluated at once (Monitor.Trigger) and
		// every second, to notice expiry.
		c = health.NewTTL(ch.TTL)
		return health.Check{Name: ch.Name, Kind: kind, Checker: c, Interval: time.Second, Timeout: time.Second}
	default:
		c = health.Exec{Argv: slices.Clone(ch.Exec)}
	}
	return health.Check{Name: ch.Name, Kind: kind, Checker: c, Interval: ch.Interval,
		Timeout: ch.Timeout, Rise: ch.Rise, Fall: ch.Fall}
}
