package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// procGroup runs the daemons, logging each to DIR/NAME.log, and stops them
// in reverse start order, reporting each to out.
//
// However the demo ends, the daemons end with it: a Ctrl-C or SIGTERM runs
// stop; a reader of its output going away stops the demo the same way (see
// output); and on Linux each daemon gets a parent-death signal, so that if
// the demo dies without running stop (SIGKILL, a crash) the kernel sends
// the daemon SIGTERM. That signal is tied to the thread that started the
// daemon; Go retires threads only for goroutines that lock one and exit,
// which the demo never does.
type procGroup struct {
	out    io.Writer
	mu     sync.Mutex
	procs  []*proc
	exited chan struct{}
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func (g *procGroup) start(dir, name, bin string, args ...string) error {
	if g.exited == nil {
		g.exited = make(chan struct{}, 8)
	}
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir
	// Own process group: a Ctrl-C in the terminal reaches only the demo,
	// which then stops the daemons in order.
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s not found: run `make demo` (it builds the binaries first)", bin)
		}
		return err
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		close(p.done)
		select {
		case g.exited <- struct{}{}:
		default:
		}
	}()
	g.mu.Lock()
	g.procs = append(g.procs, p)
	g.mu.Unlock()
	return nil
}

func (g *procGroup) pid(name string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range g.procs {
		if p.name == name {
			return p.cmd.Process.Pid
		}
	}
	return 0
}

// stopOrder names the daemons in the order stop stops them.
func (g *procGroup) stopOrder() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var names []string
	for _, p := range slices.Backward(g.procs) {
		names = append(names, p.name)
	}
	return names
}

func (g *procGroup) stop() {
	g.mu.Lock()
	procs := g.procs
	g.mu.Unlock()
	for _, p := range slices.Backward(procs) {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		fmt.Fprintf(g.out, "  stopped %s\n", p.name)
	}
}

// output is the demo's standard output. A failed write means nobody reads
// it any more (`bin/demo | head -n 3`, or a `| tee` that died with the
// Ctrl-C): gone is then called once, and the demo stops as if interrupted,
// running its cleanup. This needs SIGPIPE ignored: otherwise the write
// kills the process before it can return EPIPE.
type output struct {
	w    io.Writer
	once sync.Once
	gone func()
}

func (o *output) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil {
		o.once.Do(o.gone)
	}
	return n, err
}
