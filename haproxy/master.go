package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// ErrReloadFailed says haproxy rejected a reload: the previous workers
// keep serving the previous configuration.
var ErrReloadFailed = errors.New("haproxy: reload failed; the previous workers keep serving")

// Master is a client of HAProxy's master CLI, the socket given to `-S` in
// master-worker mode (`haproxy -W -S /run/haproxy-master.sock ...`). It is
// safe for concurrent use.
type Master struct {
	sock string
}

// NewMaster returns a client for the master CLI socket at path.
func NewMaster(path string) *Master { return &Master{sock: path} }

// Command sends one command and returns the whole answer.
func (m *Master) Command(ctx context.Context, cmd string) (string, error) {
	if err := checkCommand(cmd); err != nil {
		return "", err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", m.sock)
	if err != nil {
		return "", fmt.Errorf("haproxy: master CLI %s: %w", m.sock, err)
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultTimeout)
	}
	c.SetDeadline(deadline)
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", fmt.Errorf("haproxy: master CLI %q: %w", cmd, err)
	}
	// The master answers once the client has half-closed.
	if err := c.(*net.UnixConn).CloseWrite(); err != nil {
		return "", fmt.Errorf("haproxy: master CLI %q: %w", cmd, err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		return string(out), fmt.Errorf("haproxy: master CLI %q: %w", cmd, err)
	}
	return string(out), nil
}

// Proc is one line of `show proc`.
type Proc struct {
	PID, Reloads int
	Failed       int // master only: failed reloads since the last successful one
}

// ProcStatus is the answer to `show proc`.
type ProcStatus struct {
	Master  Proc
	Workers []Proc // current and old workers
}

// ShowProc asks the master for its processes.
func (m *Master) ShowProc(ctx context.Context) (ProcStatus, error) {
	out, err := m.Command(ctx, "show proc")
	if err != nil {
		return ProcStatus{}, err
	}
	return parseShowProc(out)
}

// parseShowProc reads the 2.6 format:
//
//	#<PID>          <type>          <reloads>       <uptime>        <version>
//	13997           master          2 [failed: 1]   0d00h10m22s     2.6.12-1+deb12u4
//	# workers
//	25471           worker          1               0d00h00m03s     2.6.12-1+deb12u4
func parseShowProc(out string) (ProcStatus, error) {
	var st ProcStatus
	haveMaster := false
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		pid, err1 := strconv.Atoi(f[0])
		reloads, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			return st, fmt.Errorf("%w: show proc line %q", ErrProtocol, strings.TrimSpace(line))
		}
		p := Proc{PID: pid, Reloads: reloads}
		switch f[1] {
		case "master":
			if len(f) >= 5 && f[3] == "[failed:" {
				p.Failed, _ = strconv.Atoi(strings.TrimSuffix(f[4], "]"))
			}
			st.Master, haveMaster = p, true
		case "worker":
			st.Workers = append(st.Workers, p)
		}
	}
	if !haveMaster {
		return st, fmt.Errorf("%w: show proc has no master line: %q", ErrProtocol, out)
	}
	return st, nil
}

// Reload asks the master to reload and waits until a new worker runs, or
// returns ErrReloadFailed when haproxy rejected the configuration. Give ctx
// a deadline.
func (m *Master) Reload(ctx context.Context) error {
	before, err := m.ShowProc(ctx)
	if err != nil {
		return err
	}
	known := map[int]bool{}
	for _, w := range before.Workers {
		known[w.PID] = true
	}
	// The master re-executes itself while answering: the answer is empty
	// and the connection may be cut. Only `show proc` tells the outcome.
	_, _ = m.Command(ctx, "reload")
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if st, err := m.ShowProc(ctx); err == nil && st.Master.Reloads > before.Master.Reloads {
			for _, w := range st.Workers {
				if w.Reloads == 0 && !known[w.PID] {
					return nil
				}
			}
			if st.Master.Failed > 0 {
				return ErrReloadFailed
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("haproxy: reload: no new worker before %w", ctx.Err())
		case <-tick.C:
		}
	}
}
