// Package etcdtest starts etcd for tests: an in-process embedded server
// (Start) or Debian's etcd binary (StartBinary), each torn down by
// t.Cleanup. Import it only from _test.go files:
//
//	e := etcdtest.Start(t)
//	cli := e.Client(t)
package etcdtest

import (
	"context"
	"github.com/rewire/rewire/internal/freeport"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/embedetcd"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Etcd is a running etcd for one test.
type Etcd struct {
	Endpoints []string
	srv       *embedetcd.Server // nil for StartBinary
	stop      func()
}

// Start runs an embedded etcd with test tuning (fast elections, no fsync)
// and a data directory under t.TempDir().
func Start(t testing.TB) *Etcd {
	t.Helper()
	return StartOptions(t, embedetcd.Options{})
}

// StartOptions is Start with options; Dir and Fast are always set.
func StartOptions(t testing.TB, opts embedetcd.Options) *Etcd {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd: skipped with -short")
	}
	if opts.Dir == "" {
		opts.Dir = filepath.Join(t.TempDir(), "etcd")
	}
	opts.Fast = true
	srv, err := embedetcd.Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	e := &Etcd{Endpoints: srv.Endpoints(), srv: srv}
	e.stop = sync1(srv.Close)
	t.Cleanup(e.stop)
	return e
}

// Stop stops the server now (to simulate an outage); Cleanup is then a
// no-op until Restart.
func (e *Etcd) Stop() { e.stop() }

// Restart starts a stopped embedded server again on the same data
// directory and addresses, as after an outage.
func (e *Etcd) Restart(t testing.TB) {
	t.Helper()
	if e.srv == nil {
		t.Fatal("etcdtest: Restart works only for Start, not StartBinary")
	}
	srv, err := embedetcd.Start(t.Context(), e.srv.Options())
	if err != nil {
		t.Fatalf("etcdtest: restart: %v", err)
	}
	e.srv = srv
	e.stop = sync1(srv.Close)
	t.Cleanup(e.stop)
}

// Wipe stops the embedded server, deletes its data directory and starts
// it again on the same addresses, as an operator does who replaces a
// broken member with an empty one: the new store starts again at
// revision 1, with the same cluster ID.
func (e *Etcd) Wipe(t testing.TB) {
	t.Helper()
	if e.srv == nil {
		t.Fatal("etcdtest: Wipe works only for Start, not StartBinary")
	}
	e.stop()
	if err := os.RemoveAll(e.srv.Options().Dir); err != nil {
		t.Fatalf("etcdtest: wipe: %v", err)
	}
	e.Restart(t)
}

func sync1(f func()) func() {
	done := false
	return func() {
		if !done {
			done = true
			f()
		}
	}
}

// Client returns a client connected to e, closed at cleanup.
func (e *Etcd) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   e.Endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Rev returns the store's current revision.
func (e *Etcd) Rev(t testing.TB, cli *clientv3.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "rewire-etcdtest-rev-probe")
	if err != nil {
		t.Fatalf("etcdtest: get: %v", err)
	}
	return resp.Header.Revision
}

// StartBinary runs the etcd binary from $PATH (Debian's etcd-server) on a
// free loopback port. It skips the test when etcd is missing, or fails it
// when the CI environment variable is set.
func StartBinary(t testing.TB) *Etcd {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd: skipped with -short")
	}
	bin, err := exec.LookPath("etcd")
	if err != nil {
		missing(t, "etcd binary (apt-get install etcd-server)")
	}
	client := freeAddr(t)
	peer := freeAddr(t)
	dir := t.TempDir()
	cmd := exec.Command(bin,
		"--name", "compat", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "compat=http://"+peer,
		"--logger=zap", "--log-outputs", filepath.Join(dir, "etcd.log"),
		"--heartbeat-interval", "10", "--election-timeout", "100",
	)
	if err := cmd.Start(); err != nil {
		t.Fatalf("etcdtest: start %s: %v", bin, err)
	}
	e := &Etcd{Endpoints: []string{client}}
	e.stop = sync1(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	t.Cleanup(e.stop)
	cli := e.Client(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return e
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "etcd.log"))
			t.Fatalf("etcdtest: %s not ready after 30s: %v\n%s", bin, err, tail(string(log), 2000))
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func missing(t testing.TB, what string) {
	t.Helper()
	msg := "\n\n*** SKIPPING: " + what + " is not installed ***\n\n"
	if os.Getenv("CI") != "" {
		t.Fatal(strings.TrimSpace(msg) + " (CI is set: install it in .ci/run)")
	}
	t.Skip(msg)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	return addr
}
