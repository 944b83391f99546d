package health

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// GRPC checks a server through the standard gRPC health protocol
// (grpc.health.v1.Health/Check), without TLS. SERVING is passing; anything
// else, or an error, is critical.
type GRPC struct {
	Target  string // host:port
	Service string // "" asks about the server as a whole
}

// Check dials, asks once and closes.
func (g GRPC) Check(ctx context.Context) Result {
	start := time.Now()
	conn, err := grpc.NewClient(g.Target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return Result{Status: Critical, Output: err.Error()}
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: g.Service})
	if err != nil {
		st := status.Convert(err)
		// The server gets our deadline too and may reset the stream just
		// before ctx's own timer fires, so ctx.Err() can still be nil, and
		// gRPC's message depends on which side won: report a timeout
		// plainly, like the other checks.
		if ctx.Err() != nil || st.Code() == codes.DeadlineExceeded && pastDeadline(ctx) {
			return Result{Status: Critical, Output: ctxText(ctx, start)}
		}
		return Result{Status: Critical, Output: "gRPC " + st.Code().String() + ": " + st.Message()}
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return Result{Status: Critical, Output: "gRPC health: " + s.String()}
	}
	return Result{Status: Passing, Output: "gRPC health: SERVING"}
}

// pastDeadline reports whether ctx has a deadline that has passed.
func pastDeadline(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}
