package sigsource

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
	"github.com/pullgate/pullgate/policy"
)

var testDigest = digest.FromString("manifest")

// readAll reads every signature below base.
func readAll(l *Lookaside, base *url.URL) ([]RawSignature, error) {
	var out []RawSignature
	err := l.Read(context.Background(), base, testDigest, func(r RawSignature) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// lookasideServer serves count signatures below /base/org/app@sha256=<hex>/; override
// answers chosen signature numbers differently.
func lookasideServer(t *testing.T, count int, override map[int]func(http.ResponseWriter)) (*url.URL, *sigServer) {
	t.Helper()
	s := newSigServer(t)
	for n := 1; n <= count; n++ {
		s.put(testRepo, testDigest, n, []byte("sig-"+strconv.Itoa(n)))
	}
	for n, f := range override {
		s.answer(sigPath(testRepo, testDigest, n), func(w http.ResponseWriter, _ *http.Request) { f(w) })
	}
	u, _ := url.Parse(s.URL + "/base/org/app")
	return u, s
}

func TestLookasideHTTP(t *testing.T) {
	status := func(code int) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) { w.WriteHeader(code) }
	}
	tests := []struct {
		name     string
		count    int
		override map[int]func(http.ResponseWriter)
		want     int // signatures read; -1 means an error
	}{
		{"none", 0, nil, 0},
		{"three", 3, nil, 3},
		{"gap ends the list", 3, map[int]func(http.ResponseWriter){2: status(404)}, 1},
		{"server error fails the lookup", 3, map[int]func(http.ResponseWriter){2: status(500)}, -1},
		{"forbidden fails the lookup", 3, map[int]func(http.ResponseWriter){1: status(403)}, -1},
		{"127 is the most", 127, nil, 127},
		{"128 fails", 128, nil, -1},
		{"oversized signature fails", 1, map[int]func(http.ResponseWriter){1: func(w http.ResponseWriter) {
			w.Write(make([]byte, maxSignatureSize+1))
		}}, -1},
		{"html page is read (its format is judged later)", 1, map[int]func(http.ResponseWriter){1: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html>"))
		}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := lookasideServer(t, tt.count, tt.override)
			got, err := readAll(&Lookaside{}, base)
			if tt.want < 0 {
				if !errors.Is(err, ErrLookasideFetch) {
					t.Fatalf("err = %v, want ErrLookasideFetch", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Fatalf("read %d signatures, want %d", len(got), tt.want)
			}
			if tt.want > 0 && !strings.HasSuffix(got[0].Origin, "/signature-1") {
				t.Fatalf("origin = %q", got[0].Origin)
			}
		})
	}
}

func TestLookasideURLLayout(t *testing.T) {
	base, lookaside := lookasideServer(t, 1, nil)
	if _, err := readAll(&Lookaside{}, base); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/base/org/app@sha256=" + testDigest.Encoded() + "/signature-1",
		"/base/org/app@sha256=" + testDigest.Encoded() + "/signature-2",
	}
	if paths := lookaside.requests(); strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Fatalf("requested %v, want %v", paths, want)
	}
}

func TestLookasideHangingServer(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	t.Cleanup(func() { close(block); srv.Close() })
	u, _ := url.Parse(srv.URL + "/x")
	l := &Lookaside{Client: &http.Client{Timeout: 100 * time.Millisecond}}
	if _, err := readAll(l, u); !errors.Is(err, ErrLookasideFetch) {
		t.Fatalf("err = %v", err)
	}
}

func TestLookasideFile(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "org", "app@sha256="+testDigest.Encoded())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		testsupport.WriteFile(t, filepath.Join(dir, "signature-"+strconv.Itoa(i)), []byte("s"))
	}
	base := &url.URL{Scheme: "file", Path: root + "/org/app"}
	got, err := readAll(&Lookaside{}, base)
	if err != nil || len(got) != 2 {
		t.Fatalf("got %d, %v", len(got), err)
	}
	// A directory where a file should be is an error, not "no more signatures".
	if err := os.Mkdir(filepath.Join(dir, "signature-3"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(&Lookaside{}, base); !errors.Is(err, ErrLookasideFetch) {
		t.Fatalf("err = %v", err)
	}
}

// TestLookasideVerdicts: SPEC.md 10.4 #32 and #35 through the Finder and the policy
// engine: each lookaside file is recognised by policy.ParseSignatureBlob, one unreadable
// file fails the whole lookup (indeterminate, never an accept), and the read stops at the
// first missing number.
func TestLookasideVerdicts(t *testing.T) {
	d := digest.FromString("manifest of registry.test/org/app:1")
	trusted, good, wrongKey := trustedAndSignatures(t, d)
	armored := pgptest.Armor(t, "PGP MESSAGE", good)
	html := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html><body>Welcome</body></html>"))
	}
	file := func(data []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) { w.Write(data) }
	}
	status := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
	}
	const indeterminate = "indeterminate"
	tests := []struct {
		name  string
		files []http.HandlerFunc // signature-1, -2, ...; nil is a 404
		want  string             // "accept", "deny" or indeterminate
		why   string             // in the reason or error
		reads int                // signature files requested (reading stops at the first unusable one)
	}{
		{"1 and 2 by another key, 3 valid", []http.HandlerFunc{file(wrongKey), file(wrongKey), file(good)}, "accept", "", 4},
		{"2 is an HTML page", []http.HandlerFunc{file(wrongKey), html, file(good)}, indeterminate, "unrecognized signature format", 2},
		{"2 answers 500", []http.HandlerFunc{file(wrongKey), status(500), file(good)}, indeterminate, "status 500", 2},
		{"1 is missing", []http.HandlerFunc{nil, file(good)}, "deny", "no signature exists", 1},
		{"gap: 2 missing, 3 never read", []http.HandlerFunc{file(wrongKey), nil, file(good)}, "deny", "signature 1", 2},
		{"armored", []http.HandlerFunc{file(armored)}, indeterminate, "unrecognized signature format", 1},
		{"0x00 simple-signing wrapper", []http.HandlerFunc{file(append([]byte("\x00simple-signing\n"), good...))}, "accept", "", 2},
		{"0x00 bogus format", []http.HandlerFunc{file(append([]byte("\x00bogus\n"), good...))}, indeterminate, `"bogus"`, 1},
		{"empty file", []http.HandlerFunc{file(nil)}, indeterminate, "empty", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookaside := newSigServer(t)
			for i, h := range tt.files {
				if h != nil {
					lookaside.answer(sigPath(testRepo, d, i+1), h)
				}
			}
			f := newTestFinder(t, newTestRegistry(t, false), lookaside.registriesD(""), nil)
			v, err := evaluate(t, signedByPolicy(t, trusted), f, "1", d)
			if n := len(lookaside.requests()); n != tt.reads {
				t.Fatalf("%d lookaside requests, want %d: %v", n, tt.reads, lookaside.requests())
			}
			if tt.want == indeterminate {
				if !errors.Is(err, policy.ErrIndeterminate) || !errors.Is(err, ErrLookasideFetch) || !strings.Contains(err.Error(), tt.why) {
					t.Fatalf("err = %v, want an indeterminate lookaside failure mentioning %q", err, tt.why)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Accepted != (tt.want == "accept") || !strings.Contains(v.Reason, tt.why) {
				t.Fatalf("verdict %+v, want %s with %q", v, tt.want, tt.why)
			}
		})
	}
}

// TestLookasideFinderURL: SPEC.md 10.4 #33 as the Finder requests it: the base from
// registries.d, the repository path of the upstream name (not pullgate's), the manifest
// digest with '=', and no slash trimming.
func TestLookasideFinderURL(t *testing.T) {
	d := digest.FromString("m")
	tests := []struct {
		name, yaml, repo, want string
	}{
		{"base", "default-docker:\n  lookaside: $URL/b\n", "org/app", "/b/org/app@sha256=" + d.Encoded() + "/signature-1"},
		{"trailing slash", "default-docker:\n  lookaside: $URL/b/\n", "org/app", "/b//org/app@sha256=" + d.Encoded() + "/signature-1"},
		{"nested repository", "docker:\n  registry.test/team:\n    sigstore: $URL/old\n", "team/sub/app", "/old/team/sub/app@sha256=" + d.Encoded() + "/signature-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookaside := newSigServer(t)
			files := map[string]string{"r.yaml": strings.ReplaceAll(tt.yaml, "$URL", lookaside.URL)}
			f := newTestFinder(t, newTestRegistry(t, false), files, nil)
			ref := mustRef(t, testRegistryName+"/"+tt.repo+":1")
			if _, err := f.Signatures(context.Background(), testRegistryName, tt.repo, ref, d); err != nil {
				t.Fatal(err)
			}
			if got := lookaside.requests(); len(got) != 1 || got[0] != tt.want {
				t.Fatalf("requested %v, want [%s]", got, tt.want)
			}
		})
	}
}
