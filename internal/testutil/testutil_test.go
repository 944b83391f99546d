package testutil

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and
// stops the goroutine, like the real one.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	panic(r)
}

func TestWaitForHolds(t *testing.T) {
	var n atomic.Int32
	WaitFor(t, 5*time.Second, "the third poll", func() bool { return n.Add(1) >= 3 })
	if got := n.Load(); got != 3 {
		t.Errorf("cond called %d times, want 3", got)
	}
}

func TestWaitForTimesOut(t *testing.T) {
	r := &fatalRecorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != r {
				t.Fatalf("WaitFor did not fail the test (recovered %v)", p)
			}
		}()
		WaitFor(r, 30*time.Millisecond, "something that never happens", func() bool { return false })
	}()
	if !strings.Contains(r.msg, "something that never happens") {
		t.Errorf("failure message %q does not name what was awaited", r.msg)
	}
}
