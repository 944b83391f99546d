package haproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultTimeout bounds one connection to the stats socket when the
// context has no earlier deadline.
const DefaultTimeout = 10 * time.Second

// Client talks to HAProxy's runtime API on a stats socket declared with
// `stats socket PATH level admin` (unix sockets only; a TCP stats socket is
// not supported). It holds no connection: every call dials, sends its
// commands and reads the answers to EOF. A Client is safe for concurrent
// use.
type Client struct {
	socket  string
	timeout time.Duration
}

// NewClient returns a client for the unix stats socket at socketPath.
func NewClient(socketPath string) *Client {
	return &Client{socket: socketPath, timeout: DefaultTimeout}
}

// Command sends one command and returns HAProxy's answer, without the
// trailing blank line and the "[N]: " severity prefix. When HAProxy
// refuses the command the error is a *CommandError (the answer is returned
// too).
func (c *Client) Command(ctx context.Context, cmd string) (string, error) {
	outs, errs, err := c.run(ctx, []string{cmd})
	if err != nil {
		return "", err
	}
	return outs[0], errs[0]
}

// Commands sends cmds over one connection and returns one answer per
// command. HAProxy runs every command even when an earlier one fails; the
// error joins a *CommandError for each refused command (errors.As finds
// the first). For another error (dial, timeout, protocol) the answers are
// nil.
//
// The connection uses the CLI's interactive mode: commands are written
// one per line while the answers, each ended by the "> " prompt, are read
// concurrently. 1,000 commands take ~7 ms this way, against ~300 ms with
// one connection per command (BenchmarkCommands, 2 cores). Joining
// commands with ';' on one line is not used: some answers lack the blank
// line that would separate them, and a line must fit in HAProxy's buffer.
func (c *Client) Commands(ctx context.Context, cmds ...string) ([]string, error) {
	outs, errs, err := c.run(ctx, cmds)
	if err != nil {
		return nil, err
	}
	return outs, errors.Join(errs...)
}

// checkCommand refuses what would not be one command on one line with
// one answer: several lines or commands, a payload ("<<"), and the
// commands that change the session (prompt, quit).
func checkCommand(cmd string) error {
	f := strings.Fields(cmd)
	if len(f) == 0 || strings.ContainsAny(cmd, "\r\n") || f[0] == "prompt" || f[0] == "quit" || f[len(f)-1] == "<<" {
		return fmt.Errorf("%w: %q", ErrInvalidCommand, cmd)
	}
	for i := 0; i < len(cmd); i++ {
		switch cmd[i] {
		case '\\':
			i++ // the escaped character
		case ';':
			return fmt.Errorf("%w: %q: one command per call (escape ';' as '\\;')", ErrInvalidCommand, cmd)
		}
	}
	return nil
}

// longAgo is a deadline in the past, to interrupt blocked I/O.
var longAgo = time.Unix(1, 0)

// preamble turns the CLI's interactive mode on (every answer ends with a
// "> " prompt, so answers can be told apart) and asks for severities in
// front of messages (so errors can be told from information). The request
// ends with "quit".
const preamble = "prompt\nset severity-output number\n"

// run sends cmds and returns their answers and their refusals, one per
// command, or an error when there are no answers.
func (c *Client) run(ctx context.Context, cmds []string) ([]string, []error, error) {
	if len(cmds) == 0 {
		return nil, nil, nil
	}
	var req bytes.Buffer
	req.WriteString(preamble)
	for _, cmd := range cmds {
		if err := checkCommand(cmd); err != nil {
			return nil, nil, err
		}
		req.WriteString(cmd)
		req.WriteByte('\n')
	}
	req.WriteString("quit\n")
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, nil, fmt.Errorf("haproxy: stats socket: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(longAgo) })
	defer stop()

	// Write while reading: HAProxy stops reading commands while its
	// answers are not read, so a large batch written first could block
	// both sides. The request ends with "quit", and the connection is not
	// half-closed: HAProxy 2.6 resets a connection whose end it sees
	// with more than a buffer (16 kB) of commands still unprocessed
	// (~5% of 1,000-command batches did), while after "quit" it closes
	// the connection itself once every answer is written.
	var wg sync.WaitGroup
	var werr error
	wg.Go(func() { _, werr = conn.Write(req.Bytes()) })
	raw, rerr := io.ReadAll(conn)
	if rerr != nil {
		_ = conn.SetDeadline(longAgo) // unblock the writer
	}
	wg.Wait()
	if rerr != nil {
		if ctx.Err() != nil {
			rerr = ctx.Err()
		}
		return nil, nil, fmt.Errorf("haproxy: stats socket: %w", rerr)
	}
	outs, err := splitAnswers(string(raw), len(cmds))
	if err != nil {
		if werr != nil {
			return nil, nil, fmt.Errorf("haproxy: stats socket: %w (%w)", werr, err)
		}
		return nil, nil, err
	}
	errs := make([]error, len(cmds))
	for i, cmd := range cmds {
		outs[i], errs[i] = classify(cmd, outs[i])
	}
	return outs, errs, nil
}

// splitAnswers splits what the CLI wrote in interactive mode into the
// answers to n commands sent after the preamble. Each answer ends with a
// newline and is followed by the "> " prompt.
func splitAnswers(raw string, n int) ([]string, error) {
	const prompt = "\n> "
	parts := strings.Split(raw, prompt)
	// Answers to "prompt" and "set severity-output", one per command, and
	// what follows the last prompt (nothing).
	if want := n + 3; len(parts) != want || parts[len(parts)-1] != "" {
		got := max(len(parts)-3, 0)
		return nil, fmt.Errorf("%w: %d answers for %d commands: %q", ErrProtocol, got, n, truncate(raw, 200))
	}
	outs := parts[2 : 2+n]
	for i, o := range outs {
		outs[i] = strings.TrimRight(o, "\n")
	}
	return outs, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// State is a server's administrative state, as `set server ... state`
// takes it.
type State int

// Administrative states.
const (
	StateReady State = iota // takes traffic
	StateDrain              // no new traffic except persistent sessions; still checked
	StateMaint              // no traffic, no health checks
)

func (s State) String() string {
	switch s {
	case StateReady:
		return "ready"
	case StateDrain:
		return "drain"
	case StateMaint:
		return "maint"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// SetState sets the administrative state of backend/server.
func (c *Client) SetState(ctx context.Context, backend, server string, st State) error {
	if st < StateReady || st > StateMaint {
		return fmt.Errorf("haproxy: set state: %w: %v", ErrInvalidArgument, st)
	}
	_, err := c.Command(ctx, setStateCmd(backend, server, st))
	return err
}

// SetWeight sets the weight of backend/server (0 to 256). Backends with a
// static algorithm (static-rr, map-based hashing) refuse: ErrStaticBackend.
func (c *Client) SetWeight(ctx context.Context, backend, server string, weight int) error {
	if weight < 0 || weight > 256 {
		return fmt.Errorf("haproxy: set weight: %w: %d is not in [0, 256]", ErrInvalidArgument, weight)
	}
	_, err := c.Command(ctx, setWeightCmd(backend, server, weight))
	return err
}

// SetAddr sets the address and port of backend/server. HAProxy 2.6 takes
// IP addresses only (no resolution at runtime); port 0 means the port of
// the connection the client made.
func (c *Client) SetAddr(ctx context.Context, backend, server string, addr netip.AddrPort) error {
	if !addr.Addr().IsValid() || addr.Addr().Zone() != "" {
		return fmt.Errorf("haproxy: set addr: %w: %v", ErrInvalidArgument, addr)
	}
	_, err := c.Command(ctx, setAddrCmd(backend, server, addr.Addr().Unmap().String(), int(addr.Port())))
	return err
}

// AddServer adds s to backend at runtime and makes it live: HAProxy 2.6
// creates dynamic servers in maintenance with health checks off, so it
// also enables health (with "check" in s.Options), the agent (with
// "agent-check") and, unless s.Disabled, the server (in drain when
// s.Drain). The backend must use
// a dynamic algorithm (ErrStaticBackend), s.Addr must be an IP address,
// and dynamic servers inherit nothing from default-server: s.Options must
// hold every option (Diff merges them into Change.Options). When the add
// is refused, nothing else is sent.
func (c *Client) AddServer(ctx context.Context, backend string, s Server) error {
	ip, err := parseIP(s.Addr)
	if err != nil {
		return fmt.Errorf("haproxy: add server %s/%s: %w: %w", backend, s.Name, ErrInvalidArgument, err)
	}
	ch := Change{Kind: KindAdd, Backend: backend, Server: s.Name, Addr: ip.String(), Port: s.Port,
		Weight: s.Weight, State: s.state(), Options: s.Options}
	return c.Apply(ctx, Plan{Changes: []Change{ch}})
}

// DelServer removes backend/server at runtime: it puts the server in
// maintenance, then deletes it. HAProxy 2.6 refuses to delete a server
// that still has connections (active, idle or queued: ErrServerBusy);
// DelServer then retries, backing off up to a second, until they are gone
// or ctx is done. Give ctx a deadline. To cut the connections instead,
// call ShutdownSessions first.
func (c *Client) DelServer(ctx context.Context, backend, server string) error {
	return c.Apply(ctx, Plan{Changes: []Change{{Kind: KindDel, Backend: backend, Server: server}}})
}

// retryDel sends a del server command until HAProxy stops answering that
// the server is busy, or ctx is done. last is the busy refusal.
func (c *Client) retryDel(ctx context.Context, cmd string, last error) error {
	wait := 20 * time.Millisecond
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up: %w)", last, ctx.Err())
		case <-t.C:
		}
		_, err := c.Command(ctx, cmd)
		if !errors.Is(err, ErrServerBusy) {
			return err
		}
		last = err
		wait = min(2*wait, time.Second)
	}
}

// ShutdownSessions closes every session on backend/server at once.
func (c *Client) ShutdownSessions(ctx context.Context, backend, server string) error {
	_, err := c.Command(ctx, "shutdown sessions server "+backend+"/"+server)
	return err
}

// Apply makes the plan's changes: the commands of Plan.Commands, in that
// order, in a few batches of one connection each. A server's commands run
// only while its previous ones succeed: a refused add server is not
// followed by enable server (which would enable a stale server of that
// name), a refused address change not by enabling the server. Additions
// finish before other changes start, and deletions come last. A server
// being deleted that HAProxy reports busy (it still has connections) is
// retried like DelServer until ctx is done.
//
// It returns ErrReloadRequired for a plan that needs a reload, and the
// joined refusals otherwise. After an error the runtime state is partly
// changed: write the new config and reload.
func (c *Client) Apply(ctx context.Context, p Plan) error {
	if p.Reload {
		return fmt.Errorf("%w: %s", ErrReloadRequired, p.Reason)
	}
	// Units of commands, one per server, in three groups run one after
	// the other. Round k of a group sends the k-th command of each unit
	// that has not failed, in one batch.
	type unit struct {
		cmds   []string
		failed bool
	}
	var groups [3][]*unit
	byServer := map[[3]string]*unit{}
	for _, ch := range p.Changes {
		g := 1
		switch ch.Kind {
		case KindAdd:
			g = 0
		case KindDel:
			g = 2
		}
		key := [3]string{strconv.Itoa(g), ch.Backend, ch.Server}
		u := byServer[key]
		if u == nil {
			u = &unit{}
			byServer[key] = u
			groups[g] = append(groups[g], u)
		}
		u.cmds = append(u.cmds, ch.Commands()...)
	}
	var errs []error
	for _, units := range groups {
		for round := 0; ; round++ {
			var batch []string
			var owners []*unit
			for _, u := range units {
				if !u.failed && round < len(u.cmds) {
					batch = append(batch, u.cmds[round])
					owners = append(owners, u)
				}
			}
			if len(batch) == 0 {
				break
			}
			_, es, err := c.run(ctx, batch)
			if err != nil {
				return errors.Join(append(errs, err)...)
			}
			for i, e := range es {
				if errors.Is(e, ErrServerBusy) && strings.HasPrefix(batch[i], "del server ") {
					e = c.retryDel(ctx, batch[i], e)
				}
				if e != nil {
					owners[i].failed = true
					errs = append(errs, e)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// ShowServersState returns the state of the servers of backend, or of
// every backend when backend is "". An unknown backend is ErrNoSuchBackend.
func (c *Client) ShowServersState(ctx context.Context, backend string) ([]ServerState, error) {
	cmd := "show servers state"
	if backend != "" {
		cmd += " " + backend
	}
	out, err := c.Command(ctx, cmd)
	if err != nil {
		return nil, err
	}
	ls, err := parseLiveState(out)
	if err != nil {
		return nil, err
	}
	return ls.States, nil
}

// ShowStat returns `show stat` (the statistics CSV), one map per row
// keyed by the CSV header: "pxname", "svname", "status", "weight", ...
func (c *Client) ShowStat(ctx context.Context) ([]map[string]string, error) {
	out, err := c.Command(ctx, "show stat")
	if err != nil {
		return nil, err
	}
	return parseStat(out)
}

// WorkerPID returns the process id of the haproxy worker answering on the
// stats socket (`show info`, "Pid:"). After a reload the new worker takes
// the socket over, so a new pid there means the reload happened.
func (c *Client) WorkerPID(ctx context.Context) (int, error) {
	out, err := c.Command(ctx, "show info")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Pid:"); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return 0, fmt.Errorf("%w: show info: Pid %q", ErrProtocol, strings.TrimSpace(v))
			}
			return pid, nil
		}
	}
	return 0, fmt.Errorf("%w: show info has no Pid line", ErrProtocol)
}
