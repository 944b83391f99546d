package haproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// RuntimeConfig is a template's `haproxy:` block in templater.yaml: apply
// server changes through HAProxy's runtime API instead of reloading.
type RuntimeConfig struct {
	// Socket is the admin stats socket (`stats socket PATH level admin`).
	// Empty: the one the rendered config declares.
	Socket string `yaml:"socket"`
	// Timeout bounds the runtime API commands of one change; default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Master is the master CLI socket of a master-worker haproxy (-W -S).
	// When the template has no reload command, the templater reloads
	// through it and checks `show proc`: a rejected reload is a failure
	// (the previous file is put back), not a silent no-op.
	Master string `yaml:"master"`
	// Live applies server-only changes through the runtime API; default
	// true. false reloads on every change, keeping the rest of the block:
	// the server-state file, and the check that a reload really started
	// a new worker.
	Live *bool `yaml:"live"`
	// Reconcile is how often the templater compares haproxy's live servers
	// with the file and repairs drift through the runtime API (changes
	// made by hand, a restart that lost the drain state); default 30s,
	// negative: never. Only with live on.
	Reconcile time.Duration `yaml:"reconcile"`
	// LiveFirst applies a server-only change through the runtime API
	// before the new file's check, and undoes it if the check fails;
	// default true (see Runtime for when it is not used).
	LiveFirst *bool `yaml:"live_first"`
}

// Validate checks the block on its own.
func (rc *RuntimeConfig) Validate() error {
	if rc.Timeout < 0 {
		return errors.New("timeout: negative")
	}
	return nil
}

func (rc *RuntimeConfig) live() bool { return rc.Live == nil || *rc.Live }

func (rc *RuntimeConfig) liveFirst() bool {
	return rc.live() && (rc.LiveFirst == nil || *rc.LiveFirst)
}

func (rc *RuntimeConfig) timeout() time.Duration {
	if rc.Timeout <= 0 {
		return 10 * time.Second
	}
	return rc.Timeout
}

// socket returns the admin stats socket to use for cfg: the block's
// socket, else the one cfg declares.
func (rc *RuntimeConfig) socket(cfg *Config) (string, bool) {
	if rc.Socket != "" {
		return rc.Socket, true
	}
	if cfg == nil {
		return "", false
	}
	return cfg.StatsSocket()
}

// Reasons a change was reloaded instead of applied live: the label
// values of templater_haproxy_reloads_total.
const (
	ReasonFirst     = "first_render"
	ReasonParse     = "parse"
	ReasonStructure = "structure"
	ReasonNoSocket  = "no_socket"
	ReasonRefused   = "refused"
	ReasonVerify    = "verify"
	ReasonLiveOff   = "live_off"
	// ReasonEarlyUndone counts changes applied live before their check
	// whose check then failed, so the live servers were put back.
	ReasonEarlyUndone = "early_undone"
)

// ReloadNeeded is Apply's answer when a change cannot go live: Reason is
// one of the Reason constants, Detail says why for a human.
type ReloadNeeded struct{ Reason, Detail string }

func (e *ReloadNeeded) Error() string { return e.Reason + ": " + e.Detail }

// RuntimeOptions configures NewRuntime.
type RuntimeOptions struct {
	Name    string          // the template's name, for logs and metrics
	Logger  *slog.Logger    // nil: discard
	Metrics *RuntimeMetrics // nil: not recorded
}

// Runtime is one template's haproxy as the templater's render pipeline
// sees it: it applies server-only changes through the runtime API, keeps
// server state across reloads, confirms that a reload started a new
// worker, repairs drift, and reloads through the master CLI when the
// template has no reload command. It satisfies render.Runtime; the
// templater wires it in for templates with a `haproxy:` block.
//
// Live-first: a change that touches only servers goes to the runtime API
// as soon as it is rendered, and only then is checked, written, fsynced
// and swapped in. The check of a large config is most of the time between
// a registry change and traffic (0.6–0.9 s for one backend of 10,000
// servers, against a few milliseconds for the runtime API), the write and
// fsync of its megabyte most of the rest, and the runtime API validates
// every server change it takes. If the check or the write then fails, the
// live servers are put back to the file still in place, so the file and
// HAProxy's live state disagree for at most one check. The file stays
// the only truth for reloads and restarts.
//
// Live-first is not used (the change waits for the file) when there is no
// previous file, a change beyond server lines, no admin socket, `live:
// false`, or `live_first: false` for a check that validates more than
// HAProxy itself would (a site policy, say): then a change the check
// refuses must never be live, not even for one check.
type Runtime struct {
	cfg     RuntimeConfig
	name    string
	log     *slog.Logger
	metrics *RuntimeMetrics

	// mu guards last and memo: the most recent config parsed, so that
	// the file a change starts from (the previous change's result) is not
	// parsed again, and the lines of the parse before, so that the next
	// file costs a lookup per unchanged line. A Config is never modified
	// after parse.
	mu   sync.Mutex
	memo parseMemo
	last struct {
		text []byte
		cfg  *Config
		err  error
		// spliceable: the next change may be spliced onto cfg (see
		// splice); known once checked, on the first splice after a parse.
		spliceable, checked bool
	}
}

// NewRuntime returns the runtime of one template.
func NewRuntime(cfg RuntimeConfig, opts RuntimeOptions) *Runtime {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runtime{cfg: cfg, name: opts.Name, metrics: opts.Metrics,
		log: log.With("component", "haproxy", "template", opts.Name)}
}

// parse parses text, reusing the last parse when text is the same bytes.
func (r *Runtime) parse(text []byte) (*Config, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last.text == nil || !bytes.Equal(r.last.text, text) {
		cfg, err := parse(text, &r.memo)
		r.last.text, r.last.cfg, r.last.err = text, cfg, err
		r.last.checked = false
	}
	return r.last.cfg, r.last.err
}

// splice parses next and diffs it against prev through the fast path for
// server lines edited in place, when prev is the last config parsed; ok
// is false when that does not apply.
func (r *Runtime) splice(prev, next []byte) (prevCfg, nextCfg *Config, plan Plan, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last.cfg == nil || !bytes.Equal(r.last.text, prev) {
		return nil, nil, Plan{}, false
	}
	if !r.last.checked {
		r.last.spliceable, r.last.checked = r.last.cfg.spliceable(), true
	}
	if !r.last.spliceable {
		return nil, nil, Plan{}, false
	}
	prevCfg = r.last.cfg
	if nextCfg, plan, ok = splice(prev, prevCfg, next); !ok {
		return nil, nil, Plan{}, false
	}
	r.last.text, r.last.cfg = next, nextCfg // names unchanged: still spliceable
	return prevCfg, nextCfg, plan, true
}

// ReconcileEvery is how often to compare haproxy with the file; 0: never.
func (r *Runtime) ReconcileEvery() time.Duration {
	switch {
	case !r.cfg.live() || r.cfg.Reconcile < 0:
		return 0
	case r.cfg.Reconcile == 0:
		return 30 * time.Second
	}
	return r.cfg.Reconcile
}

// Reloader returns what reloads haproxy through its master CLI and waits
// for the new worker, or nil when the block names no master socket.
func (r *Runtime) Reloader() func(context.Context) error {
	if r.cfg.Master == "" {
		return nil
	}
	return func(ctx context.Context) error {
		if err := NewMaster(r.cfg.Master).Reload(ctx); err != nil {
			return fmt.Errorf("master CLI reload: %w", err)
		}
		return nil
	}
}

// Reconcile compares what haproxy runs with file (the destination's
// bytes) and repairs differences through the runtime API. It returns ""
// when they agree, when haproxy does not answer (not running, restarting)
// or when the file is not one it can compare; else why they still differ.
func (r *Runtime) Reconcile(ctx context.Context, file []byte) string {
	cfg, err := r.parse(file)
	if err != nil {
		return ""
	}
	socket, ok := r.cfg.socket(cfg)
	if !ok {
		return ""
	}
	rctx, cancel := context.WithTimeout(ctx, r.cfg.timeout())
	defer cancel()
	client := NewClient(socket)
	_, mismatch, repairs, err := r.repairDrift(rctx, client, cfg)
	switch {
	case mismatch == nil:
		return ""
	case err != nil:
		return fmt.Sprintf("%v; repairing through the runtime API: %v", mismatch, err)
	}
	r.metrics.drift(r.name, repairs)
	r.saveState(rctx, client, nil, cfg)
	return ""
}

// repairDrift verifies haproxy's live servers against cfg and, when they
// differ, repairs them through the runtime API (Converge), then logs and
// counts the repair. It returns the live state it verified when that
// matched cfg as it was (nil after a repair), the mismatch Verify found
// (nil when none, or when reading the live state failed: err says why),
// the number of changes the repair made, and why the repair failed.
func (r *Runtime) repairDrift(ctx context.Context, client *Client, cfg *Config) (live *LiveState, mismatch error, repairs int, err error) {
	live, err = client.LiveState(ctx)
	if err != nil {
		return nil, nil, 0, err
	}
	mismatch = live.Verify(cfg)
	if mismatch == nil {
		return live, nil, 0, nil
	}
	plan, err := Converge(ctx, client, cfg)
	if err != nil {
		return nil, mismatch, 0, err
	}
	r.metrics.live(r.name, len(plan.Changes))
	r.log.Warn("haproxy's live servers had drifted from the file; repaired through the runtime API",
		"mismatch", mismatch, "repairs", len(plan.Changes))
	return nil, mismatch, len(plan.Changes), nil
}

// saveState writes cfg's server-state files from client's haproxy (see
// SaveState), or from live when the caller has just read it. When that
// fails (no haproxy running, no socket), it removes them instead: a stale
// state file would bring back old addresses and states on the next start.
func (r *Runtime) saveState(ctx context.Context, client *Client, live *LiveState, cfg *Config) {
	files, err := cfg.StateFiles()
	if err != nil {
		r.log.Warn("server-state file not written", "err", err)
		r.metrics.stateSaved(r.name, "failed")
		return
	}
	if len(files) == 0 {
		return
	}
	switch {
	case live != nil:
		_, err = live.SaveState(cfg)
	case client == nil:
		err = errors.New("no admin stats socket to read the running state from")
	default:
		_, err = SaveState(ctx, client, cfg)
	}
	if err == nil {
		r.metrics.stateSaved(r.name, "ok")
		return
	}
	r.metrics.stateSaved(r.name, "failed")
	level, msg := slog.LevelWarn, "could not save HAProxy's server state"
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		// No haproxy running (yet): nothing to keep.
		level, msg = slog.LevelInfo, "no haproxy answers on the stats socket to save server state from"
	}
	if rmErr := RemoveStateFiles(cfg); rmErr != nil {
		r.log.Error(msg+"; removing the stale state files failed too: haproxy may load old state on its next start",
			"err", err, "remove_err", rmErr)
		return
	}
	r.log.Log(ctx, level, msg+"; removed the state files, so haproxy's next start begins with every server fresh", "err", err)
}

// RuntimeMetrics are the HAProxy runtime's metrics, labelled by template
// name. A nil *RuntimeMetrics records nothing.
type RuntimeMetrics struct {
	liveOps   *prometheus.CounterVec
	liveRel   *prometheus.CounterVec
	stateSave *prometheus.CounterVec
	drifts    *prometheus.CounterVec
}

// NewRuntimeMetrics registers the metrics with reg (nil: unregistered).
func NewRuntimeMetrics(reg prometheus.Registerer) *RuntimeMetrics {
	f := promauto.With(reg)
	return &RuntimeMetrics{
		liveOps: f.NewCounterVec(prometheus.CounterOpts{Name: "templater_haproxy_live_changes_total",
			Help: "Server changes applied through HAProxy's runtime API without a reload."}, []string{"template"}),
		liveRel: f.NewCounterVec(prometheus.CounterOpts{Name: "templater_haproxy_reloads_total",
			Help: "Changes to haproxy templates that needed a reload, by reason (structure, refused, verify, first_render, parse, no_socket, live_off; early_undone: applied live before a check that then failed, and put back)."},
			[]string{"template", "reason"}),
		stateSave: f.NewCounterVec(prometheus.CounterOpts{Name: "templater_haproxy_state_saves_total",
			Help: "Server-state files written for HAProxy to load on its next start, by result (ok, failed: the files were removed instead)."},
			[]string{"template", "result"}),
		drifts: f.NewCounterVec(prometheus.CounterOpts{Name: "templater_haproxy_drift_repairs_total",
			Help: "Times the periodic reconcile found haproxy's live servers different from the file and repaired them live."},
			[]string{"template"}),
	}
}

func (m *RuntimeMetrics) live(name string, changes int) {
	if m != nil {
		m.liveOps.WithLabelValues(name).Add(float64(changes))
	}
}

func (m *RuntimeMetrics) liveReload(name, reason string) {
	if m != nil {
		m.liveRel.WithLabelValues(name, reason).Inc()
	}
}

func (m *RuntimeMetrics) stateSaved(name, result string) {
	if m != nil {
		m.stateSave.WithLabelValues(name, result).Inc()
	}
}

func (m *RuntimeMetrics) drift(name string, changes int) {
	if m != nil && changes > 0 {
		m.drifts.WithLabelValues(name).Inc()
	}
}
