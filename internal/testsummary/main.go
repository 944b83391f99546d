// Command testsummary runs `go test -json …` and prints what plain
// `go test` prints (each package's result, the output of failing tests),
// then a summary that lists every skipped test and why. Without it a
// skip inside a passing package is invisible, and a test that skipped
// because a port was taken or a binary was missing looks like a pass.
//
//	go run ./internal/testsummary go test -json -race ./...
//
// It exits with the test command's exit code. Its standard error is
// passed through (build errors, go vet).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs argv, summarising its JSON output to stdout, and returns its
// exit code.
func run(argv []string, stdout, stderr io.Writer) int {
	if len(argv) == 0 {
		fmt.Fprintln(stderr, "usage: testsummary go test -json [flags] [packages]")
		return 2
	}
	// A Ctrl-C reaches the whole process group: let the tests stop, and
	// still print what they reported.
	signal.Ignore(syscall.SIGINT)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stderr = os.Stdin, stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(stderr, "testsummary:", err)
		return 2
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "testsummary:", err)
		return 2
	}
	s := newSummary(stdout)
	readErr := s.read(pipe)
	err = cmd.Wait()
	s.report()
	if readErr != nil {
		fmt.Fprintln(stderr, "testsummary: reading the test output:", readErr)
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		if code := exit.ExitCode(); code > 0 {
			return code
		}
		return 1 // killed by a signal
	case err != nil:
		fmt.Fprintln(stderr, "testsummary:", err)
		return 2
	case readErr != nil:
		return 2
	}
	return 0
}
