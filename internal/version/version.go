// Package version reports which build of pullgate is running.
package version

import (
	"runtime/debug"
	"strings"
)

// Version is set at link time for release builds:
//
//	go build -ldflags "-X github.com/pullgate/pullgate/internal/version.Version=v1.2.3" ./cmd/pullgate
//
// When it is empty, String falls back to what the Go toolchain recorded in the binary.
var Version = ""

// String returns the version: the link-time Version when set, else the main module's
// version from the build information (a tag or pseudo-version for `go install`, "(devel)"
// for a local build) followed by the VCS revision when one was recorded.
func String() string {
	if Version != "" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return fromBuildInfo(info)
}

// fromBuildInfo renders a version string from build information.
func fromBuildInfo(info *debug.BuildInfo) string {
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var revision, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	// A pseudo-version already carries the revision; only add it to plain local builds.
	if revision == "" || strings.Contains(v, revision[:min(12, len(revision))]) {
		return v
	}
	v += " " + revision[:min(12, len(revision))]
	if modified == "true" {
		v += "-dirty"
	}
	return v
}
