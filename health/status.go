package health

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rewire/rewire/health/status"
)

// Status, Kind and their values live in the leaf package health/status,
// which the record format imports too; these names keep health's own
// spelling of them.
type (
	// Status is the health of a check or an instance.
	Status = status.Status
	// Kind says which aggregate a check counts towards.
	Kind = status.Kind
)

// The statuses, from best to worst, and the kinds of check.
const (
	Passing  = status.Passing
	Warning  = status.Warning
	Critical = status.Critical
	Shallow  = status.Shallow
	Deep     = status.Deep
)

// ParseStatus returns the Status named by s (see status.Parse).
func ParseStatus(s string) (Status, error) { return status.Parse(s) }

// Worst returns the worst of ss (see status.Worst).
func Worst(ss ...Status) Status { return status.Worst(ss...) }

// ParseKind returns the Kind named by s (see status.ParseKind).
func ParseKind(s string) (Kind, error) { return status.ParseKind(s) }

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
