package registry

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	etcd "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// partition is a TCP proxy between one etcd client and a real etcd server
// that can cut the connection: a network partition for one client, with the
// server itself running on. Cut closes every proxied connection and holds
// new ones unconnected until Heal, so the client reconnects as soon as the
// partition heals, without waiting out a dial backoff.
type partition struct {
	ln     net.Listener
	target string
	done   chan struct{} // closed by close
	wg     sync.WaitGroup

	// mu guards everything below.
	mu    sync.Mutex
	open  chan struct{} // closed while connections may pass
	conns map[net.Conn]bool
}

func newPartition(t *testing.T, target string) *partition {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &partition{ln: ln, target: target, done: make(chan struct{}), open: make(chan struct{}), conns: map[net.Conn]bool{}}
	close(p.open)
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

// client returns an etcd client that reaches etcd through p.
func (p *partition) client(t *testing.T) *etcd.Client {
	t.Helper()
	cli, err := etcd.New(etcd.Config{
		Endpoints:   []string{p.ln.Addr().String()},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("client through proxy: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Cut drops every connection and holds new ones.
func (p *partition) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = make(chan struct{})
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Heal lets held and new connections through.
func (p *partition) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
	default:
		close(p.open)
	}
}

func (p *partition) close() {
	close(p.done)
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	p.mu.Unlock()
	p.wg.Wait()
}

// track registers c to be closed by Cut; it returns the channel that is
// closed while connections may pass.
func (p *partition) track(c net.Conn) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns[c] = true
	return p.open
}

func (p *partition) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

func (p *partition) serve(c net.Conn) {
	defer c.Close()
	select {
	case <-p.track(c):
	case <-p.done:
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	p.track(up)
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(up, c)
		up.Close()
	})
	_, _ = io.Copy(c, up)
	c.Close()
	wg.Wait()
}
