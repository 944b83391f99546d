package haproxytest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rewire/rewire/haproxy"
)

// Bounds on how long haproxy may take; every wait polls against one of
// these deadlines instead of sleeping a fixed time.
const (
	checkTimeout  = 30 * time.Second
	startTimeout  = 15 * time.Second
	reloadTimeout = 15 * time.Second
	stopTimeout   = 10 * time.Second
	cliTimeout    = 5 * time.Second
	pollInterval  = 10 * time.Millisecond
)

// fallbackPaths are tried when haproxy is not on $PATH (Debian installs it
// in /usr/sbin, which is often missing from a user's $PATH).
var fallbackPaths = []string{"/usr/sbin/haproxy", "/usr/local/sbin/haproxy"}

// Binary returns the path of the haproxy binary. Without one the test is
// skipped, loudly, unless $CI is set: then it fails, so that CI never
// silently stops testing against haproxy. With -short the test is skipped.
func Binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("haproxytest: -short: not running haproxy")
	}
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	for _, p := range fallbackPaths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("haproxytest: haproxy is not installed, and $CI is set: install haproxy (Debian: apt-get install haproxy)")
	}
	t.Skip("*** SKIPPING: haproxy is not installed ***")
	return ""
}

// Check runs `haproxy -c -f cfgPath` and returns nil when haproxy accepts
// the file. Otherwise the error carries haproxy's output. Warnings alone
// do not make a config invalid.
func Check(t testing.TB, cfgPath string) error {
	t.Helper()
	bin := Binary(t)
	ctx, cancel := context.WithTimeout(t.Context(), checkTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-c", "-f", cfgPath).CombinedOutput()
	if err != nil {
		return fmt.Errorf("haproxytest: haproxy -c -f %s: %v\n%s", cfgPath, err, bytes.TrimSpace(out))
	}
	return nil
}

// Proc is a running haproxy master process and its workers.
type Proc struct {
	t    testing.TB
	cmd  *exec.Cmd
	sock string // master CLI socket
	log  string // file receiving haproxy's stdout and stderr

	done    chan struct{} // closed when the master has exited
	waitErr error         // the master's exit status; read only after done is closed
}

// Start runs haproxy in master-worker mode on cfgPath, in the foreground of
// the child process (no -D), with a master CLI socket in a fresh temporary
// directory. It returns once the master CLI lists a worker, so the
// listeners are bound. t.Cleanup stops it: SIGTERM, then SIGKILL when it
// has not exited within a deadline. A haproxy that dies before cleanup
// fails the test.
func Start(t testing.TB, cfgPath string) *Proc {
	t.Helper()
	bin := Binary(t)
	// Not t.TempDir(): its path includes the test name, and a unix socket
	// path must fit in 107 bytes.
	dir, err := os.MkdirTemp("", "haproxytest-")
	if err != nil {
		t.Fatalf("haproxytest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // registered first, so it runs after the stop below
	p := &Proc{
		t:    t,
		sock: filepath.Join(dir, "master.sock"),
		log:  filepath.Join(dir, "haproxy.log"),
		done: make(chan struct{}),
	}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatalf("haproxytest: %v", err)
	}
	defer logf.Close() // the child has its own descriptor
	p.cmd = exec.Command(bin, "-W", "-S", p.sock+",mode,600", "-f", cfgPath, "-p", filepath.Join(dir, "haproxy.pid"))
	p.cmd.Stdout, p.cmd.Stderr = logf, logf // *os.File: no copying goroutines
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("haproxytest: start haproxy: %v", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.stop)
	if err := p.waitFor(startTimeout, func(st haproxy.ProcStatus) (bool, error) { return len(st.Workers) > 0, nil }); err != nil {
		t.Fatalf("haproxytest: haproxy did not start: %v\n%s", err, p.Output())
	}
	return p
}

// Pid returns the process id of the haproxy master.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Output returns what haproxy has written to stdout and stderr so far.
func (p *Proc) Output() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(haproxy output unavailable: %v)", err)
	}
	return string(b)
}

// MasterCLI sends one command to the master CLI and returns the answer.
// The master answers once the client has finished writing, and then
// closes the connection.
func (p *Proc) MasterCLI(cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	out, err := haproxy.NewMaster(p.sock).Command(ctx, cmd)
	if err != nil {
		return out, fmt.Errorf("haproxytest: %w", err)
	}
	return out, nil
}

// MasterSocket returns the path of the master CLI socket.
func (p *Proc) MasterSocket() string { return p.sock }

// Reload sends `reload` on the master CLI and waits until `show proc`
// lists a worker that was not running before. When haproxy rejects the
// new configuration (the previous workers keep serving), Reload returns
// an error with haproxy's output.
func (p *Proc) Reload() error {
	ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
	defer cancel()
	if err := haproxy.NewMaster(p.sock).Reload(ctx); err != nil {
		return fmt.Errorf("haproxytest: reload: %w\n%s", err, p.Output())
	}
	return nil
}

// waitFor polls `show proc` until cond is true or fails, haproxy exits, or
// timeout passes.
func (p *Proc) waitFor(timeout time.Duration, cond func(haproxy.ProcStatus) (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("haproxy exited: %w", p.waitErr)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
		st, err := haproxy.NewMaster(p.sock).ShowProc(ctx)
		cancel()
		if err == nil {
			ok, cerr := cond(st)
			if ok || cerr != nil {
				return cerr
			}
			last = fmt.Errorf("show proc: %+v", st)
		} else {
			last = err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %s; last: %v", timeout, last)
		}
		time.Sleep(pollInterval)
	}
}

// stop ends haproxy at cleanup.
func (p *Proc) stop() {
	select {
	case <-p.done:
		p.t.Errorf("haproxytest: haproxy exited before the end of the test: %v\n%s", p.waitErr, p.Output())
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // the master stops its workers
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.t.Errorf("haproxytest: haproxy did not exit within %s of SIGTERM; killing it\n%s", stopTimeout, p.Output())
		_ = p.cmd.Process.Kill() // workers exit when their master dies
		<-p.done
	}
}
