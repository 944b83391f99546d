package systemd

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// levels are systemd-analyze's exposure levels, best first.
var levels = []string{"SAFE", "OK", "MEDIUM", "EXPOSED", "UNSAFE"}

func rank(level string) int {
	for i, l := range levels {
		if l == level {
			return i
		}
	}
	return -1
}

var overall = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) ([A-Z]+)`)

// analyze returns systemd-analyze's overall exposure and level for unit.
func analyze(t *testing.T, unit string) (float64, string) {
	t.Helper()
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is not installed, and $CI is set: install it (Debian: apt-get install systemd)")
		}
		t.Skip("SKIPPED LOUDLY: systemd-analyze is not installed (Debian: apt-get install systemd); the units' ratings are not checked")
	}
	out, err := exec.Command(bin, "security", "--offline=true", "--no-pager", unit).CombinedOutput()
	// It exits non-zero only with --threshold; an error here is a real one.
	if err != nil {
		t.Fatalf("systemd-analyze security %s: %v\n%s", unit, err, out)
	}
	m := overall.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security %s: no \"Overall exposure level\" line in:\n%s", unit, out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil || rank(string(m[2])) < 0 {
		t.Fatalf("systemd-analyze security %s: cannot read %q", unit, m[0])
	}
	return v, string(m[2])
}

func TestSecurityRatings(t *testing.T) {
	// A unit with no hardening at all: proves the check can fail.
	bare := filepath.Join(t.TempDir(), "bare.service")
	if err := os.WriteFile(bare, []byte("[Service]\nExecStart=/bin/true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		unit  string
		worst string // the worst level the unit may have
		fails bool   // the unit is expected to be worse than that
	}{
		{unit: "rewire-registrar.service", worst: "OK"},
		{unit: "rewire-templater.service", worst: "MEDIUM"},
		{unit: bare, worst: "MEDIUM", fails: true},
	}
	for _, tc := range tests {
		t.Run(filepath.Base(tc.unit), func(t *testing.T) {
			v, level := analyze(t, tc.unit)
			t.Logf("%s: %.1f %s", filepath.Base(tc.unit), v, level)
			worse := rank(level) > rank(tc.worst)
			switch {
			case worse && !tc.fails:
				t.Errorf("systemd-analyze security %s = %.1f %s, want %s or better", tc.unit, v, level, tc.worst)
			case !worse && tc.fails:
				t.Errorf("systemd-analyze security %s = %.1f %s, want worse than %s (the check must be able to fail)", tc.unit, v, level, tc.worst)
			}
		})
	}
}

// settings reads a unit's [Service] settings (the last value of each key,
// and every value of multi-valued keys under key+"[]").
func settings(t *testing.T, unit string) map[string][]string {
	t.Helper()
	f, err := os.Open(unit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not key=value", unit, line)
			}
			out[k] = append(out[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestUnitSettings(t *testing.T) {
	tests := []struct {
		unit string
		want map[string]string // key → a value it must have ("" : set, empty)
	}{
		{"rewire-registrar.service", map[string]string{"User": "rewire-registrar", "NoNewPrivileges": "yes",
			"ProtectSystem": "strict", "CapabilityBoundingSet": "", "ExecReload": "/bin/kill -HUP $MAINPID"}},
		{"rewire-templater.service", map[string]string{"User": "rewire-templater", "NoNewPrivileges": "yes",
			"ProtectSystem": "strict", "CapabilityBoundingSet": "", "ExecReload": "/bin/kill -HUP $MAINPID",
			"SupplementaryGroups": "haproxy"}},
		{"rewire-sample@.service", map[string]string{"DynamicUser": "yes", "NoNewPrivileges": "yes",
			"ExecStartPre": `+/bin/sh -c 'if [ -n "$WAIT_FOR" ]; then exec /usr/local/bin/registrar wait $WAIT_FOR --timeout 120s; fi'`}},
	}
	for _, tc := range tests {
		t.Run(tc.unit, func(t *testing.T) {
			got := settings(t, tc.unit)
			for k, v := range tc.want {
				vals := got[k]
				if len(vals) == 0 || vals[len(vals)-1] != v {
					t.Errorf("%s: %s = %q, want %q", tc.unit, k, vals, v)
				}
			}
			if u := got["User"]; len(u) > 0 && u[len(u)-1] == "root" {
				t.Errorf("%s runs as root", tc.unit)
			}
		})
	}
}
