// Package promtext reads samples from a Prometheus text-format /metrics
// endpoint, for the tests and benchmarks that watch a daemon's counters.
package promtext

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Scrape GETs http://addr/metrics and returns the samples whose line
// starts with prefix ("" for all), keyed by name and labels as written,
// for example `templater_reloads_total{result="ok",template="haproxy"}`.
// A sample whose value does not parse is an error.
func Scrape(addr, prefix string) (map[string]float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET http://%s/metrics: %s", addr, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") || !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("metric line %q: no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metric line %q: %w", line, err)
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// Sum adds up samples.
func Sum(samples map[string]float64) float64 {
	sum := 0.0
	for _, v := range samples {
		sum += v
	}
	return sum
}
