package render

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/rewire/rewire/internal/proc"
	"gopkg.in/yaml.v3"
)

// Command is a check or reload command. In YAML a string runs under
// /bin/sh -c and a list is executed directly. Both may use {{ .Staged }}
// (the staged file being checked) and {{ .Destination }}; in a string they
// are shell-quoted.
type Command struct {
	Shell string   // run with /bin/sh -c
	Argv  []string // run directly
}

// Shell returns a Command that runs s under /bin/sh -c.
func Shell(s string) Command { return Command{Shell: s} }

// IsZero reports whether no command is configured.
func (c Command) IsZero() bool { return c.Shell == "" && len(c.Argv) == 0 }

// String returns the command as configured.
func (c Command) String() string {
	if c.Shell != "" {
		return c.Shell
	}
	return strings.Join(c.Argv, " ")
}

// UnmarshalYAML accepts a string or a list of strings.
func (c *Command) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*c = Command{Shell: n.Value}
		return nil
	case yaml.SequenceNode:
		var argv []string
		if err := n.Decode(&argv); err != nil {
			return err
		}
		if len(argv) == 0 {
			return fmt.Errorf("line %d: command list is empty", n.Line)
		}
		*c = Command{Argv: argv}
		return nil
	}
	return fmt.Errorf("line %d: want a string (run by /bin/sh -c) or a list (executed directly)", n.Line)
}

// Validate parses the command's template placeholders.
func (c Command) Validate() error {
	_, err := c.expand(cmdVars{})
	return err
}

type cmdVars struct {
	Staged      string
	Destination string
}

func (c Command) expand(v cmdVars) ([]string, error) {
	if c.Shell != "" {
		q := cmdVars{Staged: shellQuote(v.Staged), Destination: shellQuote(v.Destination)}
		s, err := expandOne(c.Shell, q)
		return []string{"/bin/sh", "-c", s}, err
	}
	out := make([]string, len(c.Argv))
	for i, a := range c.Argv {
		s, err := expandOne(a, v)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

func expandOne(s string, v cmdVars) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	t, err := template.New("command").Option("missingkey=error").Parse(s)
	if err != nil {
		return "", fmt.Errorf("command %q: %w", s, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, v); err != nil {
		return "", fmt.Errorf("command %q: %w", s, err)
	}
	return b.String(), nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// maxCmdOutput bounds how much of a command's output is kept for errors.
const maxCmdOutput = 4096

// errCommandTimeout is the cause of a command's context when its own
// timeout ends it, to tell that from a cancellation of the caller.
var errCommandTimeout = errors.New("command timeout")

// ErrCommand is wrapped by every failure of a check or reload command.
var ErrCommand = errors.New("render: command failed")

// run executes the command with a timeout and returns its combined output.
func (c Command) run(ctx context.Context, v cmdVars, timeout time.Duration) (string, error) {
	argv, err := c.expand(v)
	if err != nil {
		return "", err
	}
	cctx, cancel := context.WithTimeoutCause(ctx, timeout, errCommandTimeout)
	defer cancel()
	cmd, out := proc.Command(cctx, argv, maxCmdOutput, time.Second)
	err = cmd.Run()
	text := strings.TrimSpace(out.String())
	if err != nil {
		switch {
		case errors.Is(context.Cause(cctx), errCommandTimeout):
			err = fmt.Errorf("timed out after %s (command_timeout): %w", timeout, err)
		case ctx.Err() != nil:
			err = fmt.Errorf("cancelled (%w): %w", context.Cause(ctx), err)
		}
		return text, fmt.Errorf("%w: %s: %w", ErrCommand, c, err)
	}
	return text, nil
}
