package health

import (
	"cmp"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// probeTimeout bounds the probes that are not testing timeouts.
const probeTimeout = 10 * time.Second

func check(t *testing.T, c Checker, timeout time.Duration) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	return c.Check(ctx)
}

// closedAddr returns the address of a TCP listener that has been closed.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestHTTP(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(code)
	})
	mux.Handle("/redirect", http.RedirectHandler("/status/200", http.StatusFound))
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close

	noRedirects := &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	tests := []struct {
		name    string
		check   HTTP
		timeout time.Duration
		want    Result
	}{
		{name: "200", check: HTTP{URL: srv.URL + "/status/200"}, want: Result{Passing, "HTTP 200 OK"}},
		{name: "204", check: HTTP{URL: srv.URL + "/status/204"}, want: Result{Passing, "HTTP 204 No Content"}},
		{name: "429", check: HTTP{URL: srv.URL + "/status/429"}, want: Result{Warning, "HTTP 429 Too Many Requests"}},
		{name: "503", check: HTTP{URL: srv.URL + "/status/503"}, want: Result{Critical, "HTTP 503 Service Unavailable"}},
		{name: "404", check: HTTP{URL: srv.URL + "/nope"}, want: Result{Critical, "HTTP 404 Not Found"}},
		{name: "unknown code", check: HTTP{URL: srv.URL + "/status/599"}, want: Result{Critical, "HTTP 599"}},
		{name: "redirect followed", check: HTTP{URL: srv.URL + "/redirect"}, want: Result{Passing, "HTTP 200 OK"}},
		{
			name:  "redirect not followed",
			check: HTTP{URL: srv.URL + "/redirect", Client: noRedirects},
			want:  Result{Critical, "HTTP 302 Found"},
		},
		{name: "refused", check: HTTP{URL: "http://" + closedAddr(t) + "/"}, want: Result{Critical, "connection refused"}},
		{
			name:    "timeout",
			check:   HTTP{URL: srv.URL + "/block"},
			timeout: 100 * time.Millisecond,
			want:    Result{Critical, "timeout after 100ms"},
		},
		{name: "bad url", check: HTTP{URL: "http://[::1"}, want: Result{Critical, "missing ']' in host"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			timeout := cmp.Or(tc.timeout, probeTimeout)
			if got := check(t, tc.check, timeout); got != tc.want {
				t.Errorf("Check(%q) = %v, want %v", tc.check.URL, got, tc.want)
			}
		})
	}
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	open := ln.Addr().String()
	closed := closedAddr(t)

	tests := []struct {
		name string
		addr string
		want Result
	}{
		{name: "open", addr: open, want: Result{Passing, "connected to " + open}},
		{name: "refused", addr: closed, want: Result{Critical, "connection refused"}},
		{name: "no port", addr: "127.0.0.1", want: Result{Critical, "dial tcp: address 127.0.0.1: missing port in address"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := check(t, TCP{Addr: tc.addr}, probeTimeout); got != tc.want {
				t.Errorf("Check(%q) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}

func TestExec(t *testing.T) {
	dir := t.TempDir()
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x ", MaxOutput)

	tests := []struct {
		name    string
		check   Exec
		timeout time.Duration
		want    Result
	}{
		{name: "true", check: Exec{Argv: []string{"true"}}, want: Result{Passing, "exit status 0"}},
		{name: "output", check: Exec{Argv: []string{"echo", "all", "good"}}, want: Result{Passing, "all good"}},
		{
			name:  "exit 1",
			check: Exec{Argv: []string{"sh", "-c", "echo degraded >&2; exit 1"}},
			want:  Result{Warning, "degraded"},
		},
		{name: "exit 2", check: Exec{Argv: []string{"sh", "-c", "exit 2"}}, want: Result{Critical, "exit status 2"}},
		{name: "signal", check: Exec{Argv: []string{"sh", "-c", "kill -9 $$"}}, want: Result{Critical, "signal: killed"}},
		{
			name:  "stdout and stderr",
			check: Exec{Argv: []string{"sh", "-c", "echo out; echo err >&2"}},
			want:  Result{Passing, "out err"},
		},
		{
			name:  "control characters",
			check: Exec{Argv: []string{"printf", `a\tb\r\nc\n`}},
			want:  Result{Passing, "a b  c"},
		},
		{
			name:  "truncated",
			check: Exec{Argv: []string{"sh", "-c", "yes x | head -c 100000"}},
			want:  Result{Passing, long[:MaxOutput-3] + "…"},
		},
		{name: "dir", check: Exec{Argv: []string{"pwd", "-P"}, Dir: dir}, want: Result{Passing, realDir}},
		{name: "no argv", check: Exec{}, want: Result{Critical, "no command"}},
		{
			name:  "not found",
			check: Exec{Argv: []string{"/nonexistent/health-check"}},
			want:  Result{Critical, "cannot start: fork/exec /nonexistent/health-check: no such file or directory"},
		},
		{
			name:    "timeout",
			check:   Exec{Argv: []string{"sleep", "10"}},
			timeout: 200 * time.Millisecond,
			want:    Result{Critical, "timeout after 200ms"},
		},
		{
			// The background sleep holds the output pipe open; killing the
			// process group must take it down too.
			name:    "timeout with child",
			check:   Exec{Argv: []string{"sh", "-c", "sleep 10 & sleep 10; wait"}},
			timeout: 200 * time.Millisecond,
			want:    Result{Critical, "timeout after 200ms"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			timeout := cmp.Or(tc.timeout, probeTimeout)
			start := time.Now()
			got := check(t, tc.check, timeout)
			if got != tc.want {
				t.Errorf("Check(%q) = %v, want %v", tc.check.Argv, got, tc.want)
			}
			// Killing the group makes Check return well before WaitDelay
			// would force it to.
			if d := time.Since(start); d > timeout+execWaitDelay/2 {
				t.Errorf("Check(%q) took %v, want under %v", tc.check.Argv, d, timeout+execWaitDelay/2)
			}
		})
	}
}

// TestExecOutputBound checks that a command writing far more than the
// output limit is neither blocked nor kept in full.
func TestExecOutputBound(t *testing.T) {
	c := Exec{Argv: []string{"sh", "-c", "i=0; while [ $i -lt 10 ]; do printf '%01000d' 0; i=$((i+1)); done"}}
	got := check(t, c, 10*time.Second)
	if got.Status != Passing || len(got.Output) > maxRead {
		t.Errorf("Check of a command writing 10000 bytes = %v (%d bytes of output), want passing with at most %d", got.Status, len(got.Output), maxRead)
	}
}

func TestExecNoLeftovers(t *testing.T) {
	// The command records its background child's PID, then times out.
	pidFile := filepath.Join(t.TempDir(), "pid")
	c := Exec{Argv: []string{"sh", "-c", `sleep 10 & echo $! > "$0"; wait`, pidFile}}
	if got, want := check(t, c, 300*time.Millisecond), (Result{Critical, "timeout after 300ms"}); got != want {
		t.Fatalf("Check(%q) = %v, want %v", c.Argv, got, want)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(b))
	// A killed child is a zombie until init reaps it, so look at its state
	// rather than whether it exists. SIGKILL is delivered asynchronously:
	// poll with a deadline.
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return // gone
		}
		f := strings.Fields(string(stat))
		if len(f) > 2 && f[2] == "Z" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %s still running 5s after the timeout: state %s", pid, f[2])
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}
