// Package lab runs the hitless scenario (HitlessMix: health flips, drains,
// additions, removals and weight changes) against real processes: an etcd (the caller's), the templater binary rendering
// examples/haproxy/haproxy.cfg.tmpl, a master-worker haproxy reloaded by
// the templater with SIGUSR2, real HTTP backends on 127.0.0.1, and a
// keep-alive load generator. internal/e2e's TestHitless* and the
// bench/hitless program both use it; everything is on loopback, and every
// wait and request loop is bounded.
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rewire/rewire/haproxy"
	"github.com/rewire/rewire/registry/schema"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Prefix is the registry prefix the lab writes under.
const Prefix = "/rewire"

// BackendIdleTimeout is how long the lab's HTTP backends keep an idle
// keep-alive connection; zero: forever (Go's default).
var BackendIdleTimeout = time.Duration(0)

// Service is the service of a one-service lab (Options.Services 0 or 1),
// the one the hitless scenario changes.
const Service = "web"

var keys = schema.Keys{Prefix: Prefix}

// Options configures Start.
type Options struct {
	Endpoints []string // etcd client endpoints
	Templater string   // templater binary
	HAProxy   string   // haproxy binary
	Template  string   // path of examples/haproxy/haproxy.cfg.tmpl
	// Dir holds the rendered config, sockets and logs. Keep it short: a
	// unix socket path must fit in 107 bytes.
	Dir string
	// Live gives the template `haproxy: {}` (server changes through the
	// runtime API); false gives it `haproxy: {live: false}`: every change
	// reloads.
	Live bool
	// CheckFirst gives a live template `live_first: false`: a server
	// change waits for its check before it goes to the runtime API (the
	// order before live-first), to measure what live-first saves.
	CheckFirst bool
	// Instances registered before haproxy starts (web-1...).
	Instances int
	// Services spreads the instances over that many services, web00,
	// web01, ... (instance web-N in service N-1 modulo Services); 0 or 1:
	// all in one service, Service.
	Services int
	// NoCheck leaves the template without a check command (by default
	// every render is checked with `haproxy -c`); CheckFirst then does
	// not apply.
	NoCheck bool
	// Keys are free-form keys (relative to the registry prefix, e.g.
	// haproxy/cache_servers) put before the templater starts.
	Keys map[string]string
	// Backends starts a real HTTP server for every instance; without,
	// instances point at unused ports (no traffic may be sent then).
	Backends bool
}

// Instance is the lab's model of one registry record.
type Instance struct {
	ID       string
	Service  string
	Port     int
	Weight   int
	Critical bool
	Draining bool
}

// record is the v1 JSON of an instance.
type record struct {
	V        int    `json:"v"`
	Service  string `json:"service"`
	ID       string `json:"id"`
	Address  string `json:"address"`
	Port     int    `json:"port"`
	Weight   int    `json:"weight"`
	Health   health `json:"health"`
	Draining bool   `json:"draining"`
}

type health struct {
	Shallow string `json:"shallow"`
}

// Lab is a running scenario.
type Lab struct {
	opts     Options
	Dest     string // the rendered haproxy.cfg
	Bind     string // haproxy's frontend address
	Socket   string // haproxy's admin stats socket
	Metrics  string // the templater's /metrics address
	Client   *haproxy.Client
	Etcd     *clientv3.Client
	Model    map[string]*Instance
	next     int // number of the next instance id
	backends []*httptest.Server
	procs    []*exec.Cmd
	done     []chan struct{}
}

// Start registers the initial instances, starts the templater, waits for
// its first render, then starts haproxy on it and waits until haproxy's
// live state equals the file.
func Start(ctx context.Context, o Options) (l *Lab, err error) {
	l = &Lab{opts: o, Dest: filepath.Join(o.Dir, "haproxy.cfg"), Socket: filepath.Join(o.Dir, "admin.sock"),
		Model: map[string]*Instance{}}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	l.Client = haproxy.NewClient(l.Socket)
	l.Etcd, err = clientv3.New(clientv3.Config{Endpoints: o.Endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		return l, err
	}
	if l.Bind, err = freeAddr(); err != nil {
		return l, err
	}
	if l.Metrics, err = freeAddr(); err != nil {
		return l, err
	}
	if err := l.PutKey(ctx, "haproxy/bind", l.Bind); err != nil {
		return l, err
	}
	if err := l.PutKey(ctx, "haproxy/stats_socket", l.Socket); err != nil {
		return l, err
	}
	if err := l.PutKey(ctx, "haproxy/state_file", filepath.Join(o.Dir, "server-state")); err != nil {
		return l, err
	}
	for k, v := range o.Keys {
		if err := l.PutKey(ctx, k, v); err != nil {
			return l, err
		}
	}
	if err := l.load(ctx, o.Instances); err != nil {
		return l, err
	}
	pid := filepath.Join(o.Dir, "haproxy.pid")
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "etcd: {endpoints: [%q], prefix: %s}\n", strings.Join(o.Endpoints, `", "`), Prefix)
	fmt.Fprintf(&cfg, "listen: %s\ntemplates:\n  - name: haproxy\n", l.Metrics)
	fmt.Fprintf(&cfg, "    source: %s\n    destination: %s\n", o.Template, l.Dest)
	if !o.NoCheck {
		fmt.Fprintf(&cfg, "    check: %q\n", o.HAProxy+" -c -q -f {{ .Staged }}")
	}
	// The lab removes instances on purpose, many within a minute: the
	// self-preservation guards would hold those removals, by design.
	cfg.WriteString("    guards: {max_removed_fraction: 0, mass_expiry_fraction: 0}\n")
	// Before haproxy runs there is nothing to reload.
	fmt.Fprintf(&cfg, "    reload: %q\n", fmt.Sprintf("if [ -s %s ]; then kill -USR2 $(cat %s); fi", pid, pid))
	if o.Live && o.CheckFirst {
		cfg.WriteString("    haproxy: {live_first: false}\n")
	} else if o.Live {
		cfg.WriteString("    haproxy: {}\n")
	} else {
		// The runtime API off: every change reloads (and the templater
		// checks that a new worker took over).
		cfg.WriteString("    haproxy: {live: false}\n")
	}
	cfgPath := filepath.Join(o.Dir, "templater.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		return l, err
	}
	if err := l.run("templater", o.Templater, "run", "-c", cfgPath); err != nil {
		return l, err
	}
	err = poll(ctx, 30*time.Second, "the templater's first render", func() error {
		cfg, err := l.File()
		if err != nil {
			return err
		}
		n := 0
		for _, svc := range l.Services() {
			if s := cfg.Section("backend", svc); s != nil {
				n += len(s.Servers)
			}
		}
		if n != len(l.Model) {
			return fmt.Errorf("%d servers rendered, want %d", n, len(l.Model))
		}
		return nil
	})
	if err != nil {
		return l, fmt.Errorf("%w\n%s", err, l.Log("templater"))
	}
	for attempt := 1; ; attempt++ {
		if err := l.run("haproxy", o.HAProxy, "-W", "-db", "-f", l.Dest, "-p", pid); err != nil {
			return l, err
		}
		exited := l.done[len(l.done)-1]
		deadline := time.Now().Add(30 * time.Second)
		for err = l.VerifyFile(); err != nil; err = l.VerifyFile() {
			select {
			case <-ctx.Done():
				return l, ctx.Err()
			case <-exited:
				if attempt < 5 && strings.Contains(l.Log("haproxy"), "Address already in use") {
					err = errPortTaken
				} else {
					return l, fmt.Errorf("haproxy exited:\n%s", l.Log("haproxy"))
				}
			case <-time.After(20 * time.Millisecond):
			}
			if errors.Is(err, errPortTaken) || time.Now().After(deadline) {
				break
			}
		}
		if err == nil {
			return l, nil
		}
		if err != errPortTaken {
			return l, fmt.Errorf("waiting for haproxy serving the rendered file: %w\n%s", err, l.Log("haproxy"))
		}
		// Another process took the port between freeAddr and haproxy's
		// bind (tests run in parallel): pick another and start again.
		l.procs, l.done = l.procs[:len(l.procs)-1], l.done[:len(l.done)-1]
		os.Remove(pid) // nothing runs to reload: the re-render must not try
		if l.Bind, err = freeAddr(); err != nil {
			return l, err
		}
		if err := l.PutKey(ctx, "haproxy/bind", l.Bind); err != nil {
			return l, err
		}
		err = poll(ctx, 30*time.Second, "the templater to render the new bind address", func() error {
			b, err := os.ReadFile(l.Dest)
			if err != nil || !strings.Contains(string(b), "bind "+l.Bind+"\n") {
				return fmt.Errorf("bind %s not rendered yet", l.Bind)
			}
			return nil
		})
		if err != nil {
			return l, err
		}
	}
}

var errPortTaken = errors.New("haproxy's port was taken before it could bind")

// run starts a daemon whose output goes to Dir/name.log.
func (l *Lab) run(name, bin string, args ...string) error {
	f, err := os.Create(filepath.Join(l.opts.Dir, name+".log"))
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = l.opts.Dir, f, f
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	l.procs, l.done = append(l.procs, cmd), append(l.done, done)
	return nil
}

// Log returns what the daemon name (templater, haproxy) has written.
func (l *Lab) Log(name string) string {
	b, _ := os.ReadFile(filepath.Join(l.opts.Dir, name+".log"))
	return string(b)
}

// Close stops the daemons (haproxy first, SIGTERM then SIGKILL after a
// deadline) and the backends.
func (l *Lab) Close() {
	for i := len(l.procs) - 1; i >= 0; i-- {
		l.procs[i].Process.Signal(syscall.SIGTERM)
		select {
		case <-l.done[i]:
		case <-time.After(10 * time.Second):
			l.procs[i].Process.Kill()
			<-l.done[i]
		}
	}
	for _, b := range l.backends {
		b.Close()
	}
	if l.Etcd != nil {
		l.Etcd.Close()
	}
}

// PutKey writes a key relative to the registry prefix.
func (l *Lab) PutKey(ctx context.Context, rel, val string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := l.Etcd.Put(ctx, keys.Root()+rel, val)
	return err
}

// record is in's registry record.
func (in *Instance) record() ([]byte, error) {
	st := "passing"
	if in.Critical {
		st = "critical"
	}
	return json.Marshal(record{V: 1, Service: in.Service, ID: in.ID, Address: "127.0.0.1", Port: in.Port,
		Weight: in.Weight, Health: health{Shallow: st}, Draining: in.Draining})
}

// put writes in's record.
func (l *Lab) put(ctx context.Context, in *Instance) error {
	b, err := in.record()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = l.Etcd.Put(ctx, keys.Instance(in.Service, in.ID), string(b))
	return err
}

// Add registers a new passing instance (with its own backend when
// Options.Backends) and returns it.
func (l *Lab) Add(ctx context.Context) (*Instance, error) {
	in := l.newInstance()
	if err := l.put(ctx, in); err != nil {
		return nil, err
	}
	l.Model[in.ID] = in
	return in, nil
}

// newInstance makes the next instance (and its backend when
// Options.Backends), without registering it.
func (l *Lab) newInstance() *Instance {
	l.next++
	in := &Instance{ID: "web-" + strconv.Itoa(l.next), Service: l.serviceOf(l.next),
		Weight: schema.DefaultWeight, Port: 20000 + l.next}
	if l.opts.Backends {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte("ok\n"))
		}))
		// By default the backends never close haproxy's idle connections
		// (the hardest case: HAProxy 2.6 refuses `del server` while the
		// server has idle connections in its pool); the example template's
		// `pool-purge-delay 200ms` is what lets removals go live anyway.
		srv.Config.IdleTimeout = BackendIdleTimeout
		srv.Start()
		l.backends = append(l.backends, srv)
		_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
		in.Port, _ = strconv.Atoi(port)
	}
	return in
}

// Remove deletes an instance's record. Its backend keeps running: an old
// haproxy worker may still finish requests on it.
func (l *Lab) Remove(ctx context.Context, id string) error {
	in := l.Model[id]
	if in == nil {
		return fmt.Errorf("no instance %s", id)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := l.Etcd.Delete(ctx, keys.Instance(in.Service, id)); err != nil {
		return err
	}
	delete(l.Model, id)
	return nil
}

// Update applies f to the instance and writes its record.
func (l *Lab) Update(ctx context.Context, id string, f func(*Instance)) error {
	in := l.Model[id]
	if in == nil {
		return fmt.Errorf("no instance %s", id)
	}
	f(in)
	return l.put(ctx, in)
}

// File parses the rendered config.
func (l *Lab) File() (*haproxy.Config, error) {
	b, err := os.ReadFile(l.Dest)
	if err != nil {
		return nil, err
	}
	return haproxy.Parse(b)
}

// VerifyFile compares haproxy's live state with the rendered file.
func (l *Lab) VerifyFile() error {
	cfg, err := l.File()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return haproxy.Verify(ctx, l.Client, cfg)
}

// Reflected reports nil when haproxy's live servers of the services are
// exactly the model: same names, services, ports, weights (0 while
// draining) and maintenance (critical).
func (l *Lab) Reflected() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	backend := ""
	if len(l.Services()) == 1 {
		backend = Service
	}
	all, err := l.Client.ShowServersState(ctx, backend)
	if err != nil {
		return err
	}
	services := l.Services()
	var states []haproxy.ServerState
	for _, st := range all {
		if slices.Contains(services, st.Backend) {
			states = append(states, st)
		}
	}
	if len(states) != len(l.Model) {
		return fmt.Errorf("%d servers live, want %d", len(states), len(l.Model))
	}
	for _, st := range states {
		in := l.Model[st.Name]
		if in == nil {
			return fmt.Errorf("%s live, not in the registry", st.Name)
		}
		w := in.Weight
		if in.Draining {
			w = 0
		}
		if st.Backend != in.Service || st.Port != in.Port || st.Weight != w || st.AdminMaint() != in.Critical {
			return fmt.Errorf("%s live in %s port %d weight %d maint %t, want %s %d %d %t",
				st.Name, st.Backend, st.Port, st.Weight, st.AdminMaint(), in.Service, in.Port, w, in.Critical)
		}
	}
	return nil
}

// WaitReflected polls Reflected until it holds, ctx ends or timeout
// passes, and returns how long it took.
func (l *Lab) WaitReflected(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	err := poll(ctx, timeout, "haproxy's live state to match the registry", l.Reflected)
	return time.Since(t0), err
}
