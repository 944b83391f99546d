package haproxy_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rewire/rewire/haproxy"
)

// fakeSocket serves a unix socket that reads a whole request, then lets
// answer write to the connection (or hold it). It stands in for the
// failures a real haproxy does not produce on demand.
func fakeSocket(t *testing.T, answer func(req string, c net.Conn)) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hxf-")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				var req strings.Builder
				r := bufio.NewReader(c)
				for { // up to the client's last line, "quit"
					line, err := r.ReadString('\n')
					req.WriteString(line)
					if err != nil || line == "quit\n" {
						break
					}
				}
				answer(req.String(), c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		os.RemoveAll(dir)
	})
	return path
}

func TestClientFailures(t *testing.T) {
	t.Run("protocol", func(t *testing.T) {
		sock := fakeSocket(t, func(_ string, c net.Conn) { io.WriteString(c, "hello\n") })
		_, err := haproxy.NewClient(sock).Command(ctx(t), "show info")
		if !errors.Is(err, haproxy.ErrProtocol) {
			t.Errorf("Command to a non-haproxy socket = %v, want ErrProtocol", err)
		}
	})
	t.Run("too few answers", func(t *testing.T) {
		sock := fakeSocket(t, func(_ string, c net.Conn) { io.WriteString(c, "\n> \n> \n> ") })
		_, err := haproxy.NewClient(sock).Commands(ctx(t), "a", "b")
		if !errors.Is(err, haproxy.ErrProtocol) {
			t.Errorf("Commands with one answer for two = %v, want ErrProtocol", err)
		}
	})
	t.Run("canned answers", func(t *testing.T) {
		reqs := make(chan string, 1)
		sock := fakeSocket(t, func(req string, c net.Conn) {
			reqs <- req
			io.WriteString(c, "\n> \n> \n> [3]: Something new went wrong.\n\n> [6]: All good.\n> 1\n# be_id\n\n> ")
		})
		outs, err := haproxy.NewClient(sock).Commands(ctx(t), "one", "two", "three", "four")
		if got, want := <-reqs, "prompt\nset severity-output number\none\ntwo\nthree\nfour\nquit\n"; got != want {
			t.Errorf("request = %q, want %q", got, want)
		}
		if len(outs) != 4 || outs[0] != "" || outs[1] != "Something new went wrong." || outs[2] != "All good." || outs[3] != "1\n# be_id" {
			t.Errorf("answers = %q", outs)
		}
		var ce *haproxy.CommandError
		if !errors.As(err, &ce) || ce.Cmd != "two" || !errors.Is(err, haproxy.ErrRefused) {
			t.Errorf("error = %v, want ErrRefused for two", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		sock := fakeSocket(t, func(string, net.Conn) { <-t.Context().Done() }) // reads, never answers
		c, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := haproxy.NewClient(sock).Command(c, "show info")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Errorf("Command to a silent socket = %v after %v, want DeadlineExceeded after 100ms", err, time.Since(start))
		}
	})
	t.Run("cancel", func(t *testing.T) {
		sock := fakeSocket(t, func(string, net.Conn) { <-t.Context().Done() })
		c, cancel := context.WithCancel(t.Context())
		time.AfterFunc(50*time.Millisecond, cancel)
		if _, err := haproxy.NewClient(sock).Command(c, "show info"); !errors.Is(err, context.Canceled) {
			t.Errorf("Command cancelled = %v, want Canceled", err)
		}
	})
	t.Run("no socket", func(t *testing.T) {
		_, err := haproxy.NewClient(filepath.Join(t.TempDir(), "none.sock")).Command(ctx(t), "show info")
		if !errors.Is(err, syscall.ENOENT) {
			t.Errorf("Command to a missing socket = %v, want ENOENT", err)
		}
	})
	t.Run("invalid commands", func(t *testing.T) {
		c := haproxy.NewClient(filepath.Join(t.TempDir(), "none.sock"))
		for _, cmd := range []string{"", "  ", "show info\nshow stat", "show info\r", "show info; show stat", "a \\\\; b", "quit", "prompt", "set ssl cert x <<"} {
			if _, err := c.Command(ctx(t), cmd); !errors.Is(err, haproxy.ErrInvalidCommand) {
				t.Errorf("Command(%q) = %v, want ErrInvalidCommand", cmd, err)
			}
		}
		if _, err := c.Command(ctx(t), `set map m k a\;b`); errors.Is(err, haproxy.ErrInvalidCommand) {
			t.Errorf(`Command with an escaped ';' = %v, want it sent`, err)
		}
		if err := c.Apply(ctx(t), haproxy.Plan{Reload: true, Reason: "x"}); !errors.Is(err, haproxy.ErrReloadRequired) {
			t.Errorf("Apply(reload plan) = %v, want ErrReloadRequired", err)
		}
	})
}
