package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/rewire/rewire/internal/proc"
)

// Checker probes something once. Check must return promptly once ctx is
// done; the caller puts the timeout on ctx. Implementations must be safe for
// concurrent use if they are shared between checks.
type Checker interface {
	Check(ctx context.Context) Result
}

// CheckerFunc adapts a function to a Checker.
type CheckerFunc func(ctx context.Context) Result

// Check calls f(ctx).
func (f CheckerFunc) Check(ctx context.Context) Result { return f(ctx) }

var (
	_ Checker = CheckerFunc(nil)
	_ Checker = HTTP{}
	_ Checker = TCP{}
	_ Checker = Exec{}
)

// maxRead bounds how much of a response body or command output a check
// reads.
const maxRead = 4 << 10

// defaultClient is used by HTTP checks without a Client. It never reuses
// connections, so an idle check holds no sockets or goroutines, and it
// ignores proxy environment variables: health checks target local services.
var defaultClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true},
}

// HTTP checks a URL with a GET request. A 2xx response is Passing, 429 Too
// Many Requests is Warning, and any other response or error is Critical.
// The output is "HTTP <code> <reason>" or a short error such as
// "connection refused" or "timeout after 1s". Redirects are followed as
// Client does. A nil Client means one that does not keep connections alive
// and does not use a proxy. Up to 4 KiB of the body is read and discarded.
type HTTP struct {
	URL    string
	Client *http.Client
}

// Check performs one GET request.
func (h HTTP) Check(ctx context.Context) Result {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
	if err != nil {
		return failure(ctx, start, err)
	}
	client := h.Client
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return failure(ctx, start, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxRead))
	_ = resp.Body.Close()

	out := fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return Result{Status: Passing, Output: CleanOutput(out)}
	case code == http.StatusTooManyRequests:
		return Result{Status: Warning, Output: CleanOutput(out)}
	default:
		return Result{Status: Critical, Output: CleanOutput(out)}
	}
}

// TCP checks that a TCP connection to Addr ("host:port") can be opened. It
// closes the connection at once. The output is "connected to Addr" or a
// short error.
type TCP struct {
	Addr string
}

// Check dials Addr once.
func (c TCP) Check(ctx context.Context) Result {
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return failure(ctx, start, err)
	}
	_ = conn.Close()
	return Result{Status: Passing, Output: CleanOutput("connected to " + c.Addr)}
}

// execWaitDelay is how long an Exec check waits for the command's output
// pipes to close after it was killed or has exited.
const execWaitDelay = time.Second

// Exec runs Argv[0] with arguments Argv[1:], without a shell, in Dir (the
// current directory if empty). Exit status 0 is Passing, 1 is Warning, and
// anything else, including a failure to start the command, is Critical.
// The output is the first 4 KiB of combined stdout and stderr, cleaned by
// CleanOutput, or the exit status if that is empty.
//
// The command runs in its own process group. When ctx is done the whole
// group is killed, and Check returns at most a second later even if a
// grandchild escaped the group and still holds the output pipe.
type Exec struct {
	Argv []string
	Dir  string
}

// cannotStart begins the output of an Exec check whose command could not
// be started; Monitor logs it.
const cannotStart = "cannot start: "

// Check runs the command once.
func (e Exec) Check(ctx context.Context) Result {
	if len(e.Argv) == 0 {
		return Result{Status: Critical, Output: "no command"}
	}
	start := time.Now()
	cmd, out := proc.Command(ctx, e.Argv, maxRead, execWaitDelay)
	cmd.Dir = e.Dir

	// proc.Run kills whatever the command left in its process group when
	// it exits: a check that forks `sleep 1000 &` leaves nothing behind.
	err := proc.Run(cmd)
	if err != nil && ctx.Err() != nil {
		return Result{Status: Critical, Output: ctxText(ctx, start)}
	}
	if cmd.ProcessState == nil { // it never started
		return Result{Status: Critical, Output: CleanOutput(cannotStart + err.Error())}
	}
	// A command that exited but left a grandchild holding the pipe gets
	// ErrWaitDelay; its exit status still counts.
	r := Result{Status: Critical, Output: CleanOutput(out.String())}
	switch cmd.ProcessState.ExitCode() {
	case 0:
		r.Status = Passing
	case 1:
		r.Status = Warning
	}
	if r.Output == "" {
		r.Output = cmd.ProcessState.String()
	}
	return r
}

// failure is the Critical result for a probe that started at start and
// failed with err.
func failure(ctx context.Context, start time.Time, err error) Result {
	return Result{Status: Critical, Output: CleanOutput(errorText(ctx, start, err))}
}

// errorText describes a network error briefly and stably: no local port
// numbers or latencies, which would make every failed probe look new.
func errorText(ctx context.Context, start time.Time, err error) string {
	if ctx.Err() != nil {
		return ctxText(ctx, start)
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return "timeout"
	}
	if errno, ok := errors.AsType[syscall.Errno](err); ok {
		return errno.Error() // "connection refused", "no route to host", ...
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err.Error() // the URL is already known
	}
	return err.Error()
}

// ctxText describes why ctx, which a probe started using at start, is done
// or past its deadline.
func ctxText(ctx context.Context, start time.Time) string {
	if err := ctx.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return "canceled"
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		return "timeout"
	}
	// The caller set the deadline just before calling Check; rounding hides
	// that gap, which grows on a loaded machine, so "timeout after 1s"
	// rather than 999.98ms. (Monitor reports its configured timeout
	// instead, which is stable by construction.)
	d := deadline.Sub(start)
	switch {
	case d >= 100*time.Millisecond:
		d = d.Round(100 * time.Millisecond)
	case d >= 10*time.Millisecond:
		d = d.Round(10 * time.Millisecond)
	default:
		d = d.Round(time.Millisecond)
	}
	return "timeout after " + d.String()
}
