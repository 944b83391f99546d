package main

import (
	"bytes"
	"strings"
	"testing"
)

// sample runs the tests in testdata/sample through run, as `make test`
// runs every package's.
func sample(t *testing.T, fail bool) (code int, out string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs go test")
	}
	if fail {
		t.Setenv("SAMPLE_FAIL", "1")
	}
	var stdout, stderr bytes.Buffer
	code = run([]string{"go", "test", "-json", "-count=1", "./testdata/sample"}, &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", &stdout, &stderr)
	return code, stdout.String()
}

func TestListsEverySkipWithItsReason(t *testing.T) {
	code, out := sample(t, false)
	if code != 0 {
		t.Errorf("exit code %d, want 0 (the tests passed)", code)
	}
	for _, want := range []string{
		"ok  \tgithub.com/rewire/rewire/internal/testsummary/testdata/sample",
		"SKIPPED (3):\n",
		"sample TestSkipsLoudly: sample_test.go:29: *** SKIPPING: etcd is not installed ***\n",
		"sample TestSkipsWithReason: sample_test.go:11: haproxy not installed (apt-get install haproxy)\n",
		"sample TestSubtests/skips: sample_test.go:16: port 2379 taken\n",
		"tests: 4 passed, 0 failed, 3 skipped",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not contain %q", want)
		}
	}
	// What plain go test hides in a passing package stays hidden.
	for _, hidden := range []string{"=== RUN", "logs nothing worth showing", "\nPASS\n"} {
		if strings.Contains(out, hidden) {
			t.Errorf("output shows %q", hidden)
		}
	}
}

func TestFailureKeepsExitCodeAndOutput(t *testing.T) {
	code, out := sample(t, true)
	if code != 1 {
		t.Errorf("exit code %d, want go test's 1", code)
	}
	for _, want := range []string{
		"--- FAIL: TestFailsOnRequest",
		"inner went wrong",
		"outer went wrong",
		"FAILED (2):\n",
		"SKIPPED (3):\n",
		"tests: 3 passed, 2 failed, 3 skipped",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not contain %q", want)
		}
	}
	if strings.Index(out, "--- FAIL: TestFailsOnRequest ") > strings.Index(out, "inner went wrong") {
		t.Errorf("the failing test's header comes after its subtest's output")
	}
}

func TestPassesOtherLinesAndBuildOutput(t *testing.T) {
	var out bytes.Buffer
	s := newSummary(&out)
	err := s.read(strings.NewReader(`# a line that is not JSON
{"ImportPath":"x/y [x/y.test]","Action":"build-output","Output":"y_test.go:3:1: syntax error\n"}
{"Action":"output","Package":"x/y","Output":"FAIL\tx/y [build failed]\n"}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := "# a line that is not JSON\ny_test.go:3:1: syntax error\nFAIL\tx/y [build failed]\n"
	if out.String() != want {
		t.Errorf("read printed %q, want %q", out.String(), want)
	}
}

func TestNoCommandIsUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "usage:") {
		t.Errorf("run() = %d, stderr %q; want 2 and usage", code, stderr.String())
	}
}
