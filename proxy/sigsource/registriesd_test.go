package sigsource

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distribution/reference"

	"github.com/pullgate/pullgate/internal/testsupport"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		testsupport.WriteFile(t, filepath.Join(dir, name), body)
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

// TestRegistriesDDirectoryEntries: which entries of registries.d are read, and which make
// the whole directory unusable, row by row as containers/image's loadAndMergeConfig
// (docker/registries_d.go, v5.39) decides: every name ending in .yaml is read with
// os.ReadFile whatever it is, so a directory (or a symlink to one) or an entry that cannot
// be opened is an error, never skipped; other names are ignored. The one deliberate
// difference: a .yaml entry that does not exist when read (a dangling symlink, or a file
// removed meanwhile) is skipped by containers/image and refused by pullgate, which would
// otherwise run on a configuration missing a file the operator put there.
func TestRegistriesDDirectoryEntries(t *testing.T) {
	const good = "docker:\n  registry.test:\n    lookaside: http://good.example/s\n"
	write := func(t *testing.T, path, body string) {
		t.Helper()
		testsupport.WriteFile(t, path, body)
	}
	mkdir := func(t *testing.T, path string) {
		t.Helper()
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	symlink := func(t *testing.T, target, link string) {
		t.Helper()
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		// wantErr is a part of the error; "" means the directory loads and gives
		// wantLookaside for registry.test/org/app:1 ("" for none).
		wantErr, wantLookaside string
	}{
		{"directory named .yaml", func(t *testing.T, d string) {
			mkdir(t, filepath.Join(d, "x.yaml"))
			write(t, filepath.Join(d, "a.yaml"), good)
		}, "x.yaml: is a directory", ""},
		{"symlink to a directory", func(t *testing.T, d string) {
			mkdir(t, filepath.Join(d, "sub"))
			symlink(t, filepath.Join(d, "sub"), filepath.Join(d, "x.yaml"))
			write(t, filepath.Join(d, "a.yaml"), good)
		}, "x.yaml: is a directory", ""},
		{"symlink to a file is read", func(t *testing.T, d string) {
			write(t, filepath.Join(d, "real.conf"), good)
			symlink(t, filepath.Join(d, "real.conf"), filepath.Join(d, "x.yaml"))
		}, "", "http://good.example/s/org/app"},
		{"dangling symlink (deliberate difference)", func(t *testing.T, d string) {
			symlink(t, filepath.Join(d, "nowhere"), filepath.Join(d, "x.yaml"))
			write(t, filepath.Join(d, "a.yaml"), good)
		}, "x.yaml: no such file or directory", ""},
		{"entry that cannot be opened", func(t *testing.T, d string) {
			// A Unix socket: opening it fails (ENXIO) even for root, for whom a mode-000
			// file would still be readable.
			l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(d, "x.yaml"), Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			write(t, filepath.Join(d, "a.yaml"), good)
		}, "x.yaml: no such device or address", ""},
		{"other names are ignored", func(t *testing.T, d string) {
			for _, name := range []string{"x.yml", "x.yaml.bak", "yaml", "x.YAML", "x.json"} {
				write(t, filepath.Join(d, name), "[[[")
			}
			mkdir(t, filepath.Join(d, "dir.yml"))
			mkdir(t, filepath.Join(d, "..data"))
			write(t, filepath.Join(d, "a.yaml"), good)
		}, "", "http://good.example/s/org/app"},
		{"a name that is only .yaml is read", func(t *testing.T, d string) {
			write(t, filepath.Join(d, ".yaml"), good)
		}, "", "http://good.example/s/org/app"},
		{"duplicate scope across files", func(t *testing.T, d string) {
			write(t, filepath.Join(d, "a.yaml"), good)
			write(t, filepath.Join(d, "b.yaml"), good)
		}, `docker scope "registry.test" is defined in both`, ""},
		{"duplicate scope in one file", func(t *testing.T, d string) {
			write(t, filepath.Join(d, "a.yaml"), good+"  registry.test:\n    lookaside: http://other.example/\n")
		}, `mapping key "registry.test" already defined`, ""},
		{"empty file", func(t *testing.T, d string) {
			write(t, filepath.Join(d, "e.yaml"), "")
			write(t, filepath.Join(d, "a.yaml"), good)
		}, "", "http://good.example/s/org/app"},
		{"comments, null and an empty docker map", func(t *testing.T, d string) {
			write(t, filepath.Join(d, "c.yaml"), "# nothing\n")
			write(t, filepath.Join(d, "n.yaml"), "null\n")
			write(t, filepath.Join(d, "e.yaml"), "docker:\n")
			write(t, filepath.Join(d, "a.yaml"), good)
		}, "", "http://good.example/s/org/app"},
		{"a scalar document", func(t *testing.T, d string) {
			write(t, filepath.Join(d, "e.yaml"), "hello\n")
		}, "e.yaml", ""},
		{"only the first YAML document is read", func(t *testing.T, d string) {
			write(t, filepath.Join(d, "a.yaml"), good+"---\ndocker:\n  registry.test:\n    lookaside: http://second.example/\n")
		}, "", "http://good.example/s/org/app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			rd, err := LoadRegistriesD(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), dir) {
					t.Errorf("error %q does not name the path", err)
				}
				var rerr *RegistriesDError
				if !errors.As(err, &rerr) {
					t.Errorf("error %T is not a *RegistriesDError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s, err := rd.Lookup(mustRef(t, "registry.test/org/app:1"))
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if s.Lookaside != nil {
				got = s.Lookaside.String()
			}
			if got != tt.wantLookaside {
				t.Fatalf("lookaside %q, want %q", got, tt.wantLookaside)
			}
		})
	}
}

// TestRegistriesDNotADirectory: a registries.d path that is a file is an error (as in
// containers/image: reading its entries fails); a missing one is an empty configuration.
func TestRegistriesDNotADirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "registries.d")
	testsupport.WriteFile(t, file, "")
	if _, err := LoadRegistriesD(file); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("err = %v, want an error naming %s", err, file)
	}
}

// TestRegistriesDID: the ID is a digest of the files read: the same files give the same
// ID, a changed or added file another one, and a missing directory that of an empty one.
func TestRegistriesDID(t *testing.T) {
	dir := t.TempDir()
	load := func(dir string) string {
		t.Helper()
		r, err := LoadRegistriesD(dir)
		if err != nil {
			t.Fatal(err)
		}
		if r.ID() == "" {
			t.Fatal("no ID")
		}
		return r.ID()
	}
	empty := load(filepath.Join(dir, "missing"))
	if load("") != empty || load(dir) != empty {
		t.Fatal("empty configurations have different IDs")
	}
	write := func(name, text string) {
		t.Helper()
		testsupport.WriteFile(t, filepath.Join(dir, name), text)
	}
	write("a.yaml", "default-docker:\n  lookaside: https://a.test/sigs\n")
	first := load(dir)
	if first == empty || load(dir) != first {
		t.Fatal("the ID does not follow the files")
	}
	write("a.yaml", "default-docker:\n  lookaside: https://b.test/sigs\n")
	if load(dir) == first {
		t.Fatal("a changed file keeps the ID")
	}
	write("a.yaml", "default-docker:\n  lookaside: https://a.test/sigs\n")
	write("b.yaml", "docker:\n  registry.test:\n    use-sigstore-attachments: true\n")
	if load(dir) == first {
		t.Fatal("an added file keeps the ID")
	}
	if id := emptyRegistriesD().ID(); id != empty {
		t.Fatalf("NewFinder's default registries.d has ID %s, want %s", id, empty)
	}
}
