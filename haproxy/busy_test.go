package haproxy_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewire/rewire/haproxy"
)

// holder accepts TCP connections and keeps each open until the other
// side closes it, or the test ends.
type holder struct {
	ln       net.Listener
	accepted chan net.Conn
	wg       sync.WaitGroup

	mu    sync.Mutex // guards conns
	conns []net.Conn
}

func newHolder(t *testing.T) *holder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &holder{ln: ln, accepted: make(chan net.Conn, 16)}
	h.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
			h.wg.Go(func() {
				_, _ = io.Copy(io.Discard, c)
				c.Close()
			})
			select {
			case h.accepted <- c:
			default:
			}
		}
	})
	t.Cleanup(func() {
		ln.Close()
		h.mu.Lock()
		for _, c := range h.conns {
			c.Close()
		}
		h.mu.Unlock()
		h.wg.Wait()
	})
	return h
}

// connect opens a client connection through haproxy's unix listener and
// waits until haproxy has connected to the holder.
func (h *holder) connect(t *testing.T, sock string) (client, server net.Conn) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "hello"); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-h.accepted:
		return c, s
	case <-time.After(10 * time.Second):
		t.Fatal("haproxy did not connect to the server")
	}
	return nil, nil
}

// TestDelServerBusy: HAProxy 2.6 refuses to delete a server with a
// session on it. DelServer and Apply wait for the session to end (or ctx);
// ShutdownSessions ends it at once.
func TestDelServerBusy(t *testing.T) {
	h := newHolder(t)
	addr := h.ln.Addr().String()
	l := newLab(t, fmt.Sprintf(`
listen tcp1
    mode tcp
    bind unix@{dir}/tcp1.sock
    server t1 %s

listen tcp2
    mode tcp
    bind unix@{dir}/tcp2.sock
    server t2 %s
`, addr, addr))
	c := l.client

	client, _ := h.connect(t, filepath.Join(l.dir, "tcp1.sock"))
	short, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err := c.DelServer(short, "tcp1", "t1")
	if !errors.Is(err, haproxy.ErrServerBusy) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DelServer with a session = %v, want ErrServerBusy and DeadlineExceeded", err)
	}
	if _, err := c.Command(ctx(t), "del server tcp1/t1"); !errors.Is(err, haproxy.ErrServerBusy) {
		t.Fatalf("del server with a session = %v, want ErrServerBusy", err)
	}
	// Apply waits for the session to end.
	time.AfterFunc(200*time.Millisecond, func() { client.Close() })
	plan := haproxy.Plan{Changes: []haproxy.Change{{Kind: haproxy.KindDel, Backend: "tcp1", Server: "t1"}}}
	start := time.Now()
	if err := c.Apply(ctx(t), plan); err != nil {
		t.Fatalf("Apply(del busy server) = %v, want nil once the session ends", err)
	}
	t.Logf("del server waited %v for the session to end", time.Since(start).Round(time.Millisecond))

	// ShutdownSessions cuts the session; the deletion follows.
	client2, _ := h.connect(t, filepath.Join(l.dir, "tcp2.sock"))
	if err := c.SetState(ctx(t), "tcp2", "t2", haproxy.StateMaint); err != nil {
		t.Fatal(err)
	}
	if err := c.ShutdownSessions(ctx(t), "tcp2", "t2"); err != nil {
		t.Fatal(err)
	}
	if err := c.DelServer(ctx(t), "tcp2", "t2"); err != nil {
		t.Fatalf("DelServer after ShutdownSessions = %v", err)
	}
	_ = client2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(client2); err != nil {
		t.Errorf("client of the cut session: %v, want EOF", err)
	}
	states, err := c.ShowServersState(ctx(t), "")
	if err != nil || len(states) != 0 {
		t.Errorf("ShowServersState = %v, %v; want no servers", states, err)
	}
}

// TestDelServerIdleHTTP measures what idle (keep-alive) server
// connections do to del server: they count as connections, so deletion
// waits for HAProxy to purge them.
func TestDelServerIdleHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	defer func() { srv.Close(); wg.Wait() }()
	l := newLab(t, fmt.Sprintf(`
frontend fe
    bind unix@{dir}/fe.sock
    default_backend be

backend be
    server s1 %s
`, ln.Addr()))
	// Two sessions in turn: the first leaves its server connection idle
	// in the pool (http-reuse safe), the second may reuse it.
	for range 2 {
		conn, err := net.Dial("unix", filepath.Join(l.dir, "fe.sock"))
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		conn.Close()
		if string(body) != "ok" {
			t.Fatalf("response %q", body)
		}
	}
	conns, err := l.client.Command(ctx(t), "show servers conn be")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("show servers conn be:\n%s", conns)
	if !strings.Contains(conns, "be/s1") {
		t.Errorf("show servers conn be does not list be/s1")
	}
	start := time.Now()
	outs, err := l.client.Commands(ctx(t), "set server be/s1 state maint", "del server be/s1")
	t.Logf("maint then del at once: %q, %v", outs, err)
	if errors.Is(err, haproxy.ErrServerBusy) {
		err = l.client.DelServer(ctx(t), "be", "s1")
	}
	if err != nil {
		t.Fatalf("DelServer = %v (after %v)", err, time.Since(start))
	}
	t.Logf("del server with idle connections: done after %v", time.Since(start).Round(time.Millisecond))
}
