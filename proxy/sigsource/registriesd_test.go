package sigsource

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mustRef(t *testing.T, s string) reference.Named {
	t.Helper()
	r, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRegistriesDLookup(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.yaml": `
default-docker:
  lookaside: https://default.example/sigs
docker:
  docker.io/library/busybox:
    use-sigstore-attachments: true
  docker.io:
    lookaside: https://hub.example/base
    use-sigstore-attachments: false
  quay.io/org:
    sigstore: https://old-name.example/s/
  "*.example.com":
    lookaside: file:///srv/sigs
`,
		"b.yaml": `
docker:
  127.0.0.1:5001/team/app:v1:
    lookaside: http://127.0.0.1:8088
    unknown-key: ignored
`,
		"ignored.yml": "this: [is not read",
		"notes.txt":   "nor is this",
	})
	rd, err := LoadRegistriesD(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ref, lookaside string
		attachments    bool
	}{
		// Per-setting fall-through: the repository section sets attachments, the registry
		// section still supplies the lookaside (SPEC.md 3.3).
		{"busybox:latest", "https://hub.example/base/library/busybox", true},
		{"docker.io/library/alpine:3", "https://hub.example/base/library/alpine", false},
		// Old key name; a base ending in / gives // as containers/image does.
		{"quay.io/org/app:1", "https://old-name.example/s//org/app", false},
		// Wildcards ignore the port.
		{"r.a.example.com:5000/x/y:1", "file:///srv/sigs/x/y", false},
		// Identity scope with a tag only matches that tag.
		{"127.0.0.1:5001/team/app:v1", "http://127.0.0.1:8088/team/app", false},
		{"127.0.0.1:5001/team/app:v2", "https://default.example/sigs/team/app", false},
		{"ghcr.io/o/r@sha256:" + strings.Repeat("a", 64), "https://default.example/sigs/o/r", false},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			s, err := rd.Lookup(mustRef(t, tt.ref))
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if s.Lookaside != nil {
				got = s.Lookaside.String()
			}
			if got != tt.lookaside || s.UseSigstoreAttachments != tt.attachments {
				t.Fatalf("Lookup = (%q, %v), want (%q, %v)", got, s.UseSigstoreAttachments, tt.lookaside, tt.attachments)
			}
		})
	}
}

func TestRegistriesDEmpty(t *testing.T) {
	for _, dir := range []string{"", filepath.Join(t.TempDir(), "missing")} {
		rd, err := LoadRegistriesD(dir)
		if err != nil {
			t.Fatal(err)
		}
		s, err := rd.Lookup(mustRef(t, "busybox:1"))
		if err != nil || s.Lookaside != nil || s.UseSigstoreAttachments {
			t.Fatalf("empty config gave %+v, %v", s, err)
		}
	}
}

func TestRegistriesDErrors(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{"two default-docker", map[string]string{"a.yaml": "default-docker: {}\n", "b.yaml": "default-docker: {}\n"}, "default-docker is defined in both"},
		{"scope twice", map[string]string{"a.yaml": "docker: {quay.io: {}}\n", "b.yaml": "docker: {quay.io: {}}\n"}, `docker scope "quay.io" is defined in both`},
		{"bad yaml", map[string]string{"a.yaml": "docker: [\n"}, "a.yaml"},
		{"bad scheme", map[string]string{"a.yaml": "docker: {quay.io: {lookaside: 'ftp://x/y'}}\n"}, `unsupported scheme "ftp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadRegistriesD(writeFiles(t, tt.files))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestScopeCandidates(t *testing.T) {
	got := scopeCandidates(mustRef(t, "a.b.example.com:5000/ns/app:1"))
	want := []string{"a.b.example.com:5000/ns/app:1", "a.b.example.com:5000/ns/app", "a.b.example.com:5000/ns", "a.b.example.com:5000", "*.b.example.com", "*.example.com", "*.com"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	got = scopeCandidates(mustRef(t, "localhost:5000/x:1"))
	if strings.Join(got, " ") != "localhost:5000/x:1 localhost:5000/x localhost:5000" {
		t.Fatalf("got %v", got)
	}
}
