package upstream_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/upstream"
)

// internalSecret is what the "internal service" a redirect points at answers: it must
// never come back to a caller.
const internalSecret = `{"AccessKeyId":"ASIA-internal","SecretAccessKey":"internal-secret","manifests":[]}`

// internalService stands for a metadata service on another loopback port. It counts the
// requests that reach it and remembers the Authorization headers it was sent.
type internalService struct {
	*httptest.Server
	hits atomic.Int32
	mu   sync.Mutex
	auth []string
}

func startInternal(t *testing.T, body []byte) *internalService {
	t.Helper()
	s := &internalService{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		s.auth = append(s.auth, r.Header.Get("Authorization"))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// bearerRegistry is an upstream that demands a bearer token (from its own /token) on
// every /v2/<repo>/ request, as Docker Hub does, and hands requests that carry it to
// serve.
func bearerRegistry(t *testing.T, serve http.HandlerFunc) *httptest.Server {
	t.Helper()
	const token = "upstream-bearer-token"
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"token":"`+token+`"}`)
		case r.Header.Get("Authorization") != "Bearer "+token:
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+srv.URL+`/token",service="registry.test"`)
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		default:
			serve(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestAPIRequestsFollowNoRedirectToAnotherHost(t *testing.T) {
	tests := []struct {
		name string
		path string // part of the upstream path that is redirected
		call func(ctx context.Context, c *upstream.Client) ([]byte, error)
	}{
		{name: "manifest", path: "/manifests/", call: func(ctx context.Context, c *upstream.Client) ([]byte, error) {
			m, err := c.Manifest(ctx, "team/app", "v1", nil)
			if err != nil {
				return nil, err
			}
			return m.Bytes, nil
		}},
		{name: "manifest HEAD", path: "/manifests/", call: func(ctx context.Context, c *upstream.Client) ([]byte, error) {
			_, err := c.HeadManifest(ctx, "team/app", "v1", nil)
			return nil, err
		}},
		{name: "tags", path: "/tags/list", call: func(ctx context.Context, c *upstream.Client) ([]byte, error) {
			l, err := c.Tags(ctx, "team/app", nil)
			if err != nil {
				return nil, err
			}
			return l.Body, nil
		}},
		{name: "referrers", path: "/referrers/", call: func(ctx context.Context, c *upstream.Client) ([]byte, error) {
			l, err := c.Referrers(ctx, "team/app", digest.FromString("subject"), nil)
			if err != nil {
				return nil, err
			}
			return l.Body, nil
		}},
		{name: "signature API", path: "/signatures/", call: func(ctx context.Context, c *upstream.Client) ([]byte, error) {
			return c.ExtensionSignatures(ctx, "team/app", digest.FromString("signed"))
		}},
		{name: "ping", path: "/v2/", call: func(ctx context.Context, c *upstream.Client) ([]byte, error) {
			m, err := c.Manifest(ctx, "team/app", "v1", nil)
			if err != nil {
				return nil, err
			}
			return m.Bytes, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			internal := startInternal(t, []byte(internalSecret))
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.Contains(r.URL.Path, tt.path) {
					http.Redirect(w, r, internal.URL+"/latest/meta-data/iam/credentials", http.StatusTemporaryRedirect)
					return
				}
				if r.URL.Path == "/v2/" {
					w.WriteHeader(http.StatusOK)
					return
				}
				http.NotFound(w, r)
			}))
			t.Cleanup(srv.Close)
			c, _ := newClient(t, srv.URL, nil)
			got, err := tt.call(context.Background(), c)
			if n := internal.hits.Load(); n != 0 {
				t.Errorf("the internal service was reached %d times", n)
			}
			if bytes.Contains(got, []byte("internal-secret")) {
				t.Fatalf("the internal service's answer came back: %q", got)
			}
			pe := proxy.Answer(err)
			if err == nil || pe.HTTPStatus() != http.StatusBadGateway {
				t.Fatalf("want a 502, got %v", err)
			}
			if !errors.Is(err, upstream.ErrRedirectRefused) {
				t.Fatalf("the error does not say the redirect was refused: %v", err)
			}
			if strings.Contains(pe.Message, internal.Listener.Addr().String()) {
				t.Fatalf("the client is told where the redirect pointed: %q", pe.Message)
			}
		})
	}
}

func TestTokenRequestFollowsNoRedirect(t *testing.T) {
	internal := startInternal(t, []byte(`{"token":"internal-secret"}`))
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token":
			// By name: go-containerregistry refuses a redirect of the token request to a
			// loopback or private IP literal itself, but not to a name.
			http.Redirect(w, r, "http://localhost:"+internal.URL[strings.LastIndex(internal.URL, ":")+1:]+"/token", http.StatusTemporaryRedirect)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+srv.URL+`/token",service="registry.test"`)
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(srv.Close)
	c, _ := newClient(t, srv.URL, func(o *upstream.Options) { o.Username, o.Password = "puller", "s3cret" })
	_, err := c.Manifest(context.Background(), "team/app", "v1", nil)
	if n := internal.hits.Load(); n != 0 {
		t.Errorf("the token request's redirect was followed (%d requests)", n)
	}
	if !errors.Is(err, upstream.ErrRedirectRefused) {
		t.Fatalf("want a refused redirect, got %v", err)
	}
}

func TestSameHostRedirectOfAnAPIRequestIsFollowed(t *testing.T) {
	var redirecting atomic.Bool // once the image is pushed
	s := startServer(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !redirecting.Load() {
				next.ServeHTTP(w, r)
				return
			}
			if strings.HasPrefix(r.URL.Path, "/old/") {
				http.Redirect(w, r, strings.TrimPrefix(r.URL.Path, "/old")+"?moved=1", http.StatusMovedPermanently)
				return
			}
			if strings.Contains(r.URL.Path, "/manifests/") && r.URL.Query().Get("moved") == "" {
				http.Redirect(w, r, "/old"+r.URL.Path+"?moved=1", http.StatusTemporaryRedirect)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	img := s.push(t, "team/app", "v1", nil)
	want, _ := img.Digest()
	redirecting.Store(true)
	c, _ := newClient(t, s.URL, nil)
	m, err := c.Manifest(context.Background(), "team/app", "v1", nil)
	if err != nil || m.Digest.String() != want.String() {
		t.Fatalf("Manifest after a same-host redirect: %v", err)
	}
}

func TestCrossHostBlobRedirectGetsNoBearerToken(t *testing.T) {
	content := []byte("layer bytes kept in object storage")
	dgst := digest.FromBytes(content)
	storage := startInternal(t, content)
	reg := bearerRegistry(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/blobs/"+dgst.String()) {
			http.Redirect(w, r, storage.URL+"/bucket/"+dgst.Encoded()+"?X-Amz-Signature=presigned", http.StatusTemporaryRedirect)
			return
		}
		http.NotFound(w, r)
	})
	c, _ := newClient(t, reg.URL, func(o *upstream.Options) { o.Username, o.Password = "puller", "s3cret" })
	got, err := readBlob(t, c, "team/app", dgst)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("blob: %q %v", got, err)
	}
	storage.mu.Lock()
	defer storage.mu.Unlock()
	if len(storage.auth) != 1 || storage.auth[0] != "" {
		t.Fatalf("object storage saw Authorization %q", storage.auth)
	}
}

func TestBlobRedirectFromHTTPSToHTTPIsRefused(t *testing.T) {
	layer := []byte("layer bytes")
	dgst := digest.FromBytes(layer)
	plain := startInternal(t, layer)
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		t.Run(method, func(t *testing.T) {
			tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.Contains(r.URL.Path, "/blobs/") {
					http.Redirect(w, r, plain.URL+"/bucket/"+dgst.Encoded(), http.StatusTemporaryRedirect)
					return
				}
				w.WriteHeader(http.StatusOK)
			}))
			t.Cleanup(tlsSrv.Close)
			caFile := filepath.Join(t.TempDir(), "ca.pem")
			testsupport.WriteFile(t, caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}))
			c, _ := newClient(t, tlsSrv.URL, func(o *upstream.Options) { o.CAFile = caFile })
			err := blobOrStat(c, method, "team/app", dgst)
			pe := proxy.Answer(err)
			if err == nil || pe.HTTPStatus() != http.StatusBadGateway || !errors.Is(err, upstream.ErrRedirectRefused) {
				t.Fatalf("an https to http blob redirect gave %v", err)
			}
			if n := plain.hits.Load(); n != 0 {
				t.Fatalf("the http target was reached %d times", n)
			}
		})
	}
}

// blobOrStat opens (and closes) a blob for GET, or stats it for HEAD.
func blobOrStat(c *upstream.Client, method, repo string, d digest.Digest) error {
	if method == http.MethodHead {
		_, err := c.StatBlob(context.Background(), repo, d)
		return err
	}
	b, err := c.Blob(context.Background(), repo, d)
	if err == nil {
		b.Body.Close()
	}
	return err
}
