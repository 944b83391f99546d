package daemon

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		want []string
	}{
		{"release with tags", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
			{Key: "-tags", Value: "noembed"}, {Key: "vcs.revision", Value: "0123456789abcdef0123"},
			{Key: "vcs.time", Value: "2026-11-30T12:00:00Z"}, {Key: "vcs.modified", Value: "true"},
		}}, []string{"v1.2.3 (commit 0123456789ab of 2026-11-30T12:00:00Z, modified; go1.26.8 ", "; build tags: noembed)"}},
		{"no VCS information", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			[]string{"(devel) (unknown commit; go1.26.8 ", "; build tags: none)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := formatVersion(&tc.bi)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("formatVersion() = %q, want it to contain %q", got, w)
				}
			}
		})
	}
}
