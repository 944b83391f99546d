package templater_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/testutil"
	"github.com/rewire/rewire/registry/schema"
	"github.com/rewire/rewire/render"
	"github.com/rewire/rewire/templater"
)

var keys = schema.Keys{Prefix: "/rewire"}

// source is a registry held in memory, changed by the test.
type source struct {
	mu      sync.Mutex
	x       *schema.Index
	rev     int64
	cur     *schema.Snapshot
	updates chan struct{}
}

func newSource() *source {
	s := &source{x: schema.NewIndex(keys), updates: make(chan struct{}, 1)}
	s.cur = s.x.Snapshot(0)
	return s
}

func (s *source) Current() *schema.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *source) Updates() <-chan struct{} { return s.updates }

func (s *source) put(t *testing.T, key, value string) {
	t.Helper()
	s.mu.Lock()
	if err := s.x.Put(keys.Root()+key, []byte(value)); err != nil {
		s.mu.Unlock()
		t.Fatal(err)
	}
	s.rev++
	s.cur = s.x.Snapshot(s.rev)
	s.mu.Unlock()
	select {
	case s.updates <- struct{}{}:
	default:
	}
}

// setup is a config directory: the "config file" lists template names, one
// a line; each NAME.tmpl renders into NAME.out.
type setup struct {
	dir, config   string
	src           *source
	loads         int
	renderTimeout time.Duration // 0: the default
}

func newSetup(t *testing.T, templates map[string]string, names ...string) *setup {
	t.Helper()
	s := &setup{dir: t.TempDir(), src: newSource()}
	for name, text := range templates {
		write(t, filepath.Join(s.dir, name+".tmpl"), text)
	}
	s.config = write(t, filepath.Join(s.dir, "templater.conf"), strings.Join(names, "\n"))
	return s
}

func write(t *testing.T, path, text string) string {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// load parses the config file as the binary's loader would: every named
// template, or an error naming what is wrong.
func (s *setup) load() (templater.Loaded, error) {
	s.loads++
	text, err := os.ReadFile(s.config)
	if err != nil {
		return templater.Loaded{}, err
	}
	var l templater.Loaded
	for name := range strings.FieldsSeq(string(text)) {
		if strings.HasPrefix(name, "!") {
			return templater.Loaded{}, errors.New("templater.conf: " + name + ": invalid")
		}
		tg, err := render.NewTarget(render.TargetConfig{Name: name, Source: filepath.Join(s.dir, name+".tmpl"),
			Destination: filepath.Join(s.dir, name+".out"), RenderTimeout: s.renderTimeout}, render.Options{Keys: keys})
		if err != nil {
			return templater.Loaded{}, err
		}
		l.Targets = append(l.Targets, tg)
	}
	return l, nil
}

// start runs an Engine until the test ends; stop ends it and waits.
func (s *setup) start(t *testing.T) (*templater.Engine, func()) {
	t.Helper()
	first, err := s.load()
	if err != nil {
		t.Fatal(err)
	}
	e := templater.New(templater.Options{Source: s.src, ConfigPath: s.config, Load: s.load}, first)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("Engine.Run did not return 30s after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return e, stop
}

func (s *setup) out(name string) string {
	b, _ := os.ReadFile(filepath.Join(s.dir, name+".out"))
	return string(b)
}

const msgTmpl = `msg={{ keyOrDefault "app/msg" "" }}` + "\n"

func TestEngineReload(t *testing.T) {
	s := newSetup(t, map[string]string{"a": msgTmpl, "b": "b " + msgTmpl}, "a")
	e, _ := s.start(t)
	testutil.WaitFor(t, 10*time.Second, "a rendered", func() bool { return s.out("a") == "msg=\n" })

	// The config gains b: the file watch reloads it, no signal needed.
	write(t, s.config, "a\nb")
	testutil.WaitFor(t, 10*time.Second, "b rendered after the config edit", func() bool { return s.out("b") == "b msg=\n" })
	if n := len(e.Targets()); n != 2 {
		t.Errorf("Targets() = %d, want 2", n)
	}

	// A broken config is rejected; the running one keeps applying changes.
	write(t, s.config, "a\nb\n!broken")
	e.Reload()
	testutil.WaitFor(t, 10*time.Second, "ConfigError set", func() bool { return strings.Contains(e.ConfigError(), "!broken") })
	s.src.put(t, "app/msg", "hi")
	testutil.WaitFor(t, 10*time.Second, "both templates applying the change", func() bool {
		return s.out("a") == "msg=hi\n" && s.out("b") == "b msg=hi\n"
	})

	// Back to the running config: nothing is reloaded, the error clears.
	loads := s.loads
	write(t, s.config, "a\nb")
	e.Reload()
	testutil.WaitFor(t, 10*time.Second, "ConfigError cleared", func() bool { return e.ConfigError() == "" })
	if s.loads != loads {
		t.Errorf("the config was loaded %d more times, want none: it is the running one", s.loads-loads)
	}
}

func TestEngineSourceEdit(t *testing.T) {
	s := newSetup(t, map[string]string{"a": msgTmpl}, "a")
	e, _ := s.start(t)
	testutil.WaitFor(t, 10*time.Second, "a rendered", func() bool { return s.out("a") == "msg=\n" })
	write(t, filepath.Join(s.dir, "a.tmpl"), "edited "+msgTmpl)
	testutil.WaitFor(t, 10*time.Second, "the edited source rendered", func() bool { return s.out("a") == "edited msg=\n" })

	// A source that does not parse keeps the previous one running.
	write(t, filepath.Join(s.dir, "a.tmpl"), "{{ broken")
	testutil.WaitFor(t, 10*time.Second, "the parse error in status", func() bool {
		ts := e.Targets()
		return len(ts) == 1 && ts[0].Status().ParseError != ""
	})
	s.src.put(t, "app/msg", "still")
	testutil.WaitFor(t, 10*time.Second, "the previous source applying a change", func() bool { return s.out("a") == "edited msg=still\n" })
}

// TestEngineShutdown: Run returns when its context ends, even with a
// render looping for ever (its render_timeout is an hour here), and leaves
// no goroutine behind (goleak in TestMain).
func TestEngineShutdown(t *testing.T) {
	s := newSetup(t, map[string]string{
		"loop": `{{ if keyOrDefault "app/loop" "" }}{{ range 1000000000000000 }}{{ end }}{{ end }}ok` + "\n",
		"a":    msgTmpl,
	}, "loop", "a")
	s.renderTimeout = time.Hour // only the context can end the loop
	_, stop := s.start(t)
	testutil.WaitFor(t, 10*time.Second, "both rendered", func() bool { return s.out("loop") == "ok\n" && s.out("a") == "msg=\n" })
	s.src.put(t, "app/loop", "yes")
	testutil.WaitFor(t, 10*time.Second, "a goroutine looping in the template", func() bool {
		buf := make([]byte, 1<<20)
		return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "text/template.(*state).walkRange")
	})
	stop()
	if got := s.out("loop"); got != "ok\n" {
		t.Errorf("looping template's file after shutdown = %q, want its last good one", got)
	}
}
