package health

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

var _ Checker = GRPC{}

// serveGRPC serves hs on a new gRPC server on 127.0.0.1 until the test
// ends, and returns the server's address and a function that stops it
// early. Stopping is idempotent.
func serveGRPC(t *testing.T, hs healthpb.HealthServer) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		srv.Stop() // cancels RPCs in flight, so blocked handlers return
		select {
		case err := <-done:
			// Serve returns ErrServerStopped if Stop won the race
			// to the listener.
			if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				t.Errorf("Serve() = %v, want nil after Stop", err)
			}
		case <-time.After(probeTimeout):
			t.Error("Serve did not return after Stop")
		}
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// stubHealth is a health server whose Check fails with err, or if err is
// nil blocks until the RPC's context is done.
type stubHealth struct {
	healthpb.UnimplementedHealthServer
	entered chan struct{} // if not nil, receives a value when Check starts
	err     error
}

func (s stubHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if s.entered != nil {
		select {
		case s.entered <- struct{}{}:
		default:
		}
	}
	if s.err != nil {
		return nil, s.err
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestGRPC(t *testing.T) {
	hs := grpchealth.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("app.Up", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("app.Down", healthpb.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus("app.Unknown", healthpb.HealthCheckResponse_SERVICE_UNKNOWN)
	addr, _ := serveGRPC(t, hs)

	down := grpchealth.NewServer()
	down.SetServingStatus("app.Up", healthpb.HealthCheckResponse_SERVING)
	down.Shutdown() // every service becomes NOT_SERVING
	downAddr, _ := serveGRPC(t, down)

	stoppedAddr, stop := serveGRPC(t, grpchealth.NewServer())
	stop()

	// The server's own deadline, not the probe's.
	slowAddr, _ := serveGRPC(t, stubHealth{err: status.Error(codes.DeadlineExceeded, "upstream timed out")})

	tests := []struct {
		name       string
		check      GRPC
		want       Result
		wantPrefix bool // want.Output is only a prefix of the output
	}{
		{name: "server serving", check: GRPC{Target: addr}, want: Result{Passing, "gRPC health: SERVING"}},
		{name: "service serving", check: GRPC{Target: addr, Service: "app.Up"}, want: Result{Passing, "gRPC health: SERVING"}},
		{name: "service not serving", check: GRPC{Target: addr, Service: "app.Down"}, want: Result{Critical, "gRPC health: NOT_SERVING"}},
		{
			name:  "service status unknown",
			check: GRPC{Target: addr, Service: "app.Unknown"},
			want:  Result{Critical, "gRPC health: SERVICE_UNKNOWN"},
		},
		{
			name:  "unregistered service",
			check: GRPC{Target: addr, Service: "app.Missing"},
			want:  Result{Critical, "gRPC NotFound: unknown service"},
		},
		{name: "server shutting down", check: GRPC{Target: downAddr}, want: Result{Critical, "gRPC health: NOT_SERVING"}},
		{
			name:  "service of server shutting down",
			check: GRPC{Target: downAddr, Service: "app.Up"},
			want:  Result{Critical, "gRPC health: NOT_SERVING"},
		},
		{
			name:  "server reports a timeout",
			check: GRPC{Target: slowAddr},
			want:  Result{Critical, "gRPC DeadlineExceeded: upstream timed out"},
		},
		{
			name:  "server stopped",
			check: GRPC{Target: stoppedAddr}, want: Result{Critical, "gRPC Unavailable: "}, wantPrefix: true,
		},
		{
			name:  "connection refused",
			check: GRPC{Target: closedAddr(t)}, want: Result{Critical, "gRPC Unavailable: "}, wantPrefix: true,
		},
		{
			name:  "bad target",
			check: GRPC{Target: "dns:///a b"}, want: Result{Critical, ""}, wantPrefix: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := check(t, tc.check, probeTimeout)
			ok := got == tc.want
			if tc.wantPrefix {
				ok = got.Status == tc.want.Status && strings.HasPrefix(got.Output, tc.want.Output) && got.Output != ""
			}
			if !ok {
				t.Errorf("%+v.Check() = %v, want %v (prefix %t)", tc.check, got, tc.want, tc.wantPrefix)
			}
		})
	}
}

func TestGRPCTimeout(t *testing.T) {
	tests := []struct {
		name    string
		service string
		timeout time.Duration
		want    Result
	}{
		{name: "server", timeout: 200 * time.Millisecond, want: Result{Critical, "timeout after 200ms"}},
		{name: "service", service: "app.Slow", timeout: 500 * time.Millisecond, want: Result{Critical, "timeout after 500ms"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			entered := make(chan struct{}, 1)
			addr, _ := serveGRPC(t, stubHealth{entered: entered})
			g := GRPC{Target: addr, Service: tc.service}

			start := time.Now()
			got := check(t, g, tc.timeout)
			elapsed := time.Since(start)

			if got != tc.want {
				t.Errorf("%+v.Check() with a %v timeout = %v, want %v", g, tc.timeout, got, tc.want)
			}
			// The server never answers, so without the deadline Check
			// would hang until the test ends; the slack is for slow CI.
			if elapsed < tc.timeout || elapsed > tc.timeout+5*time.Second {
				t.Errorf("%+v.Check() with a %v timeout returned after %v, want soon after the deadline", g, tc.timeout, elapsed)
			}
			select {
			case <-entered:
			default:
				// On a loaded machine the connection may take longer
				// than the timeout; the result must be the same.
				t.Logf("%+v.Check() timed out before the server's Check was called", g)
			}
		})
	}
}

// deadlineNotDone is a context past its deadline whose timer has not fired
// yet: Err is still nil. The server, which got the same deadline, can reset
// the stream in that moment.
type deadlineNotDone struct {
	context.Context
	deadline time.Time
}

func (c deadlineNotDone) Deadline() (time.Time, bool) { return c.deadline, true }

// TestGRPCTimeoutBeforeTimer checks that a probe past its deadline is a
// timeout even if its context does not say so yet.
func TestGRPCTimeoutBeforeTimer(t *testing.T) {
	addr, _ := serveGRPC(t, stubHealth{})
	g := GRPC{Target: addr}
	ctx := deadlineNotDone{Context: t.Context(), deadline: time.Now()}
	got := g.Check(ctx)
	if got.Status != Critical || !strings.HasPrefix(got.Output, "timeout after ") {
		t.Errorf("%+v.Check() with a passed deadline = %v, want critical with output \"timeout after …\"", g, got)
	}
}
