package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// event is one line of `go test -json` (see `go doc test2json`).
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output events
	Test       string
	Output     string
	Elapsed    float64
}

// skip is a skipped test and the lines it logged.
type skip struct {
	pkg, test string
	reason    []string
}

// summary follows the events of a test run. It prints package-level
// output as it comes, the output of a failing test when its top-level
// test ends, and keeps the skipped tests for report.
type summary struct {
	out   io.Writer
	start time.Time
	// logs holds each running top-level test's output, subtests included,
	// in arrival order; failing marks the tests of it that failed.
	logs    map[[2]string][]logLine // package, top-level test → output
	failing map[[2]string]bool      // package, test
	skipped []skip
	passed  int
	failed  []string
}

type logLine struct{ test, text string }

func newSummary(out io.Writer) *summary {
	return &summary{out: out, start: time.Now(), logs: map[[2]string][]logLine{}, failing: map[[2]string]bool{}}
}

// read consumes the event stream. Lines that are not JSON events are
// printed as they are.
func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			fmt.Fprintln(s.out, sc.Text())
			continue
		}
		s.event(e)
	}
	return sc.Err()
}

func (s *summary) event(e event) {
	if e.Action == "build-output" {
		io.WriteString(s.out, e.Output)
		return
	}
	if e.Test == "" {
		// Package level: "ok  pkg 1.2s", "FAIL", a panic or a timeout. A
		// passing package's bare "PASS" is what plain go test hides.
		if e.Action == "output" && e.Output != "PASS\n" {
			io.WriteString(s.out, e.Output)
		}
		return
	}
	top, _, _ := strings.Cut(e.Test, "/")
	tk := [2]string{e.Package, top}
	switch e.Action {
	case "output":
		s.logs[tk] = append(s.logs[tk], logLine{e.Test, e.Output})
	case "pass":
		s.passed++
	case "skip":
		s.skipped = append(s.skipped, skip{e.Package, e.Test, s.reason(tk, e.Test)})
	case "fail":
		s.failed = append(s.failed, e.Package+" "+e.Test)
		s.failing[[2]string{e.Package, e.Test}] = true
	}
	if e.Test != top || (e.Action != "pass" && e.Action != "skip" && e.Action != "fail") {
		return
	}
	s.printFailures(e.Package, top)
}

// printFailures prints what the failing tests of the top-level test top
// logged, test by test (the test first, then its subtests), each under
// its "--- FAIL" line, as plain go test does; and forgets top's output.
func (s *summary) printFailures(pkg, top string) {
	tk := [2]string{pkg, top}
	var tests []string
	for _, l := range s.logs[tk] {
		if !slices.Contains(tests, l.test) {
			tests = append(tests, l.test)
		}
	}
	slices.SortStableFunc(tests, func(a, b string) int {
		return cmp.Compare(strings.Count(a, "/"), strings.Count(b, "/"))
	})
	for _, test := range tests {
		if !s.failing[[2]string{pkg, test}] {
			continue
		}
		delete(s.failing, [2]string{pkg, test})
		var header, body []string
		for _, l := range s.logs[tk] {
			switch t := strings.TrimSpace(l.text); {
			case l.test != test:
			case strings.HasPrefix(t, "--- FAIL"):
				header = append(header, t+"\n")
			case !isFramingLine(l.text):
				body = append(body, l.text)
			}
		}
		io.WriteString(s.out, strings.Join(append(header, body...), ""))
	}
	delete(s.failing, tk)
	delete(s.logs, tk)
}

// reason is what the skipped test logged, without the framing lines.
func (s *summary) reason(tk [2]string, test string) []string {
	var out []string
	for _, l := range s.logs[tk] {
		if t := strings.TrimSpace(l.text); l.test == test && t != "" && !isFramingLine(l.text) {
			out = append(out, t)
		}
	}
	return out
}

// isFramingLine reports whether line is one of the lines go test -v adds
// around a test's own output.
func isFramingLine(line string) bool {
	t := strings.TrimSpace(line)
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- PASS", "--- SKIP", "--- FAIL"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// report prints the skipped tests and the counts.
func (s *summary) report() {
	fmt.Fprintln(s.out)
	if len(s.skipped) > 0 {
		slices.SortFunc(s.skipped, func(a, b skip) int {
			return strings.Compare(a.pkg+" "+a.test, b.pkg+" "+b.test)
		})
		fmt.Fprintf(s.out, "SKIPPED (%d):\n", len(s.skipped))
		for _, sk := range s.skipped {
			why := joinReason(sk.reason)
			if why == "" {
				why = "(no reason given)"
			}
			fmt.Fprintf(s.out, "  %s %s: %s\n", sk.pkg, sk.test, why)
		}
	}
	if len(s.failed) > 0 {
		fmt.Fprintf(s.out, "FAILED (%d):\n", len(s.failed))
		for _, f := range s.failed {
			fmt.Fprintf(s.out, "  %s\n", f)
		}
	}
	fmt.Fprintf(s.out, "tests: %d passed, %d failed, %d skipped in %s\n",
		s.passed, len(s.failed), len(s.skipped), time.Since(s.start).Round(time.Second))
}

// joinReason puts a skip's lines on one line: "file.go:12: text", with
// " / " between lines, except after a bare "file.go:12:" (a message that
// starts with a newline, as the loud skips do).
func joinReason(lines []string) string {
	var b strings.Builder
	for i, l := range lines {
		switch {
		case i == 0:
		case strings.HasSuffix(lines[i-1], ":"):
			b.WriteString(" ")
		default:
			b.WriteString(" / ")
		}
		b.WriteString(l)
	}
	return b.String()
}
