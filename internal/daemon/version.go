package daemon

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version describes the running binary for --version: the module version,
// the commit it was built from (and whether the tree had uncommitted
// changes), the Go version, the platform and the build tags, all read from
// the build information Go embeds in every binary.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (no build information)"
	}
	return formatVersion(bi)
}

func formatVersion(bi *debug.BuildInfo) string {
	s := map[string]string{}
	for _, kv := range bi.Settings {
		s[kv.Key] = kv.Value
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	commit := "unknown commit"
	if rev := s["vcs.revision"]; rev != "" {
		commit = "commit " + rev[:min(12, len(rev))]
		if t := s["vcs.time"]; t != "" {
			commit += " of " + t
		}
		if s["vcs.modified"] == "true" {
			commit += ", modified"
		}
	}
	tags := s["-tags"]
	if tags == "" {
		tags = "none"
	}
	goVersion := strings.TrimSpace(bi.GoVersion)
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	return fmt.Sprintf("%s (%s; %s %s/%s; build tags: %s)", version, commit, goVersion, runtime.GOOS, runtime.GOARCH, tags)
}
