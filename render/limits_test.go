package render_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rewire/rewire/render"
)

// loopTmpl loops for ever (10^15 empty iterations) once app/loop is set,
// and renders a plain line before that: a template that goes bad after
// it was deployed.
const loopTmpl = `{{ if keyOrDefault "app/loop" "" }}{{ range 1000000000000000 }}{{ end }}{{ end }}ok {{ keyOrDefault "app/msg" "" }}
`

func TestRenderTimeout(t *testing.T) {
	tests := []struct {
		name, text string
	}{
		{"empty range body", `{{ range 1000000000000000 }}{{ end }}`},
		{"nested ranges", `{{ range 1000000 }}{{ range 1000000 }}{{ end }}{{ end }}`},
		{"range inside a defined template", `{{ define "x" }}{{ range 1000000000000000 }}{{ if false }}{{ end }}{{ end }}{{ end }}{{ template "x" }}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg := mkTarget(t, "loop", tc.text, render.TargetConfig{RenderTimeout: 50 * time.Millisecond}, render.Options{})
			writeFile(t, tg.Destination(), "last good\n")
			src := newMemSource(t, nil)
			_, err := tg.Apply(t.Context(), src.Current())
			if !errors.Is(err, render.ErrRenderLimit) || !strings.Contains(err.Error(), "render_timeout") {
				t.Fatalf("Apply = %v, want a render_timeout error", err)
			}
			if !strings.Contains(err.Error(), "loop.tmpl:1") {
				t.Errorf("Apply = %v, want it to name the template's file and line", err)
			}
			if got := readFile(t, tg.Destination()); got != "last good\n" {
				t.Errorf("destination = %q, want the last good file", got)
			}
			st := tg.Status()
			if st.Error == "" || st.FailingSince.IsZero() {
				t.Errorf("Status() = error %q since %v, want failing with a time", st.Error, st.FailingSince)
			}
		})
	}
}

func TestRenderMaxOutput(t *testing.T) {
	tests := []struct {
		name, text string
	}{
		// 1 GiB in 1 MiB writes.
		{"1 GiB in writes", `{{ $x := repeat 1048576 "x" }}{{ range 1024 }}{{ $x }}{{ end }}`},
		// 1 GiB built in one string before anything is written.
		{"1 GiB in one repeat", `{{ repeat 1073741824 "x" }}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg := mkTarget(t, "big", tc.text, render.TargetConfig{MaxOutput: 4 << 20}, render.Options{})
			writeFile(t, tg.Destination(), "last good\n")
			src := newMemSource(t, nil)
			_, err := tg.Apply(t.Context(), src.Current())
			if !errors.Is(err, render.ErrRenderLimit) || !strings.Contains(err.Error(), "max_output") {
				t.Fatalf("Apply = %v, want a max_output error", err)
			}
			if got := readFile(t, tg.Destination()); got != "last good\n" {
				t.Errorf("destination = %q, want the last good file", got)
			}
		})
	}
	t.Run("until", func(t *testing.T) {
		tg := mkTarget(t, "until", `{{ range until 1000000000000 }}{{ end }}`, render.TargetConfig{}, render.Options{})
		if _, err := tg.Render(newMemSource(t, nil).Current()); err == nil || !strings.Contains(err.Error(), "until") {
			t.Errorf("Render = %v, want until refused", err)
		}
	})
}

// TestRunnerLoopingTemplate: one template loops for ever after a key
// change; another keeps applying changes, the runner stops when asked, and
// the looping one reports why it fails.
func TestRunnerLoopingTemplate(t *testing.T) {
	src := newMemSource(t, nil)
	bad := mkTarget(t, "bad", loopTmpl, render.TargetConfig{RenderTimeout: 200 * time.Millisecond}, render.Options{})
	good := mkTarget(t, "good", `msg {{ keyOrDefault "app/msg" "" }}`+"\n", render.TargetConfig{}, render.Options{})
	r := render.NewRunner(render.RunnerOptions{Source: src, Targets: []*render.Target{bad, good}})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	waitUntil(t, 10*time.Second, "both templates rendered", func() bool {
		b, _ := os.ReadFile(bad.Destination())
		g, _ := os.ReadFile(good.Destination())
		return string(b) == "ok \n" && string(g) == "msg \n"
	})

	src.change(t, map[string]string{"/rewire/app/loop": "yes"})
	waitUntil(t, 10*time.Second, "the looping template failing", func() bool {
		return strings.Contains(bad.Status().Error, "render_timeout")
	})
	for i := range 3 {
		msg := strings.Repeat("x", i+1)
		src.change(t, map[string]string{"/rewire/app/msg": msg})
		waitUntil(t, 10*time.Second, "the good template applying "+msg, func() bool {
			b, _ := os.ReadFile(good.Destination())
			return string(b) == "msg "+msg+"\n"
		})
	}
	if got := readFile(t, bad.Destination()); got != "ok \n" {
		t.Errorf("looping template's destination = %q, want its last good file", got)
	}

	// Stopping while a render loops: Run returns without waiting for the
	// render timeout (made long here so that only cancellation can end it).
	bad2 := mkTarget(t, "bad2", loopTmpl, render.TargetConfig{RenderTimeout: time.Hour}, render.Options{})
	r2 := render.NewRunner(render.RunnerOptions{Source: src, Targets: []*render.Target{bad2}})
	ctx2, cancel2 := context.WithCancel(t.Context())
	done2 := make(chan struct{})
	go func() {
		defer close(done2)
		r2.Run(ctx2)
	}()
	waitUntil(t, 10*time.Second, "a goroutine looping in the template", func() bool {
		buf := make([]byte, 1<<20)
		return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "text/template.(*state).walkRange")
	})
	cancel2()
	select {
	case <-done2:
	case <-time.After(time.Minute):
		t.Fatal("Runner.Run did not return after cancel while a render looped (render timeout 1h)")
	}
}
