package daemon

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/etcdtest"
	"github.com/rewire/rewire/internal/testutil"
	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/registry/schema"
)

// lines returns what b holds, a line each.
func lines(b *testutil.Buffer) []string {
	return strings.Split(strings.TrimSpace(b.String()), "\n")
}

// TestHugeFieldsLogLine writes records whose meta key, health status and
// check name are 1 MB each to etcd: a Watcher logging through the daemons'
// Logger skips each with one line, and every line is under 1 KB.
func TestHugeFieldsLogLine(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	keys := schema.Keys{Prefix: "/huge"}
	big := strings.Repeat("x", 1<<20)
	records := map[string]map[string]any{
		"meta-key":   {"meta": map[string]string{big: "v"}},
		"status":     {"health": map[string]any{"shallow": big}},
		"check-name": {"health": map[string]any{"shallow": "passing", "checks": []map[string]any{{"name": big, "status": "passing"}}}},
	}
	for id, fields := range records {
		m := map[string]any{"v": 1, "service": "web", "id": id, "address": "10.0.0.5", "port": 8080,
			"health": map[string]any{"shallow": "passing"}}
		for k, v := range fields {
			m[k] = v
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err = cli.Put(ctx, keys.Instance("web", id), string(b))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	var out testutil.Buffer
	log, err := Logger(&out, "info")
	if err != nil {
		t.Fatal(err)
	}
	w := registry.NewWatcher(registry.WatcherOptions{Client: cli, Keys: keys, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	testutil.WaitFor(t, 10*time.Second, "three invalid records logged", func() bool {
		return strings.Count(strings.Join(lines(&out), "\n"), "skipping invalid registry entry") == 3
	})
	for _, line := range lines(&out) {
		if len(line) >= 1024 {
			t.Errorf("log line of %d bytes, want < 1024: %.300s…", len(line), line)
		}
		if strings.Contains(line, "skipping invalid") {
			t.Logf("%d-byte line: %s", len(line), line)
		}
	}
}
