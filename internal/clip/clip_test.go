package clip

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"short", "passing"},
		{"at limit", strings.Repeat("a", Max)},
		{"one over", strings.Repeat("a", Max+1)},
		{"1 MB", strings.Repeat("k", 1<<20)},
		{"multibyte", strings.Repeat("é", 1<<10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := String(tc.in)
			if len(tc.in) <= Max {
				if got != tc.in {
					t.Errorf("String(%q) = %q, want it unchanged", tc.in, got)
				}
				return
			}
			if len(got) > Max || !utf8.ValidString(got) || !strings.Contains(got, " bytes cut]") {
				t.Errorf("String(%d bytes) = %q (%d bytes), want ≤ %d valid UTF-8 bytes with a cut marker", len(tc.in), got, len(got), Max)
			}
		})
	}
	if got := String(strings.Repeat("x", 1000) + "the cause"); !strings.HasSuffix(got, "the cause") {
		t.Errorf("String kept %q, want the tail kept", got)
	}
}

// TestHandlerLine logs four 1 MB values of different kinds through a JSON handler
// using ReplaceAttr: the whole line stays under 1 KB.
func TestHandlerLine(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: ReplaceAttr}))
	big := strings.Repeat("m", 1<<20)
	log.Error("skipping invalid registry entry", "key", big, "err", errors.New("meta key "+big+": invalid"),
		"names", []string{big}, slog.Group("check", "name", big))
	line := buf.String()
	if len(line) >= 1024 {
		t.Errorf("log line is %d bytes, want < 1024", len(line))
	}
	t.Logf("a log line with four 1 MB values: %d bytes", len(line))
}
