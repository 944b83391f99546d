package main

import (
	"github.com/prometheus/client_golang/prometheus"
)

// lagCollector reports templater_revision_lag: per template, how many etcd
// revisions its file trails the newest revision etcd reported. It stays 0
// while templates keep up, and grows while one is held or failing (or the
// registry is stale). Revisions outside the prefix count too, so compare
// it over time rather than against an absolute bound.
type lagCollector struct {
	desc   *prometheus.Desc
	status func() Status
}

func newLagCollector(status func() Status) *lagCollector {
	return &lagCollector{
		desc: prometheus.NewDesc("templater_revision_lag",
			"etcd revisions between the newest one etcd reported and the one the template's file reflects.",
			[]string{"template"}, nil),
		status: status,
	}
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	for _, t := range st.Templates {
		lag := st.EtcdRevision - t.Revision
		if t.Revision == 0 || lag < 0 {
			lag = 0
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(lag), t.Name)
	}
}
