package propagation

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/etcdtest"
)

// TestFloorSample: each Sample returns after its own put's event, never
// an earlier one, and Close leaves no goroutine behind (TestMain).
func TestFloorSample(t *testing.T) {
	e := etcdtest.Start(t)
	f, err := NewFloor(t.Context(), e.Endpoints)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	put := e.Client(t)
	for i := range 5 {
		d, err := f.Sample(t.Context(), put, []byte("v"))
		if err != nil {
			t.Fatalf("Sample %d: %v", i, err)
		}
		if d <= 0 {
			t.Errorf("Sample %d = %s, want > 0", i, d)
		}
		t.Logf("put → event %s", d)
	}
	if n := len(f.events); n != 0 {
		t.Errorf("%d events left over after the samples, want 0 (one event per put)", n)
	}
}

// TestWaitFile: WaitFile returns once a rename onto dest brings content
// ok accepts, and times out when none does.
func TestWaitFile(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "out.cfg")
	ev, stop, err := WatchDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	write := func(content string) {
		tmp := filepath.Join(dir, ".staged")
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, dest); err != nil {
			t.Fatal(err)
		}
	}
	want := func(b []byte) bool { return bytes.Contains(b, []byte("new")) }
	write("old")
	if err := WaitFile(ev, dest, 200*time.Millisecond, want); err == nil {
		t.Fatal("WaitFile returned nil for content without the change, want a timeout")
	}
	Drain(ev)
	write("new")
	if err := WaitFile(ev, dest, 10*time.Second, want); err != nil {
		t.Fatalf("WaitFile after the change: %v", err)
	}
}

func TestPct(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	s := []time.Duration{ms(5), ms(1), ms(4), ms(2), ms(3)}
	for _, tc := range []struct {
		p    int
		want time.Duration
	}{{50, ms(3)}, {99, ms(5)}, {100, ms(5)}, {1, ms(1)}} {
		if got := Pct(s, tc.p); got != tc.want {
			t.Errorf("Pct(1..5 ms, %d) = %s, want %s", tc.p, got, tc.want)
		}
	}
	if got := Pct(nil, 50); got != 0 {
		t.Errorf("Pct(nil, 50) = %s, want 0", got)
	}
}
