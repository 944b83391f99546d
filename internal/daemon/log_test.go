package daemon

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLoggerWritesDurationsAsStrings(t *testing.T) {
	var buf strings.Builder
	log, err := Logger(&buf, "info")
	if err != nil {
		t.Fatal(err)
	}
	log.Warn("etcd write failed; retrying", "retry_in", 1500*time.Millisecond, slog.Group("g", "wait", time.Second))
	if out := buf.String(); !strings.Contains(out, `"retry_in":"1.5s"`) || !strings.Contains(out, `"wait":"1s"`) {
		t.Errorf("log line %q: want durations as strings", out)
	}
}
