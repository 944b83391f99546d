package health

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Status is the health of a check or an instance.
type Status string

// The statuses, from best to worst.
const (
	Passing  Status = "passing"
	Warning  Status = "warning"
	Critical Status = "critical"
)

// ParseStatus returns the Status named by s. It accepts exactly the
// lowercase names of the constants.
func ParseStatus(s string) (Status, error) {
	st := Status(s)
	if !st.Valid() {
		return "", fmt.Errorf("health: invalid status %q", s)
	}
	return st, nil
}

// Valid reports whether s is one of Passing, Warning or Critical.
func (s Status) Valid() bool {
	return s == Passing || s == Warning || s == Critical
}

// rank orders statuses from best (0) to worst. Invalid statuses rank as
// Critical.
func (s Status) rank() int {
	switch s {
	case Passing:
		return 0
	case Warning:
		return 1
	default:
		return 2
	}
}

// Worst returns the worst of ss: Critical beats Warning beats Passing.
// An invalid status counts as Critical. With no arguments it returns Passing.
func Worst(ss ...Status) Status {
	w := Passing
	for _, s := range ss {
		if s.rank() > w.rank() {
			w = s
		}
	}
	if !w.Valid() {
		return Critical
	}
	return w
}

// Kind says which aggregate a check counts towards.
type Kind string

// The kinds of check. Shallow checks say whether the instance itself is up;
// deep checks also cover its dependencies.
const (
	Shallow Kind = "shallow"
	Deep    Kind = "deep"
)

// ParseKind returns the Kind named by s. The empty string means Shallow.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case "":
		return Shallow, nil
	case Shallow, Deep:
		return k, nil
	}
	return "", fmt.Errorf("health: invalid kind %q", s)
}

// MaxOutput is the maximum length in bytes of a cleaned check output.
const MaxOutput = 256

// ellipsis marks an output that CleanOutput cut short.
const ellipsis = "…"

// CleanOutput makes s fit to store and show as a one-line check output.
// Invalid UTF-8 becomes U+FFFD, control characters (including newlines and
// tabs) and line or paragraph separators become spaces, and leading and
// trailing space is trimmed. If the result is longer than MaxOutput bytes it
// is cut on a rune boundary and ends in "…", so the result is never longer
// than MaxOutput bytes. CleanOutput is idempotent.
func CleanOutput(s string) string {
	s = strings.ToValidUTF8(s, string(utf8.RuneError))
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) <= MaxOutput {
		return s
	}
	cut := MaxOutput - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.TrimRightFunc(s[:cut], unicode.IsSpace) + ellipsis
}

// Result is the outcome of one probe.
type Result struct {
	Status Status
	Output string
}
