package render_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/testutil"
	"github.com/rewire/rewire/registry/schema"
	"github.com/rewire/rewire/render"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var keys = schema.Keys{Prefix: "/rewire"}

// snapshot is testutil.Snapshot at rev 7.
func snapshot(t testing.TB, kv map[string]string) (*schema.Snapshot, []string) {
	t.Helper()
	return testutil.Snapshot(t, keys, kv, 7)
}

// readInput reads a JSON object of etcd key → value.
func readInput(t testing.TB, path string) map[string]string {
	t.Helper()
	return testutil.ReadKV(t, path)
}

// renderTestdata renders testdata/NAME.tmpl against NAME.input.json. A
// parse or execution error becomes the output, so that error messages are
// golden too.
func renderTestdata(t *testing.T, name string) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("testdata", name+".tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := snapshot(t, readInput(t, filepath.Join("testdata", name+".input.json")))
	tmpl, err := render.Parse(name+".tmpl", string(text))
	if err != nil {
		return "parse error: " + err.Error() + "\n"
	}
	out, err := render.Execute(tmpl, snap, keys)
	if err != nil {
		return "execute error: " + err.Error() + "\n"
	}
	return string(out)
}

// TestGolden renders every testdata/NAME.tmpl against NAME.input.json and
// compares with NAME.golden; go test ./render -update rewrites them.
func TestGolden(t *testing.T) {
	tmpls, err := filepath.Glob("testdata/*.tmpl")
	if err != nil || len(tmpls) == 0 {
		t.Fatalf("no testdata/*.tmpl: %v", err)
	}
	for _, path := range tmpls {
		name := strings.TrimSuffix(filepath.Base(path), ".tmpl")
		t.Run(name, func(t *testing.T) {
			got := renderTestdata(t, name)
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test ./render -update creates it)", err)
			}
			if got != string(want) {
				t.Errorf("Render(%q) = %q, want %q", name, got, want)
			}
		})
	}
}

// TestGoldenErrors pins what the error goldens must say, so that -update
// cannot quietly accept a worse message.
func TestGoldenErrors(t *testing.T) {
	tests := []struct {
		name string
		want []string // substrings of the output
	}{
		{"key_missing", []string{"execute error: ", "key_missing.tmpl:3:", "/rewire/app/missing", "does not exist"}},
		{"key_outside_prefix", []string{"execute error: ", "key_outside_prefix.tmpl:3:", `"/elsewhere/secret"`, "outside the watched prefix /rewire/"}},
		{"service_bad_filter", []string{"execute error: ", "service_bad_filter.tmpl:3:", `service "web"`, `"passing,sick"`}},
		{"exec_error", []string{"execute error: ", "exec_error.tmpl:3:", "index out of range"}},
		{"parse_error", []string{"parse error: ", "parse_error.tmpl:4:", "missing value for if"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := renderTestdata(t, tc.name)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("Render(%q) = %q, want it to contain %q", tc.name, got, w)
				}
			}
		})
	}
}

func TestInvalidRecordsSkipped(t *testing.T) {
	_, rejected := snapshot(t, readInput(t, "testdata/invalid_records.input.json"))
	want := []string{"/rewire/services/web/bad-1", "/rewire/services/web/bad-2"}
	if !slices.Equal(rejected, want) {
		t.Errorf("keys rejected by Put = %q, want %q", rejected, want)
	}
	got := renderTestdata(t, "invalid_records")
	for _, s := range []string{"bad-1", "bad-2", "10.9.9", "evil"} {
		if strings.Contains(got, s) {
			t.Errorf("Render(%q) = %q, want no %q", "invalid_records", got, s)
		}
	}
}

// TestExecute covers the functions' argument handling, one template each.
func TestExecute(t *testing.T) {
	snap, _ := snapshot(t, map[string]string{
		"/rewire/app/motd":              "hi",
		"/rewire/app/list/a":            "1",
		"/rewire/services/web/web-1":    `{"v":1,"service":"web","id":"web-1","address":"10.0.0.1","port":80,"health":{"shallow":"passing"}}`,
		"/rewire/services/web/web-2":    `{"v":1,"service":"web","id":"web-2","address":"10.0.0.2","port":80,"health":{"shallow":"critical"}}`,
		"/rewire/maintenance/web/web-1": `{"reason":"x","by":"y","since":"2026-11-21T00:00:00Z"}`,
		"/rewirefoo/app/motd":           "sibling prefix",
	})
	tests := []struct {
		name, text string
		want       string // output, when wantErr is ""
		wantErr    string // substring of the error
	}{
		{name: "key", text: `{{ key "app/motd" }}`, want: "hi"},
		{name: "sprig join wins over go-sockaddr join", text: `{{ join "," (list "a" "b") }}`, want: "a,b"},
		{name: "key root slash", text: `{{ key "/rewire/app/motd" }}`, want: "hi"},
		{name: "key sibling prefix", text: `{{ key "/rewirefoo/app/motd" }}`, wantErr: "outside the watched prefix"},
		{name: "key outside", text: `{{ key "/etc/passwd" }}`, wantErr: `key "/etc/passwd" is outside the watched prefix /rewire/`},
		{name: "keyOrDefault outside", text: `{{ keyOrDefault "/etc/passwd" "x" }}`, wantErr: "outside the watched prefix"},
		{name: "ls outside", text: `{{ ls "/etc" }}`, wantErr: "outside the watched prefix"},
		{name: "tree outside", text: `{{ tree "/etc" }}`, wantErr: "outside the watched prefix"},
		{name: "key missing", text: "a\nb {{ key \"app/nope\" }}", wantErr: `t.tmpl:2:`},
		{name: "key missing names key", text: `{{ key "app/nope" }}`, wantErr: "key /rewire/app/nope does not exist"},
		{name: "tree", text: `{{ range tree "app" }}{{ .Key }}={{ .Value }};{{ end }}`, want: "list/a=1;motd=hi;"},
		{name: "ls", text: `{{ range ls "app" }}{{ .Key }};{{ end }}`, want: "motd;"},
		{name: "service", text: `{{ len (service "web") }}`, want: "0"},
		{name: "service any keeps maintenance out", text: `{{ range service "web" "any" }}{{ .ID }}{{ end }}`, want: "web-2"},
		{name: "service critical", text: `{{ range service "web" "critical" }}{{ .ID }}{{ end }}`, want: "web-2"},
		{name: "service empty filter", text: `{{ service "web" "" }}`, wantErr: `status filter ""`},
		{name: "service two filters", text: `{{ service "web" "any" "passing" }}`, wantErr: "at most one status filter"},
		{name: "service uppercase", text: `{{ service "web" "Passing" }}`, wantErr: `status filter "Passing"`},
		{name: "instances", text: `{{ range instances "web" }}{{ .ID }}:{{ .Maintenance }},{{ .Routable }};{{ end }}`, want: "web-1:true,false;web-2:false,false;"},
		{name: "services", text: `{{ range services }}{{ .Name }}{{ end }}`, want: "web"},
		{name: "sprig upper", text: `{{ key "app/motd" | upper }}`, want: "HI"},
		{name: "sprig fail", text: "\n{{ fail \"no way\" }}", wantErr: "t.tmpl:2:"},
		{name: "missing field", text: `{{ range service "web" "any" }}{{ .Nope }}{{ end }}`, wantErr: "can't evaluate field Nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := render.Parse("t.tmpl", tc.text)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.text, err)
			}
			out, err := render.Execute(tmpl, snap, keys)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Render(%q) error = %v, want %q", tc.text, err, tc.want)
			case tc.wantErr == "" && string(out) != tc.want:
				t.Errorf("Render(%q) = %q, want %q", tc.text, out, tc.want)
			case tc.wantErr != "" && err == nil:
				t.Errorf("Render(%q) = %q, want an error containing %q", tc.text, out, tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("Render(%q) error = %q, want it to contain %q", tc.text, err, tc.wantErr)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, text, wantErr string }{
		{"unclosed action", "a\n{{ key \"x\"", "p.tmpl:2:"},
		{"unknown function", "a\nb\n{{ nosuch }}", `p.tmpl:3: function "nosuch" not defined`},
		{"unmatched end", "{{ end }}", "p.tmpl:1:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render.Parse("p.tmpl", tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%q) error = %v, want one containing %q", tc.text, err, tc.wantErr)
			}
		})
	}
}

// --- Target: real files in t.TempDir(), real /bin/sh commands. ---

// shq quotes s for /bin/sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// msgSnap returns a snapshot where app/msg is msg.
func msgSnap(t testing.TB, msg string) *schema.Snapshot {
	t.Helper()
	s, _ := snapshot(t, map[string]string{"/rewire/app/msg": msg})
	return s
}

// newTarget writes the template text into dir/site.tmpl and returns a
// Target rendering it into dest.
func newTarget(t *testing.T, text, dest string, cfg render.TargetConfig) *render.Target {
	t.Helper()
	src := filepath.Join(t.TempDir(), "site.tmpl")
	if err := os.WriteFile(src, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Name, cfg.Source, cfg.Destination = "site", src, dest
	tg, err := render.NewTarget(cfg, render.Options{Keys: keys})
	if err != nil {
		t.Fatalf("NewTarget: %v", err)
	}
	return tg
}

const msgTmpl = "# site\nmsg={{ key \"app/msg\" }}\n"

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// countLines returns the number of lines in path; 0 if it does not exist.
func countLines(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

// dirNames returns the names in dir, sorted: staged files must never be
// left behind.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// asError returns err as a *render.Error with the wanted stage, or fails.
func asError(t *testing.T, err error, stage render.Stage) *render.Error {
	t.Helper()
	var re *render.Error
	if !errors.As(err, &re) {
		t.Fatalf("Apply error = %v (%T), want a *render.Error", err, err)
	}
	if re.Stage != stage || re.Template != "site" {
		t.Fatalf("Apply error stage, template = %q, %q, want %q, %q (%v)", re.Stage, re.Template, stage, "site", err)
	}
	return re
}

func TestTargetWritesFileWithMode(t *testing.T) {
	tests := []struct {
		name string
		mode render.FileMode
		want os.FileMode
	}{
		{"default", 0, 0o644},
		{"0600", 0o600, 0o600},
		{"0640", 0o640, 0o640},
		{"0755", 0o755, 0o755},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dest := filepath.Join(dir, "site.conf")
			tg := newTarget(t, msgTmpl, dest, render.TargetConfig{Mode: tc.mode})
			changed, err := tg.Apply(t.Context(), msgSnap(t, "hello"))
			if err != nil || !changed {
				t.Fatalf("Apply(%q) = %v, %v, want true, nil", "hello", changed, err)
			}
			if got, want := readFile(t, dest), "# site\nmsg=hello\n"; got != want {
				t.Errorf("Apply(%q) wrote %q, want %q", "hello", got, want)
			}
			fi, err := os.Stat(dest)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tc.want {
				t.Errorf("Apply(%q) wrote mode %v, want %v", "hello", fi.Mode().Perm(), tc.want)
			}
			if names := dirNames(t, dir); !slices.Equal(names, []string{"site.conf"}) {
				t.Errorf("directory holds %q after Apply, want only site.conf", names)
			}
		})
	}
}

func TestTargetUnchangedLeavesFileAlone(t *testing.T) {
	dir, cmds := t.TempDir(), t.TempDir()
	dest := filepath.Join(dir, "site.conf")
	checks, reloads := filepath.Join(cmds, "checks"), filepath.Join(cmds, "reloads")
	tg := newTarget(t, msgTmpl, dest, render.TargetConfig{
		Check:  render.Shell("echo check >> " + shq(checks)),
		Reload: render.Shell("echo reload >> " + shq(reloads)),
	})
	if changed, err := tg.Apply(t.Context(), msgSnap(t, "same")); err != nil || !changed {
		t.Fatalf("first Apply = %v, %v, want true, nil", changed, err)
	}
	// An old mtime: any rewrite would set it to now.
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(dest, old, old); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	// The same bytes from a later revision: nothing to do.
	changed, err := tg.Apply(t.Context(), msgSnap(t, "same"))
	if err != nil || changed {
		t.Fatalf("second Apply with equal bytes = %v, %v, want false, nil", changed, err)
	}
	after, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Errorf("Apply with equal bytes replaced the file (inode changed)")
	}
	if !after.ModTime().Equal(old) {
		t.Errorf("Apply with equal bytes: mtime = %v, want %v", after.ModTime(), old)
	}
	if n := countLines(t, checks); n != 1 {
		t.Errorf("check ran %d times, want 1 (not again for equal bytes)", n)
	}
	if n := countLines(t, reloads); n != 1 {
		t.Errorf("reload ran %d times, want 1 (not again for equal bytes)", n)
	}
}

func TestTargetFailedCheckKeepsOldFile(t *testing.T) {
	dir, cmds := t.TempDir(), t.TempDir()
	dest := filepath.Join(dir, "site.conf")
	reloads := filepath.Join(cmds, "reloads")
	const old = "# previous\nmsg=old\n"
	writeFile(t, dest, old)
	tg := newTarget(t, msgTmpl, dest, render.TargetConfig{
		Check:  render.Shell(`echo "checking $(grep msg= {{ .Staged }})"; echo 'config is bad' >&2; exit 1`),
		Reload: render.Shell("echo reload >> " + shq(reloads)),
	})
	changed, err := tg.Apply(t.Context(), msgSnap(t, "new"))
	if changed || err == nil {
		t.Fatalf("Apply with a failing check = %v, %v, want false and an error", changed, err)
	}
	re := asError(t, err, render.StageCheck)
	if !errors.Is(err, render.ErrCommand) {
		t.Errorf("Apply error = %v, want it to wrap render.ErrCommand", err)
	}
	for _, w := range []string{"config is bad", "checking msg=new"} {
		if !strings.Contains(re.Output, w) {
			t.Errorf("Error.Output = %q, want it to contain %q", re.Output, w)
		}
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Error() = %q, want it to contain the command output %q", err, w)
		}
	}
	if got := readFile(t, dest); got != old {
		t.Errorf("destination after a failed check = %q, want the old %q", got, old)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"site.conf"}) {
		t.Errorf("directory holds %q after a failed check, want only site.conf", names)
	}
	if n := countLines(t, reloads); n != 0 {
		t.Errorf("reload ran %d times after a failed check, want 0", n)
	}
}

func TestTargetCheckTimeout(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "site.conf")
	writeFile(t, dest, "old\n")
	tg := newTarget(t, msgTmpl, dest, render.TargetConfig{
		Check:          render.Shell("sleep 30"),
		CommandTimeout: 100 * time.Millisecond,
	})
	t0 := time.Now()
	_, err := tg.Apply(t.Context(), msgSnap(t, "new"))
	asError(t, err, render.StageCheck)
	if !strings.Contains(err.Error(), "timed out after 100ms") {
		t.Errorf("Apply error = %q, want it to say the check timed out", err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("Apply took %v with a 100ms command timeout", d)
	}
	if got := readFile(t, dest); got != "old\n" {
		t.Errorf("destination after a timed-out check = %q, want %q", got, "old\n")
	}
}

func TestTargetExecuteErrorKeepsOldFile(t *testing.T) {
	dir, cmds := t.TempDir(), t.TempDir()
	dest := filepath.Join(dir, "site.conf")
	checks := filepath.Join(cmds, "checks")
	const old = "# previous\nmsg=old\n"
	writeFile(t, dest, old)
	tg := newTarget(t, "# site\n{{ key \"app/missing\" }}\n", dest, render.TargetConfig{
		Check: render.Shell("echo check >> " + shq(checks)),
	})
	changed, err := tg.Apply(t.Context(), msgSnap(t, "new"))
	if changed || err == nil {
		t.Fatalf("Apply with an execution error = %v, %v, want false and an error", changed, err)
	}
	asError(t, err, render.StageExecute)
	for _, w := range []string{"render: template site: execute:", "site.tmpl:2:", "/rewire/app/missing"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Apply error = %q, want it to contain %q", err, w)
		}
	}
	if got := readFile(t, dest); got != old {
		t.Errorf("destination after an execution error = %q, want the old %q", got, old)
	}
	if n := countLines(t, checks); n != 0 {
		t.Errorf("check ran %d times after an execution error, want 0", n)
	}
}

func TestTargetFailedReloadRestoresOldFile(t *testing.T) {
	tests := []struct {
		name string
		// reload fails when the destination holds this ("" for never, "msg=" for always)
		failOn      string
		wantErr     string
		wantReloads int      // in Apply(bad) alone
		wantSeen    []string // the destination's msg= line at each reload in Apply(bad)
	}{
		{
			name: "reload of the restored file succeeds", failOn: "msg=bad",
			wantErr: "reload refused", wantReloads: 2, wantSeen: []string{"msg=bad", "msg=good"},
		},
		{
			name: "reload of the restored file fails too", failOn: "msg=",
			wantErr: "reload of the restored previous file also failed", wantReloads: 2, wantSeen: []string{"msg=bad", "msg=good"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, cmds := t.TempDir(), t.TempDir()
			dest := filepath.Join(dir, "site.conf")
			reloads, seen := filepath.Join(cmds, "reloads"), filepath.Join(cmds, "seen")
			const good = "# previous\nmsg=good\n"
			writeFile(t, dest, good)
			if err := os.Chmod(dest, 0o600); err != nil {
				t.Fatal(err)
			}
			tg := newTarget(t, msgTmpl, dest, render.TargetConfig{
				Mode: 0o600,
				Reload: render.Shell(fmt.Sprintf(
					`echo reload >> %s; grep msg= {{ .Destination }} >> %s; if grep -q %s {{ .Destination }}; then echo 'reload refused' >&2; exit 1; fi`,
					shq(reloads), shq(seen), shq(tc.failOn))),
			})
			changed, err := tg.Apply(t.Context(), msgSnap(t, "bad"))
			if changed || err == nil {
				t.Fatalf("Apply with a failing reload = %v, %v, want false and an error", changed, err)
			}
			re := asError(t, err, render.StageReload)
			if !strings.Contains(re.Output, "reload refused") {
				t.Errorf("Error.Output = %q, want the reload's output", re.Output)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Apply error = %q, want it to contain %q", err, tc.wantErr)
			}
			if got := readFile(t, dest); got != good {
				t.Errorf("destination after a failed reload = %q, want the previous %q restored", got, good)
			}
			if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("restored destination: %v, %v, want mode 0600", fi.Mode().Perm(), err)
			}
			if n := countLines(t, reloads); n != tc.wantReloads {
				t.Errorf("reload ran %d times, want %d (new file, then the restored one)", n, tc.wantReloads)
			}
			if got := strings.Fields(readFile(t, seen)); !slices.Equal(got, tc.wantSeen) {
				t.Errorf("reloads saw %q, want %q", got, tc.wantSeen)
			}
			if names := dirNames(t, dir); !slices.Equal(names, []string{"site.conf"}) {
				t.Errorf("directory holds %q after a failed reload, want only site.conf", names)
			}
		})
	}
}

func TestTargetCommandsSeeStagedFile(t *testing.T) {
	tests := []struct {
		name  string
		check func(pathFile, seenFile string) render.Command
	}{
		{
			name: "shell, placeholders shell-quoted",
			check: func(pathFile, seenFile string) render.Command {
				return render.Shell("printf '%s' {{ .Staged }} > " + shq(pathFile) + " && cp {{ .Staged }} " + shq(seenFile) +
					" && test ! -e {{ .Destination }}")
			},
		},
		{
			name: "argv, placeholders verbatim",
			check: func(pathFile, seenFile string) render.Command {
				return render.Command{Argv: []string{"/bin/sh", "-c", `printf '%s' "$1" > "$2" && cp "$1" "$3"`, "sh", "{{ .Staged }}", pathFile, seenFile}}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Spaces, a quote and a dollar sign: all must survive the shell.
			dir := filepath.Join(t.TempDir(), "my conf's $dir")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			cmds := t.TempDir()
			pathFile, seenFile := filepath.Join(cmds, "staged-path"), filepath.Join(cmds, "seen")
			dest := filepath.Join(dir, "site.conf")
			tg := newTarget(t, msgTmpl, dest, render.TargetConfig{Check: tc.check(pathFile, seenFile)})
			if changed, err := tg.Apply(t.Context(), msgSnap(t, "fresh")); err != nil || !changed {
				t.Fatalf("Apply = %v, %v, want true, nil", changed, err)
			}
			staged := readFile(t, pathFile)
			if filepath.Dir(staged) != dir {
				t.Errorf("check got {{ .Staged }} = %q, want a file in the destination's directory %q", staged, dir)
			}
			if !strings.HasPrefix(filepath.Base(staged), ".site.conf.") {
				t.Errorf("check got {{ .Staged }} = %q, want a hidden file named after the destination", staged)
			}
			if got, want := readFile(t, seenFile), "# site\nmsg=fresh\n"; got != want {
				t.Errorf("check saw %q in the staged file, want the new content %q", got, want)
			}
			if _, err := os.Stat(staged); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("staged file %q still exists after Apply (err %v)", staged, err)
			}
			if got, want := readFile(t, dest), "# site\nmsg=fresh\n"; got != want {
				t.Errorf("destination = %q, want %q", got, want)
			}
		})
	}
}

func TestNewTargetErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.tmpl")
	writeFile(t, bad, "line 1\n{{ range }}\n")
	good := filepath.Join(dir, "good.tmpl")
	writeFile(t, good, "ok\n")
	tests := []struct {
		name    string
		cfg     render.TargetConfig
		wantErr string
		is      error
	}{
		{name: "parse error names file and line", cfg: render.TargetConfig{Source: bad}, wantErr: "bad.tmpl:2:"},
		{name: "missing source", cfg: render.TargetConfig{Source: filepath.Join(dir, "nope.tmpl")}, is: fs.ErrNotExist},
		{name: "bad check placeholder", cfg: render.TargetConfig{Source: good, Check: render.Shell("haproxy -c -f {{ .Nope }}")}, wantErr: "Nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Name, tc.cfg.Destination = "site", filepath.Join(dir, "out")
			_, err := render.NewTarget(tc.cfg, render.Options{})
			var re *render.Error
			if !errors.As(err, &re) || re.Stage != render.StageParse {
				t.Fatalf("NewTarget(%q) = %v, want a *render.Error at stage parse", tc.name, err)
			}
			if tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("NewTarget(%q) = %q, want it to contain %q", tc.name, err, tc.wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("NewTarget(%q) = %v, want errors.Is %v", tc.name, err, tc.is)
			}
		})
	}
}

func TestTargetRelativeDestinationStagedBeside(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	seen := filepath.Join(dir, "staged-path")
	tg := newTarget(t, "x\n", "site.conf", render.TargetConfig{
		Check: render.Shell("printf '%s' {{ .Staged }} > " + shq(seen)),
	})
	if _, err := tg.Apply(t.Context(), emptySnapshot(t)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got := filepath.Dir(readFile(t, seen)); got != dir {
		t.Errorf("staged in %s, want beside the destination in %s", got, dir)
	}
	if got := readFile(t, filepath.Join(dir, "site.conf")); got != "x\n" {
		t.Errorf("destination = %q, want %q", got, "x\n")
	}
}

func emptySnapshot(t testing.TB) *schema.Snapshot {
	s, _ := snapshot(t, map[string]string{})
	return s
}

// TestDestinationEditedByHand: a file changed behind the templater's
// back is put back by the next apply, however the change hides itself:
// the same size, the modification time restored (cp -p, rsync -t), or
// another file renamed over it. A cache of what was last written, keyed
// on the file's identity, size and time, would miss some of these.
func TestDestinationEditedByHand(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "out.conf")
	src := newMemSource(t, map[string]string{"/rewire/app/msg": "hello"})
	tg := mkTarget(t, "edit", "msg {{ key \"app/msg\" }}\n", render.TargetConfig{Destination: dest}, render.Options{})
	for i, edit := range []func(){
		func() { writeFile(t, dest, "msg HELLO\n") }, // in place: same inode and size
		func() { // in place, with its modification time put back
			st, err := os.Stat(dest)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(dest, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("HELLO"), 4); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := os.Chtimes(dest, st.ModTime(), st.ModTime()); err != nil {
				t.Fatal(err)
			}
		},
		func() { // replaced: another inode, same size and time
			st, err := os.Stat(dest)
			if err != nil {
				t.Fatal(err)
			}
			tmp := dest + ".new"
			writeFile(t, tmp, "msg jello\n")
			if err := os.Chtimes(tmp, st.ModTime(), st.ModTime()); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, dest); err != nil {
				t.Fatal(err)
			}
		},
	} {
		if _, err := tg.Apply(t.Context(), src.Current()); err != nil {
			t.Fatal(err)
		}
		edit()
		changed, err := tg.Apply(t.Context(), src.Current())
		if err != nil || !changed {
			t.Fatalf("edit %d: Apply after a change by hand = %t, %v; want the file rewritten", i, changed, err)
		}
		if got := readFile(t, dest); got != "msg hello\n" {
			t.Fatalf("edit %d: destination = %q, want the rendered bytes back", i, got)
		}
	}
}
