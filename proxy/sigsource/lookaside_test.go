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
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

var testDigest = digest.FromString("manifest")

// lookasideServer serves count signatures below /base/org/app@sha256=<hex>/; override
// answers chosen signature numbers differently.
func lookasideServer(t *testing.T, count int, override map[int]func(http.ResponseWriter)) (*url.URL, *[]string) {
	t.Helper()
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		prefix := "/base/org/app@sha256=" + testDigest.Encoded() + "/signature-"
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, prefix))
		if !strings.HasPrefix(r.URL.Path, prefix) || err != nil {
			http.NotFound(w, r)
			return
		}
		if f, ok := override[n]; ok {
			f(w)
			return
		}
		if n > count {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("sig-" + strconv.Itoa(n)))
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL + "/base/org/app")
	return u, &paths
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
			got, err := (&Lookaside{}).Read(context.Background(), base, testDigest)
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
	base, paths := lookasideServer(t, 1, nil)
	if _, err := (&Lookaside{}).Read(context.Background(), base, testDigest); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/base/org/app@sha256=" + testDigest.Encoded() + "/signature-1",
		"/base/org/app@sha256=" + testDigest.Encoded() + "/signature-2",
	}
	if strings.Join(*paths, " ") != strings.Join(want, " ") {
		t.Fatalf("requested %v, want %v", *paths, want)
	}
}

func TestLookasideHangingServer(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	t.Cleanup(func() { close(block); srv.Close() })
	u, _ := url.Parse(srv.URL + "/x")
	l := &Lookaside{Client: &http.Client{Timeout: 100 * time.Millisecond}}
	if _, err := l.Read(context.Background(), u, testDigest); !errors.Is(err, ErrLookasideFetch) {
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
		if err := os.WriteFile(filepath.Join(dir, "signature-"+strconv.Itoa(i)), []byte("s"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := &url.URL{Scheme: "file", Path: root + "/org/app"}
	got, err := (&Lookaside{}).Read(context.Background(), base, testDigest)
	if err != nil || len(got) != 2 {
		t.Fatalf("got %d, %v", len(got), err)
	}
	// A directory where a file should be is an error, not "no more signatures".
	if err := os.Mkdir(filepath.Join(dir, "signature-3"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Lookaside{}).Read(context.Background(), base, testDigest); !errors.Is(err, ErrLookasideFetch) {
		t.Fatalf("err = %v", err)
	}
}
