// Package proc runs the short commands rewire runs for others (exec
// health checks, template checks, reloads) so that none of them can hang
// or flood the daemon: the command gets a process group of its own, the
// whole group is killed when the context ends, and its combined output is
// capped.
package proc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Output keeps the first bytes written to it, up to its limit, and
// silently discards the rest, so a chatty command is never blocked or
// killed by a closed pipe.
type Output struct {
	buf []byte
	max int
}

// Write keeps what fits and reports everything written.
func (o *Output) Write(p []byte) (int, error) {
	if n := o.max - len(o.buf); n > 0 {
		o.buf = append(o.buf, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

// String returns what was kept.
func (o *Output) String() string { return string(o.buf) }

// Command returns argv as a command bound to ctx: stdout and stderr go to
// the returned Output (one writer: one pipe, no concurrent writes), kept
// up to maxOutput bytes; it runs in a new process group, killed whole
// (SIGKILL) when ctx ends; and Wait returns at most waitDelay after that,
// even if a grandchild escaped the group and still holds the pipe.
func Command(ctx context.Context, argv []string, maxOutput int, waitDelay time.Duration) (*exec.Cmd, *Output) {
	out := &Output{max: maxOutput}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group ID is the leader's PID; kill everything in it.
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	cmd.WaitDelay = waitDelay
	return cmd, out
}
