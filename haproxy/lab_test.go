package haproxy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewire/rewire/haproxy"
	"github.com/rewire/rewire/internal/haproxytest"
)

// lab is a real haproxy started on a config made of a fixed global and
// defaults part (with an admin stats socket) followed by a test's body.
type lab struct {
	t      testing.TB
	dir    string // short: unix socket paths must fit in 107 bytes
	path   string // the config file
	sock   string // the admin stats socket
	proc   *haproxytest.Proc
	client *haproxy.Client
}

const labHead = `global
    maxconn 256
    stats socket %s mode 600 level admin
    stats socket %s mode 600 level user
    stats timeout 10s

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
`

// newLab starts haproxy on the config made from body. "{dir}" in body is the
// lab's directory, for unix sockets.
func newLab(t testing.TB, body string) *lab {
	t.Helper()
	haproxytest.Binary(t)
	dir, err := os.MkdirTemp("", "hx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l := &lab{t: t, dir: dir, path: filepath.Join(dir, "haproxy.cfg"), sock: filepath.Join(dir, "admin.sock")}
	l.write(body)
	if err := haproxytest.Check(t, l.path); err != nil {
		t.Fatal(err)
	}
	l.proc = haproxytest.Start(t, l.path)
	l.client = haproxy.NewClient(l.sock)
	return l
}

// config returns the full config text for body.
func (l *lab) config(body string) string {
	return fmt.Sprintf(labHead, l.sock, filepath.Join(l.dir, "user.sock")) + "\n" + strings.ReplaceAll(body, "{dir}", l.dir)
}

// write writes the config for body to the lab's file.
func (l *lab) write(body string) {
	l.t.Helper()
	if err := os.WriteFile(l.path, []byte(l.config(body)), 0o644); err != nil {
		l.t.Fatal(err)
	}
}

// parse parses the config for body.
func (l *lab) parse(body string) *haproxy.Config {
	l.t.Helper()
	c, err := haproxy.Parse([]byte(l.config(body)))
	if err != nil {
		l.t.Fatalf("Parse: %v", err)
	}
	return c
}
