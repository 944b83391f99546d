package render

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the templater's render metrics, labelled by template name
// (a bounded set: the configured templates).
type Metrics struct {
	renders   *prometheus.CounterVec
	unchanged *prometheus.CounterVec
	failures  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	lastOK    *prometheus.GaugeVec
}

// NewMetrics registers the render metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		renders: f.NewCounterVec(prometheus.CounterOpts{Name: "templater_renders_total",
			Help: "Renders that changed the destination file."}, []string{"template"}),
		unchanged: f.NewCounterVec(prometheus.CounterOpts{Name: "templater_renders_unchanged_total",
			Help: "Renders skipped because the bytes equal the destination file."}, []string{"template"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{Name: "templater_render_failures_total",
			Help: "Failed applies by stage (parse, execute, write, check, reload); the old file stays."},
			[]string{"template", "stage"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{Name: "templater_render_duration_seconds",
			Help:    "Time to render, check, write and reload one template.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"template"}),
		lastOK: f.NewGaugeVec(prometheus.GaugeOpts{Name: "templater_last_success_timestamp_seconds",
			Help: "When the template was last applied successfully (changed or not)."}, []string{"template"}),
	}
}

func (m *Metrics) observe(name string, t0 time.Time, changed bool, err error) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(name).Observe(time.Since(t0).Seconds())
	var e *Error
	switch {
	case errors.As(err, &e):
		m.failures.WithLabelValues(name, string(e.Stage)).Inc()
		return
	case err != nil:
		m.failures.WithLabelValues(name, "other").Inc()
		return
	case changed:
		m.renders.WithLabelValues(name).Inc()
	default:
		m.unchanged.WithLabelValues(name).Inc()
	}
	m.lastOK.WithLabelValues(name).SetToCurrentTime()
}
