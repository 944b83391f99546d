package health

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		in      string
		want    Status
		wantErr bool
	}{
		{in: "passing", want: Passing},
		{in: "warning", want: Warning},
		{in: "critical", want: Critical},
		{in: "", wantErr: true},
		{in: "Passing", wantErr: true},
		{in: " passing", wantErr: true},
		{in: "ok", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseStatus(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ParseStatus(%q) = %q, %v; want %q, error %t", tc.in, got, err, tc.want, tc.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "health: invalid status ") {
				t.Errorf("ParseStatus(%q) error = %q, want prefix %q", tc.in, err, "health: invalid status ")
			}
		})
	}
}

func TestWorst(t *testing.T) {
	tests := []struct {
		name string
		in   []Status
		want Status
	}{
		{name: "empty", want: Passing},
		{name: "passing", in: []Status{Passing, Passing}, want: Passing},
		{name: "warning", in: []Status{Passing, Warning, Passing}, want: Warning},
		{name: "critical first", in: []Status{Critical, Warning, Passing}, want: Critical},
		{name: "critical last", in: []Status{Passing, Warning, Critical}, want: Critical},
		{name: "invalid", in: []Status{Passing, "bogus"}, want: Critical},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Worst(tc.in...); got != tc.want {
				t.Errorf("Worst(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseKind(t *testing.T) {
	tests := []struct {
		in      string
		want    Kind
		wantErr bool
	}{
		{in: "", want: Shallow},
		{in: "shallow", want: Shallow},
		{in: "deep", want: Deep},
		{in: "Deep", wantErr: true},
		{in: "other", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseKind(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ParseKind(%q) = %q, %v; want %q, error %t", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestCleanOutput(t *testing.T) {
	long := strings.Repeat("x", MaxOutput+10)
	wide := strings.Repeat("é", MaxOutput) // 2 bytes per rune
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "empty", in: "", want: ""},
		{name: "plain", in: "HTTP 200 OK", want: "HTTP 200 OK"},
		{name: "trim", in: "  ok \n", want: "ok"},
		{name: "newlines and tabs", in: "a\tb\r\nc", want: "a b  c"},
		{name: "escape", in: "red\x1b[31m", want: "red [31m"},
		{name: "c1 and separators", in: "a\u0085b\u2028c", want: "a b c"},
		{name: "invalid utf8", in: "a\xffb", want: "a\uFFFDb"},
		{name: "exactly max", in: long[:MaxOutput], want: long[:MaxOutput]},
		{name: "too long", in: long, want: long[:MaxOutput-3] + "…"},
		{name: "cut on rune boundary", in: wide, want: wide[:MaxOutput-4] + "…"},
		{name: "trim before ellipsis", in: long[:MaxOutput-4] + "   " + long, want: long[:MaxOutput-4] + "…"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := CleanOutput(tc.in); got != tc.want {
				t.Errorf("CleanOutput(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzCleanOutput(f *testing.F) {
	for _, s := range []string{
		"", "ok", "a\nb\tc", "  padded  ", "\xff\xfe", "\u2028\u0085",
		strings.Repeat("é", 200), strings.Repeat("ab\n", 200),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := CleanOutput(in)
		if len(got) > MaxOutput {
			t.Errorf("CleanOutput(%q) has %d bytes, want at most %d", in, len(got), MaxOutput)
		}
		if !utf8.ValidString(got) {
			t.Errorf("CleanOutput(%q) = %q, not valid UTF-8", in, got)
		}
		if strings.ContainsFunc(got, unicode.IsControl) {
			t.Errorf("CleanOutput(%q) = %q, contains control characters", in, got)
		}
		if again := CleanOutput(got); again != got {
			t.Errorf("CleanOutput(%q) = %q, want %q (idempotent)", got, again, got)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{"passing", "warning", "critical", "", "Passing", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		st, err := ParseStatus(in)
		if err != nil {
			if st != "" {
				t.Errorf("ParseStatus(%q) = %q, %v; want empty status with error", in, st, err)
			}
			return
		}
		if !st.Valid() || string(st) != in {
			t.Errorf("ParseStatus(%q) = %q, want a valid status spelled %q", in, st, in)
		}
		if again, err := ParseStatus(string(st)); err != nil || again != st {
			t.Errorf("ParseStatus(%q) = %q, %v; want %q", st, again, err, st)
		}
	})
}
