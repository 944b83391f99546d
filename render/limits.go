package render

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"text/template"
	"text/template/parse"
	"time"

	"gopkg.in/yaml.v3"
)

// Render limits: a template is code, and code can loop for ever or write
// without end. Each render runs under a time limit and an output limit; a
// render over either fails that template (the previous file stays), and
// never holds up other templates, a config reload or shutdown.
const (
	// DefaultRenderTimeout bounds one render. A render of 10,000 servers
	// takes tens of milliseconds: ten seconds is a runaway, not a load.
	DefaultRenderTimeout = 10 * time.Second
	// DefaultMaxOutput bounds one rendered file. A 10,000-server HAProxy
	// config is about 1 MiB.
	DefaultMaxOutput ByteSize = 64 << 20
)

// ErrRenderLimit matches (errors.Is) the error of a render stopped for
// going over a limit, or because the templater is stopping.
var ErrRenderLimit = errors.New("render: over a render limit")

// limitErr says which limit stopped a render; it is ErrRenderLimit.
type limitErr struct{ msg string }

func (e *limitErr) Error() string        { return e.msg }
func (e *limitErr) Is(target error) bool { return target == ErrRenderLimit }

func overLimit(format string, args ...any) error { return &limitErr{fmt.Sprintf(format, args...)} }

// maxListLen bounds lists made by sprig's until and untilStep, which
// allocate the whole list before anything is written.
const maxListLen = 1 << 24

// ByteSize is a size in bytes, written in YAML as a number of bytes or
// with a unit: "64MiB", "512KiB", "1GiB" (also KB/MB/GB as powers of 1024).
type ByteSize int64

// UnmarshalYAML parses a size.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// ParseByteSize parses "1048576", "64MiB", "512KiB", "1GiB".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v <= 0 || v > (1<<40)/mult {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, optionally with KiB, MiB or GiB", s)
	}
	return ByteSize(v * mult), nil
}

func (b ByteSize) String() string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", b>>30)
	case b >= 1<<20 && b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b>>20)
	case b >= 1<<10 && b%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", b>>10)
	}
	return fmt.Sprintf("%dB", int64(b))
}

// limits are one template's render limits.
type limits struct {
	timeout time.Duration
	max     int64
}

func (c TargetConfig) limits() limits {
	l := limits{timeout: c.RenderTimeout, max: int64(c.MaxOutput)}
	if l.timeout <= 0 {
		l.timeout = DefaultRenderTimeout
	}
	if l.max <= 0 {
		l.max = int64(DefaultMaxOutput)
	}
	return l
}

// budget is what one render may still spend. The template's writer and
// a check at the top of every range iteration read it, so a runaway
// render stops at its next iteration or write.
type budget struct {
	max  int64
	stop atomic.Pointer[error] // why the render must stop; nil: go on
}

// start arms the budget's deadline and its cancellation with ctx; the
// returned func disarms both.
func (b *budget) start(ctx context.Context, l limits) func() {
	b.max = l.max
	timer := time.AfterFunc(l.timeout, func() {
		b.halt(overLimit("the render took longer than %s (render_timeout): does a range never end?", l.timeout))
	})
	stopCtx := context.AfterFunc(ctx, func() {
		b.halt(overLimit("render stopped: %v", context.Cause(ctx)))
	})
	return func() { timer.Stop(); stopCtx() }
}

func (b *budget) halt(err error) { b.stop.CompareAndSwap(nil, &err) }

// check returns why the render must stop, or nil.
func (b *budget) check() error {
	if b == nil {
		return nil
	}
	if p := b.stop.Load(); p != nil {
		return *p
	}
	return nil
}

// budgetWriter is the render's output: a buffer that refuses to grow past
// the budget and stops writing once the budget says stop.
type budgetWriter struct {
	buf []byte
	b   *budget
}

func (w *budgetWriter) Write(p []byte) (int, error) {
	if err := w.b.check(); err != nil {
		return 0, err
	}
	if int64(len(w.buf))+int64(len(p)) > w.b.max {
		err := overLimit("the output passed %s (max_output)", ByteSize(w.b.max))
		w.b.halt(err)
		return 0, err
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// allows reports whether n more bytes fit the budget (for functions that
// build a large string before it is written).
func (b *budget) allows(n int64) error {
	if b != nil && b.max > 0 && n > b.max {
		return overLimit("would make %d bytes, more than max_output %s", n, ByteSize(b.max))
	}
	return nil
}

// tickFunc is the function instrument calls at the top of every range
// body; its result goes to a variable, so it prints nothing.
const tickFunc = "_rewireTick"

// instrument adds a budget check at the top of every range body of every
// template in t, so that a loop that writes nothing and calls nothing
// still stops at the deadline. The check prints nothing.
func instrument(t *template.Template) {
	for _, tt := range t.Templates() {
		if tt.Tree != nil && tt.Tree.Root != nil {
			instrumentList(tt.Tree, tt.Tree.Root)
		}
	}
}

func instrumentList(tree *parse.Tree, l *parse.ListNode) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.RangeNode:
			instrumentList(tree, n.List)
			instrumentList(tree, n.ElseList)
			n.List.Nodes = append([]parse.Node{tickNode(tree, n.Position(), n.Line)}, n.List.Nodes...)
		case *parse.IfNode:
			instrumentList(tree, n.List)
			instrumentList(tree, n.ElseList)
		case *parse.WithNode:
			instrumentList(tree, n.List)
			instrumentList(tree, n.ElseList)
		case *parse.ListNode:
			instrumentList(tree, n)
		}
	}
}

// tickNode is {{ $_rewireTick := _rewireTick }}: a declaration, which
// text/template evaluates without printing.
func tickNode(tree *parse.Tree, pos parse.Pos, line int) parse.Node {
	id := parse.NewIdentifier(tickFunc).SetTree(tree).SetPos(pos)
	cmd := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos, Args: []parse.Node{id}}
	v := &parse.VariableNode{NodeType: parse.NodeVariable, Pos: pos, Ident: []string{"$" + tickFunc}}
	pipe := &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Line: line, Decl: []*parse.VariableNode{v}, Cmds: []*parse.CommandNode{cmd}}
	return &parse.ActionNode{NodeType: parse.NodeAction, Pos: pos, Line: line, Pipe: pipe}
}

// limitError turns a render stopped by its budget into the budget's
// reason, with where the template was when it stopped.
func limitError(err error, b *budget) error {
	stop := b.check()
	if stop == nil || !errors.Is(err, ErrRenderLimit) {
		return err
	}
	var ee template.ExecError
	if errors.As(err, &ee) {
		where, _, _ := strings.Cut(ee.Error(), ": executing")
		return fmt.Errorf("%w (%s)", stop, strings.TrimPrefix(where, "template: "))
	}
	return stop
}
