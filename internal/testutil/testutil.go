// Package testutil holds small helpers shared by the tests of several
// packages. It is imported only from _test.go files.
package testutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rewire/rewire/registry/schema"
)

// pollInterval is how often WaitFor checks its condition.
const pollInterval = 10 * time.Millisecond

// WaitFor polls cond until it holds, and fails the test when timeout
// passes first (or the test's context ends) naming what it waited for.
// Inside a testing/synctest bubble it waits on the bubble's clock.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			t.Fatalf("test ended while waiting for %s", what)
		}
	}
}

// Snapshot puts every key of kv into a fresh schema.Index, in key order,
// and returns the snapshot at rev and the keys Put rejected as invalid.
// Any other Put error fails the test.
func Snapshot(t testing.TB, keys schema.Keys, kv map[string]string, rev int64) (*schema.Snapshot, []string) {
	t.Helper()
	x := schema.NewIndex(keys)
	var rejected []string
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		err := x.Put(k, []byte(kv[k]))
		var ie *schema.InvalidError
		switch {
		case errors.As(err, &ie):
			rejected = append(rejected, k)
		case err != nil:
			t.Fatalf("Put(%q) = %v, want nil or *schema.InvalidError", k, err)
		}
	}
	return x.Snapshot(rev), rejected
}

// ReadKV reads a JSON object of etcd key → value from path.
func ReadKV(t testing.TB, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kv map[string]string
	if err := json.Unmarshal(b, &kv); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return kv
}

// Long skips a test that sits through a real outage of tens of seconds
// (what), unless it is asked for: `go test -long` in a package whose tests
// import testutil, REWIRE_LONG=1, or CI set (CI always runs them). A plain
// `make test` lists the skip in its summary.
func Long(t testing.TB, what string) {
	t.Helper()
	if *long || os.Getenv("REWIRE_LONG") != "" || os.Getenv("CI") != "" {
		return
	}
	t.Skipf("long: %s (run with -long, REWIRE_LONG=1 or CI set)", what)
}

var long = flag.Bool("long", false, "run the tests that sit through real outages of tens of seconds")

// Slow reports a duration over its expected bound: an error with
// -strict-timing or REWIRE_STRICT_TIMING=1, else a log line. Shared and
// loaded machines make wall-clock bounds flaky; tests assert order and
// outcome, and speed lives in benchmarks.
func Slow(t testing.TB, what string, d, bound time.Duration) {
	t.Helper()
	if d <= bound {
		t.Logf("%s: %v (bound %v)", what, d, bound)
		return
	}
	if *strictTiming || os.Getenv("REWIRE_STRICT_TIMING") != "" {
		t.Errorf("%s took %v, want at most %v", what, d, bound)
		return
	}
	t.Logf("%s took %v, over its bound %v (an error with -strict-timing)", what, d, bound)
}

var strictTiming = flag.Bool("strict-timing", false, "fail tests whose durations pass their bounds (else they are logged)")

// CountProcs counts the live processes whose command line is exactly
// cmdline (arguments separated and ended by NUL, as in /proc/PID/cmdline);
// zombies have an empty one, so they do not count. Linux only: it reads
// /proc. Tests of "nothing left behind" count a marker command with it.
func CountProcs(t testing.TB, cmdline string) int {
	t.Helper()
	files, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && string(b) == cmdline {
			n++
		}
	}
	return n
}

// Buffer is a bytes.Buffer safe for a writer (a process's output, a
// logger) and a reading test at once. The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
