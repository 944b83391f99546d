package proc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/testutil"
)

// TestOutputWrite checks that writes beyond the limit are accepted (so
// the command is never blocked) and dropped.
func TestOutputWrite(t *testing.T) {
	o := &Output{max: 4096}
	chunk := make([]byte, 1000)
	for range 10 {
		if n, err := o.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v; want %d, nil", len(chunk), n, err, len(chunk))
		}
	}
	if len(o.String()) != 4096 {
		t.Errorf("after 10000 bytes, kept %d bytes, want 4096", len(o.String()))
	}
}

func TestOutputCapped(t *testing.T) {
	cmd, out := Command(t.Context(), []string{"sh", "-c", "printf 0123456789; printf err >&2"}, 4, time.Second)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "0123" {
		t.Errorf("output = %q, want the first 4 bytes %q", got, "0123")
	}
}

// TestGroupKilled: when the context ends, the command's children die with
// it, and Run returns promptly although a grandchild held the pipe.
func TestGroupKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	cmd, out := Command(ctx, []string{"sh", "-c", "sleep 30 & echo started; wait"}, 1<<10, time.Second)
	start := time.Now()
	err := cmd.Run()
	if err == nil {
		t.Fatal("Run of a command killed by its context returned nil")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run returned after %s, want soon after the 200ms deadline", d)
	}
	if !strings.Contains(out.String(), "started") {
		t.Errorf("output = %q, want the command's own output kept", out.String())
	}
}

// TestRunLeavesNothing: a command that forks a child into the background
// and exits leaves no process behind under Run, and Run returns as soon as
// the command exits (not after the wait delay the orphan's pipe would
// cost).
func TestRunLeavesNothing(t *testing.T) {
	const marker = "987.6543"
	for i := range 3 {
		cmd, out := Command(t.Context(), []string{"sh", "-c", "sleep " + marker + " & echo ok"}, 1<<10, 10*time.Second)
		start := time.Now()
		if err := Run(cmd); err != nil {
			t.Fatalf("Run: %v (output %q)", err, out)
		}
		if got := out.String(); got != "ok\n" {
			t.Errorf("output = %q, want %q", got, "ok\n")
		}
		t.Logf("run %d took %s", i, time.Since(start).Round(time.Millisecond))
	}
	if n := testutil.CountProcs(t, "sleep\x00"+marker+"\x00"); n != 0 {
		t.Errorf("%d background children left after 3 runs, want 0", n)
	}
}
