package render

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the templater's render metrics, labelled by template name
// (a bounded set: the configured templates). A nil *Metrics records
// nothing.
type Metrics struct {
	renders   *prometheus.CounterVec
	unchanged *prometheus.CounterVec
	skipped   *prometheus.CounterVec
	failures  *prometheus.CounterVec
	guards    *prometheus.CounterVec
	reloads   *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	lastOK    *prometheus.GaugeVec
	revision  *prometheus.GaugeVec
}

// NewMetrics registers the render metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		renders: f.NewCounterVec(prometheus.CounterOpts{Name: "templater_renders_total",
			Help: "Renders that changed the destination file."}, []string{"template"}),
		unchanged: f.NewCounterVec(prometheus.CounterOpts{Name: "templater_renders_unchanged_total",
			Help: "Renders skipped because the bytes equal the destination file."}, []string{"template"}),
		skipped: f.NewCounterVec(prometheus.CounterOpts{Name: "templater_renders_skipped_total",
			Help: "Registry changes that did not touch anything the template reads (no render at all)."}, []string{"template"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{Name: "templater_render_failures_total",
			Help: "Failed applies by stage (parse, execute, write, check, reload, verify); the old file stays."},
			[]string{"template", "stage"}),
		guards: f.NewCounterVec(prometheus.CounterOpts{Name: "templater_guard_trips_total",
			Help: "Changes held by a guard, and panic-threshold fallbacks, by guard."}, []string{"template", "guard"}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{Name: "templater_reloads_total",
			Help: "Reload commands run, by result (ok, failed, restored; repeated: a reload that started no new haproxy worker, run again)."}, []string{"template", "result"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{Name: "templater_render_duration_seconds",
			Help:    "Time to render, check, write, reload and verify one template.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"template"}),
		lastOK: f.NewGaugeVec(prometheus.GaugeOpts{Name: "templater_last_success_timestamp_seconds",
			Help: "When the template was last applied successfully (changed or not)."}, []string{"template"}),
		revision: f.NewGaugeVec(prometheus.GaugeOpts{Name: "templater_template_revision",
			Help: "etcd revision the destination file reflects."}, []string{"template"}),
	}
}

func (m *Metrics) observe(name string, t0 time.Time, changed bool, rev int64, err error) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(name).Observe(time.Since(t0).Seconds())
	if err != nil {
		var e *Error
		stage := "other"
		if errors.As(err, &e) {
			stage = string(e.Stage)
		}
		m.failures.WithLabelValues(name, stage).Inc()
		return
	}
	if changed {
		m.renders.WithLabelValues(name).Inc()
	} else {
		m.unchanged.WithLabelValues(name).Inc()
	}
	m.lastOK.WithLabelValues(name).SetToCurrentTime()
	m.revision.WithLabelValues(name).Set(float64(rev))
}

func (m *Metrics) skip(name string, rev int64) {
	if m != nil {
		m.skipped.WithLabelValues(name).Inc()
		m.lastOK.WithLabelValues(name).SetToCurrentTime()
		m.revision.WithLabelValues(name).Set(float64(rev))
	}
}

func (m *Metrics) fail(name string, stage Stage) {
	if m != nil {
		m.failures.WithLabelValues(name, string(stage)).Inc()
	}
}

func (m *Metrics) guard(name, guard string) {
	if m != nil {
		m.guards.WithLabelValues(name, guard).Inc()
	}
}

func (m *Metrics) reload(name, result string) {
	if m != nil {
		m.reloads.WithLabelValues(name, result).Inc()
	}
}
