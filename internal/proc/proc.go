// Package proc runs the short commands rewire runs for others (exec
// health checks, template checks, reloads) so that none of them can hang
// or flood the daemon: the command gets a process group of its own, the
// whole group is killed when the context ends, and its combined output is
// capped. Run also kills what is left of the group when the command
// exits, for commands that must leave nothing behind (health checks):
//
//	cmd, out := proc.Command(ctx, argv, 4096, time.Second)
//	err := proc.Run(cmd) // `sleep 1000 &` in a check dies with the check
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

// Run starts cmd (from Command) and waits for it like cmd.Run, but once
// the command has exited, however it ended, it kills every process left
// in its process group — children a check forked into the background —
// before reaping the command itself. (Until then the command's PID, which
// is the group's ID, cannot be reused, so the kill cannot hit another
// group.) The killed processes are orphans and are reaped by init.
func Run(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	if !waitExited(pid) {
		err := cmd.Wait()
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		return err
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL) // ESRCH: nothing was left
	return cmd.Wait()
}
