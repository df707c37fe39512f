package version

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name     string
		version  string
		settings []debug.BuildSetting
		want     string
	}{
		{"empty", "", nil, "(devel)"},
		{"tagged module", "v1.2.3", nil, "v1.2.3"},
		{"local build with revision", "(devel)", []debug.BuildSetting{{Key: "vcs.revision", Value: rev}}, "(devel) 0123456789ab"},
		{"dirty local build", "(devel)", []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}, "(devel) 0123456789ab-dirty"},
		{"pseudo-version already names the revision", "v0.0.0-20260101000000-0123456789ab", []debug.BuildSetting{{Key: "vcs.revision", Value: rev}}, "v0.0.0-20260101000000-0123456789ab"},
		{"short revision", "(devel)", []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}, "(devel) abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := &debug.BuildInfo{Main: debug.Module{Version: tt.version}, Settings: tt.settings}
			if got := fromBuildInfo(info); got != tt.want {
				t.Errorf("fromBuildInfo() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStringPrefersLinkTimeVersion(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v9.9.9"
	if got := String(); got != "v9.9.9" {
		t.Errorf("String() = %q, want the link-time version", got)
	}
	Version = ""
	if got := String(); got == "" {
		t.Error("String() is empty without a link-time version")
	}
}
