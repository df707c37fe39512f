package upstream_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy/upstream"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// server is an in-memory registry (go-containerregistry) on 127.0.0.1 behind an optional
// middleware, counting the requests it receives.
type server struct {
	*httptest.Server
	testsupport.RequestLog
}

func startServer(t *testing.T, mw func(http.Handler) http.Handler) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(s.Record(testsupport.MemoryRegistry(mw)))
	t.Cleanup(s.Close)
	return s
}

func (s *server) host() string { return strings.TrimPrefix(s.URL, "http://") }

// push writes a random image as repo:tag, authenticating with auth if not nil.
func (s *server) push(t *testing.T, repo, tag string, auth authn.Authenticator) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(s.host() + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if auth == nil {
		auth = authn.Anonymous
	}
	if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return img
}

// newClient returns a client for rawURL with test-friendly defaults (no retries) and its
// log; change adjusts the options.
func newClient(t *testing.T, rawURL string, change func(*upstream.Options)) (*upstream.Client, *testsupport.LogBuffer) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testsupport.LogBuffer{}
	opts := upstream.Options{
		Registry: "registry.test",
		URL:      u,
		Retries:  -1,
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if change != nil {
		change(&opts)
	}
	c, err := upstream.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, logs
}

// requireBasic demands HTTP basic auth user:pass on every request.
func requireBasic(user, pass string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="registry.test"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// readBlob reads blob d of repo through c to its end; a failure to start is fatal, one
// while reading is returned.
func readBlob(t *testing.T, c *upstream.Client, repo string, d digest.Digest) ([]byte, error) {
	t.Helper()
	b, err := c.Blob(context.Background(), repo, d)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Body.Close()
	return io.ReadAll(b.Body)
}
