package haproxy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestParseMemoMatchesParse: parsing through the memo of earlier parses
// gives exactly what a fresh Parse gives, over random edits of the kinds
// that matter to it: server lines changed, added and removed (line
// numbers shift), drain marks in comments, default-server lines that
// change what an unchanged server line means, and sections reordered.
func TestParseMemoMatchesParse(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var memo parseMemo
	for step := range 400 {
		text := randomConfig(rng)
		want, werr := Parse([]byte(text))
		got, gerr := parse([]byte(text), &memo)
		if fmt.Sprint(werr) != fmt.Sprint(gerr) || !reflect.DeepEqual(want, got) {
			t.Fatalf("step %d: parse with memo =\n%+v, %v\nwant\n%+v, %v\nconfig:\n%s", step, got, gerr, want, werr, text)
		}
	}
	if len(memo.lines) == 0 || len(memo.servers) == 0 {
		t.Fatal("the memo kept nothing: the test does not exercise it")
	}
}

// randomConfig draws a config from a small space, so that consecutive
// configs share most lines.
func randomConfig(rng *rand.Rand) string {
	var b strings.Builder
	b.WriteString("global\n    stats socket /tmp/a.sock level admin\ndefaults\n    mode http\n")
	if rng.IntN(3) == 0 {
		b.WriteString("    default-server weight 7 check\n")
	}
	for be := range 1 + rng.IntN(3) {
		fmt.Fprintf(&b, "backend b%d\n    balance roundrobin\n", (be+rng.IntN(2))%3)
		if rng.IntN(3) == 0 {
			fmt.Fprintf(&b, "    default-server inter %ds\n", 1+rng.IntN(2))
		}
		for i := range rng.IntN(6) {
			if rng.IntN(4) == 0 {
				continue
			}
			line := fmt.Sprintf("    server s%d 10.0.%d.%d:80", i, be, i)
			switch rng.IntN(5) {
			case 0:
				line += " disabled"
			case 1:
				line += " weight 3"
			case 2:
				line += "  # " + DrainMark
			case 3:
				line += " enabled  # passing"
			}
			b.WriteString(line + "\n")
			if rng.IntN(4) == 0 && i > 0 {
				b.WriteString("    default-server weight 2\n")
			}
		}
	}
	return b.String()
}

// BenchmarkRuntimeChange is the HAProxy side of one health flip in one
// backend of n servers, as the templater's runtime sees it: parse the new
// file (the previous one is the last parse) and diff the two.
func BenchmarkRuntimeChange(b *testing.B) {
	for _, n := range []int{200, 1000, 10000} {
		texts := [2][]byte{}
		for k := range texts {
			var sb strings.Builder
			sb.WriteString("global\n    stats socket /tmp/a.sock level admin\ndefaults\n    mode http\nbackend web\n    balance roundrobin\n    default-server check inter 2s\n")
			for i := range n {
				fmt.Fprintf(&sb, "    server web-%d 10.0.%d.%d:8080 weight 100", i, i/256, i%256)
				if i == n/2 && k == 1 {
					sb.WriteString(" disabled")
				}
				sb.WriteString("  # passing\n")
			}
			texts[k] = []byte(sb.String())
		}
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			r := NewRuntime(RuntimeConfig{}, RuntimeOptions{})
			if _, err := r.parse(texts[0]); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c := r.Change(texts[i%2], texts[(i+1)%2])
				c.parse()
				if c.planErr != nil || len(c.plan.Changes) != 1 {
					b.Fatalf("plan %+v, %v", c.plan, c.planErr)
				}
				i++
			}
		})
	}
}

// TestSpliceMatchesParseAndDiff: where the fast path for edits in place
// applies, its config and plan are exactly a fresh Parse's and Diff's;
// where it does not (a line added, a server renamed, a non-server line
// changed), it says so.
func TestSpliceMatchesParseAndDiff(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	spliced, declined := 0, 0
	for step := range 600 {
		prevText := randomConfig(rng)
		nextText := editInPlace(rng, prevText)
		prev, err := Parse([]byte(prevText))
		if err != nil || !prev.spliceable() {
			continue
		}
		cfg, plan, ok := splice([]byte(prevText), prev, []byte(nextText))
		want, err := Parse([]byte(nextText))
		if err != nil {
			if ok {
				t.Fatalf("step %d: splice accepted a config Parse rejects (%v):\n%s", step, err, nextText)
			}
			continue
		}
		if !ok {
			declined++
			continue
		}
		spliced++
		wantPlan, _ := Diff(prev, want)
		if !reflect.DeepEqual(cfg, want) {
			t.Fatalf("step %d: spliced config =\n%+v\nwant\n%+v\nprev:\n%s\nnext:\n%s", step, cfg, want, prevText, nextText)
		}
		if !reflect.DeepEqual(plan, wantPlan) {
			t.Fatalf("step %d: spliced plan = %+v, want %+v\nprev:\n%s\nnext:\n%s", step, plan, wantPlan, prevText, nextText)
		}
	}
	if spliced < 100 || declined < 20 {
		t.Fatalf("spliced %d, declined %d: the test does not exercise both ways", spliced, declined)
	}
}

// editInPlace edits some server lines of text in place, and sometimes
// makes a change the fast path must decline.
func editInPlace(rng *rand.Rand, text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "    server ") || rng.IntN(3) != 0 {
			continue
		}
		switch rng.IntN(8) {
		case 0:
			lines[i] = l + " disabled"
		case 1:
			lines[i] = strings.Replace(l, " disabled", "", 1)
		case 2:
			lines[i] = l + " weight 9"
		case 3:
			lines[i] = strings.Replace(l, ":80", ":81", 1)
		case 4:
			lines[i] = l + "  # " + DrainMark
		case 5:
			lines[i] = l + " check"
		case 6: // renamed: declined
			lines[i] = strings.Replace(l, "server s", "server t", 1)
		case 7: // a line added: declined
			lines[i] = l + "\n    server extra 10.9.9.9:80"
		}
	}
	if rng.IntN(10) == 0 {
		lines[1] = "    stats socket /tmp/b.sock level admin"
	}
	return strings.Join(lines, "\n")
}

// liveStateText is `show servers state` for n servers of backend web,
// web-0 to web-(n-1), all ready, weight 100.
func liveStateText(n int) string {
	const header = "be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port"
	var sb strings.Builder
	sb.WriteString("1\n# " + header + "\n")
	for i := range n {
		fmt.Fprintf(&sb, "3 web %d web-%d 10.0.%d.%d 2 0 100 100 12 6 3 4 6 0 0 0 - 8080 - 0 0 - - 0\n", i+1, i, i/256, i%256)
	}
	return sb.String()
}

// BenchmarkParseLiveState parses `show servers state` for n servers, as
// the runtime does to verify a live change and to save server state.
func BenchmarkParseLiveState(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		out := liveStateText(n)
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ls, err := parseLiveState(out)
				if err != nil || len(ls.States) != n {
					b.Fatal(len(ls.States), err)
				}
			}
		})
	}
}

// BenchmarkVerifySave is what the runtime does with the live state after
// every live change, under the target's apply lock: Verify it against
// the file, and write the server-state file from it (SaveState).
func BenchmarkVerifySave(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		var cfg strings.Builder
		cfg.WriteString("global\n    stats socket /tmp/x.sock level admin\n    server-state-file " + b.TempDir() + "/state\n\n")
		cfg.WriteString("defaults\n    mode http\n    load-server-state-from-file global\n\nbackend web\n")
		for i := range n {
			fmt.Fprintf(&cfg, "    server web-%d 10.0.%d.%d:8080 weight 100\n", i, i/256, i%256)
		}
		c, err := Parse([]byte(cfg.String()))
		if err != nil {
			b.Fatal(err)
		}
		ls, err := parseLiveState(liveStateText(n))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("verify/servers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := ls.Verify(c); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("save/servers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if files, err := ls.SaveState(c); err != nil || len(files) != 1 {
					b.Fatal(files, err)
				}
			}
		})
	}
}

// TestAppendFieldsMatchesFields: the live state's splitter gives what
// strings.Fields gives, on random lines of spaces, tabs, other ASCII
// white space, words and non-ASCII runes (white space among them).
func TestAppendFieldsMatchesFields(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{" ", "  ", "\t", "\r", "\v", "\f", "a", "bc", "-", "9", "é", "\u00a0", "\u2003"}
	for range 5000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		line := b.String()
		prefix := []string{"kept"}
		got := appendFields(slices.Clone(prefix), line)
		if want := append(slices.Clone(prefix), strings.Fields(line)...); !slices.Equal(got, want) {
			t.Fatalf("appendFields(%q) = %q, want %q", line, got, want)
		}
	}
}

// TestParseLiveStateErrors: every malformed answer is refused with what
// is wrong, and a header without rows is an empty state.
func TestParseLiveStateErrors(t *testing.T) {
	const header = "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_fqdn srv_port\n"
	const row = "3 web 1 web-0 10.0.0.1 2 0 100 100 - 8080\n"
	tests := []struct{ out, want string }{
		{"", "empty answer"},
		{"2\n" + header, `format "2", want 1`},
		{"1\n" + row, "no header before"},
		{"1\n" + header + "3 web 1\n", "3 fields for 11 columns"},
		{"1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_fqdn\n3 web 1 web-0 10.0.0.1 2 0 100 100 -\n", "no column srv_port"},
		{"1\n" + header + "3 web 1 web-0 10.0.0.1 2 0 x 100 - 8080\n", `srv_uweight = "x"`},
		// Columns are read in order: a bad number before a missing column
		// is what is wrong first.
		{"1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_fqdn\nx web 1 web-0 10.0.0.1 2 0 100 100 -\n", `be_id = "x"`},
	}
	for _, tc := range tests {
		_, err := parseLiveState(tc.out)
		if err == nil || !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseLiveState(%q) = %v, want a protocol error naming %q", tc.out, err, tc.want)
		}
	}
	ls, err := parseLiveState("1\n# be_id be_name\n")
	if err != nil || len(ls.States) != 0 {
		t.Errorf("header only: %v, %v; want no state and no error", ls, err)
	}
	ls, err = parseLiveState("1\n" + header + row + "\n" + row)
	if err != nil || len(ls.States) != 2 || ls.States[1].Name != "web-0" || ls.States[1].FQDN != "" || ls.States[1].Port != 8080 || ls.States[0].Field("srv_name") != "web-0" {
		t.Errorf("two rows: %+v, %v", ls, err)
	}
}

// TestSaveStateWritesOnlyWhatTheConfigSays: a running server is written to
// the state file only when its port reads exactly as the config's (a
// "08080" is another text, and the old comparison was of text), and each
// state file holds only its own backends' lines.
func TestSaveStateWritesOnlyWhatTheConfigSays(t *testing.T) {
	dir := t.TempDir()
	cfg, err := Parse([]byte("global\n    server-state-base " + dir + "\n\ndefaults\n    load-server-state-from-file local\n\n" +
		"backend a\n    server s1 10.0.0.1:8080 weight 5\n    server s2 10.0.0.2:8080 weight 5 disabled\n\n" +
		"backend b\n    server s1 10.0.0.3:8080 weight 7\n"))
	if err != nil {
		t.Fatal(err)
	}
	const header = "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_fqdn srv_port\n"
	ls, err := parseLiveState("1\n" + header +
		"1 a 1 s1 10.0.0.1 2 0 1 1 - 8080\n" +
		"1 a 2 s2 10.0.0.2 2 0 1 1 - 08080\n" +
		"2 b 1 s1 10.0.0.3 2 0 1 1 - 8080\n")
	if err != nil {
		t.Fatal(err)
	}
	files, err := ls.SaveState(cfg)
	if err != nil || len(files) != 2 {
		t.Fatalf("SaveState = %v, %v; want two files", files, err)
	}
	want := map[string]string{
		"a": "1\n" + header + "1 a 1 s1 10.0.0.1 2 0 5 5 - 8080\n",
		"b": "1\n" + header + "2 b 1 s1 10.0.0.3 2 0 7 7 - 8080\n",
	}
	for _, f := range files {
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if w := want[filepath.Base(f)]; string(got) != w {
			t.Errorf("%s = %q, want %q", f, got, w)
		}
	}
}
