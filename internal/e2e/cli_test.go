package e2e

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestShellCompletion sources each binary's bash completion script in a
// real bash and completes command lines with it.
func TestShellCompletion(t *testing.T) {
	skipShort(t)
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	for _, tc := range []struct {
		bin   string
		words []string // the command line, the word being completed last
		want  []string
	}{
		{bins.registrar, []string{"registrar", "ma"}, []string{"maint"}},
		{bins.registrar, []string{"registrar", "maint", ""}, []string{"enable", "disable", "help", "h"}},
		{bins.registrar, []string{"registrar", "maint", "enable", "--rea"}, []string{"--reason"}},
		{bins.registrar, []string{"registrar", "c"}, []string{"check", "completion"}},
		{bins.templater, []string{"templater", "st"}, []string{"status"}},
		{bins.templater, []string{"templater", "status", "--j"}, []string{"--json"}},
	} {
		name := strings.Join(tc.words, " ")
		t.Run(name, func(t *testing.T) {
			// The script runs the binary named by the first word: put
			// the built one first on PATH.
			script := `source <("$BIN" completion bash)
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
` + "_" + filepath.Base(tc.bin) + `_complete
printf '%s\n' "${COMPREPLY[@]}"`
			cmd := exec.Command(bash, append([]string{"-c", script, "bash"}, tc.words...)...)
			cmd.Env = append(cmd.Environ(), "BIN="+tc.bin, "PATH="+bins.dir+":"+"/usr/bin:/bin")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v\n%s", err, out)
			}
			got := strings.Fields(string(out))
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) {
				t.Errorf("completing %q = %q, want %q", name, got, want)
			}
		})
	}
}
