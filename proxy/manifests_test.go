package proxy_test

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/content"
	"github.com/pullgate/pullgate/proxy/gatetest"
)

// The Accept lines c/image sends, one per line.
var clientAccept = []string{
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.v1+prettyjws",
	"application/vnd.docker.distribution.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.index.v1+json",
}

func TestManifestAnswersAsUpstream(t *testing.T) {
	u := startUpstream(t, nil)
	u.push(t, "team/docker", "v1", randomImage(t))
	u.push(t, "team/oci", "v1", mutate.MediaType(randomImage(t), types.OCIManifestSchema1))
	idx, err := random.Index(512, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	idxRef, _ := name.ParseReference(u.host() + "/team/index:v1")
	if err := remote.WriteIndex(idxRef, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	p := startProxy(t, gatetest.AllowAll{}, u)

	for _, path := range []string{"team/docker/manifests/v1", "team/oci/manifests/v1", "team/index/manifests/v1", "team/index/manifests/" + idxDigest.String()} {
		t.Run(path, func(t *testing.T) {
			direct := get(t, http.DefaultClient, "GET", u.URL+"/v2/"+path, clientAccept)
			u.Reset()
			resp, body, err := p.do(t, "GET", "/v2/"+path, http.Header{"Accept": clientAccept})
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET through proxy: %s %v %s", resp.Status, err, body)
			}
			if !bytes.Equal(body, direct.body) {
				t.Fatalf("body differs from upstream's")
			}
			for _, h := range []string{"Content-Type", "Docker-Content-Digest", "Content-Length"} {
				if got, want := resp.Header.Get(h), direct.header.Get(h); got != want || got == "" {
					t.Errorf("%s = %q, upstream said %q", h, got, want)
				}
			}
			// Every Accept line reached the upstream unchanged.
			for _, r := range u.Requests() {
				if strings.Contains(r.Path, "/manifests/") && !slices.Equal(r.Header.Values("Accept"), clientAccept) {
					t.Errorf("upstream got Accept %q, want %q", r.Header.Values("Accept"), clientAccept)
				}
			}
			head, hbody, _ := p.do(t, "HEAD", "/v2/"+path, http.Header{"Accept": clientAccept})
			if head.StatusCode != 200 || len(hbody) != 0 {
				t.Fatalf("HEAD: %d, %d body bytes", head.StatusCode, len(hbody))
			}
			for _, h := range []string{"Content-Type", "Docker-Content-Digest", "Content-Length"} {
				if head.Header.Get(h) != resp.Header.Get(h) {
					t.Errorf("HEAD %s = %q, GET said %q", h, head.Header.Get(h), resp.Header.Get(h))
				}
			}
		})
	}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func get(t *testing.T, c *http.Client, method, url string, accept []string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.Header["Accept"] = accept
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b.Bytes()}
}

func TestGateSeesVerifiedManifest(t *testing.T) {
	u := startUpstream(t, nil)
	d := u.push(t, "team/app", "v1", randomImage(t))
	rec := &gatetest.Recorder{}
	p := startProxy(t, rec, u)
	_, body, _ := p.do(t, "GET", "/v2/team/app/manifests/v1", nil)
	p.do(t, "HEAD", "/v2/"+testRegistry+"/team/app/manifests/"+d.String(), nil)
	got := rec.Manifests()
	if len(got) != 2 {
		t.Fatalf("gate saw %d manifest requests, want 2", len(got))
	}
	for i, m := range got {
		if m.Registry != testRegistry || m.Repository != "team/app" || m.Digest.String() != d.String() ||
			!bytes.Equal(m.Bytes, body) || m.MediaType != string(types.DockerManifestSchema2) || m.ClientAddr == "" {
			t.Errorf("gate request %d: %+v", i, m.Target)
		}
	}
	if got[0].Reference != "v1" || got[0].Head || got[1].Reference != d.String() || !got[1].Head {
		t.Errorf("references/HEAD: %q %v, %q %v", got[0].Reference, got[0].Head, got[1].Reference, got[1].Head)
	}
}

func TestDeniedManifest(t *testing.T) {
	u := startUpstream(t, nil)
	u.push(t, "team/app", "v1", randomImage(t))
	gate := gatetest.Funcs{Manifest: func(_ context.Context, m *admission.ManifestRequest) (admission.Decision, error) {
		return admission.Decision{Reason: "no signature for " + m.Repository, Detail: map[string]string{"scope": "default"}}, nil
	}}
	p := startProxy(t, gate, u)
	resp, body, _ := p.do(t, "GET", "/v2/team/app/manifests/v1", nil)
	if resp.StatusCode != 403 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if code, msg := ociError(t, body); code != "DENIED" || msg != "no signature for team/app" {
		t.Fatalf("%s %q", code, msg)
	}
	if !strings.Contains(string(body), `"detail":{"scope":"default"}`) {
		t.Fatalf("detail missing: %s", body)
	}
	if resp.Header.Get("Docker-Content-Digest") != "" {
		t.Fatal("a denied answer carries Docker-Content-Digest")
	}
	head, hbody, _ := p.do(t, "HEAD", "/v2/team/app/manifests/v1", nil)
	if head.StatusCode != 403 || len(hbody) != 0 {
		t.Fatalf("HEAD: %d with %d bytes", head.StatusCode, len(hbody))
	}
}

func TestManifestCacheAnswersByDigestAndHeadByTag(t *testing.T) {
	u := startUpstream(t, nil)
	d := u.push(t, "team/app", "v1", randomImage(t))
	p := startProxy(t, gatetest.AllowAll{}, u)
	if resp, _, _ := p.do(t, "GET", "/v2/team/app/manifests/v1", nil); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	u.Reset()
	for _, method := range []string{"GET", "HEAD"} {
		resp, _, _ := p.do(t, method, "/v2/team/app/manifests/"+d.String(), nil)
		if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != d.String() {
			t.Fatalf("%s by digest: %s %q", method, resp.Status, resp.Header.Get("Docker-Content-Digest"))
		}
	}
	if n := len(u.Requests()); n != 0 {
		t.Fatalf("by-digest requests for a cached manifest went upstream %d times", n)
	}
	// HEAD by tag: an upstream HEAD picks the cached bytes; no GET.
	resp, _, _ := p.do(t, "HEAD", "/v2/team/app/manifests/v1", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("HEAD by tag: %s", resp.Status)
	}
	if h, g := u.Count("HEAD", "/manifests/"), u.Count("GET", "/manifests/"); h != 1 || g != 0 {
		t.Fatalf("HEAD by tag: upstream saw %d HEAD and %d GET, want 1 and 0", h, g)
	}
	// Not cached in another repository: fetched there.
	u.push(t, "team/other", "v1", randomImage(t))
	u.Reset()
	if resp, _, _ := p.do(t, "HEAD", "/v2/team/other/manifests/"+d.String(), nil); resp.StatusCode != 404 {
		t.Fatalf("digest of team/app served for team/other: %s", resp.Status)
	}
	if g := u.Count("GET", "/v2/team/other/manifests/"); g != 1 {
		t.Fatalf("upstream saw %d GETs for team/other", g)
	}
}

func TestConcurrentManifestRequestsGoUpstreamOnce(t *testing.T) {
	release := make(chan struct{})
	var arrived sync.Once
	first := make(chan struct{})
	u := startUpstream(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "GET" && strings.Contains(r.URL.Path, "/manifests/v1") {
				arrived.Do(func() { close(first) })
				<-release
			}
			next.ServeHTTP(w, r)
		})
	})
	d := u.push(t, "team/app", "v1", randomImage(t))
	p := startProxy(t, gatetest.AllowAll{}, u)

	const clients = 12
	var wg sync.WaitGroup
	digests := make([]string, clients)
	for i := range clients {
		wg.Go(func() {
			resp, _, err := p.do(t, "GET", "/v2/team/app/manifests/v1", http.Header{"Accept": clientAccept})
			if err == nil && resp.StatusCode == 200 {
				digests[i] = resp.Header.Get("Docker-Content-Digest")
			}
		})
	}
	<-first
	// Give the other requests time to join the one in flight; the assertion below does
	// not depend on timing, only on them having joined.
	time.Sleep(300 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := u.Count("GET", "/manifests/v1"); n != 1 {
		t.Fatalf("upstream saw %d manifest GETs for %d concurrent clients, want 1", n, clients)
	}
	for i, got := range digests {
		if got != d.String() {
			t.Fatalf("client %d got digest %q", i, got)
		}
	}
}

func TestWaiterStopsWhenItsClientGoes(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	u := startUpstream(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") {
				<-release
			}
			next.ServeHTTP(w, r)
		})
	})
	p := startProxy(t, gatetest.AllowAll{}, u)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.URL+"/v2/team/app/manifests/v1", nil)
	if resp, err := p.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("request answered %s while the upstream hangs", resp.Status)
	}
	// The handler stops waiting (and logs its access line) although the shared upstream
	// fetch is still hanging.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logs.String(), "client_gone=true") {
		if time.Now().After(deadline) {
			t.Fatalf("the handler is still waiting for the upstream:\n%s", p.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lie answers manifest requests for path with a modified upstream answer.
func lie(path string, change func(h http.Header, body []byte) []byte) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.URL.Path, path) || r.Method != "GET" {
				next.ServeHTTP(w, r)
				return
			}
			rec := testsupport.NewResponseBuffer()
			next.ServeHTTP(rec, r)
			body := change(rec.Header(), rec.Body.Bytes())
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(rec.Status)
			w.Write(body)
		})
	}
}

func TestLyingManifestUpstream(t *testing.T) {
	other := digest.FromString("something else").String()
	tests := []struct {
		name   string
		change func(h http.Header, body []byte) []byte
		ref    func(d string) string
	}{
		{name: "wrong Docker-Content-Digest", ref: func(string) string { return "v1" },
			change: func(h http.Header, b []byte) []byte { h.Set("Docker-Content-Digest", other); return b }},
		{name: "malformed Docker-Content-Digest", ref: func(string) string { return "v1" },
			change: func(h http.Header, b []byte) []byte { h.Set("Docker-Content-Digest", "sha256:xyz"); return b }},
		{name: "other bytes for the digest asked", ref: func(d string) string { return d },
			change: func(h http.Header, b []byte) []byte { h.Del("Docker-Content-Digest"); return append(b, ' ') }},
		{name: "other bytes under the tag's announced digest", ref: func(string) string { return "v1" },
			change: func(h http.Header, b []byte) []byte { return append(b, ' ') }},
		{name: "too large", ref: func(string) string { return "v1" },
			change: func(h http.Header, b []byte) []byte {
				h.Del("Docker-Content-Digest")
				return append(b, bytes.Repeat([]byte(" "), content.MaxManifestBytes)...)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := startUpstream(t, lie("/manifests/", tt.change))
			d := u.push(t, "team/app", "v1", randomImage(t))
			p := startProxy(t, gatetest.AllowAll{}, u)
			for _, method := range []string{"GET", "HEAD"} {
				resp, body, _ := p.do(t, method, "/v2/team/app/manifests/"+tt.ref(d.String()), nil)
				if resp.StatusCode != http.StatusBadGateway {
					t.Fatalf("%s: status %d, want 502", method, resp.StatusCode)
				}
				if method == "GET" {
					if code, _ := ociError(t, body); code != "UNKNOWN" {
						t.Fatalf("code %s", code)
					}
				}
			}
			if !strings.Contains(p.logs.String(), "level=ERROR") {
				t.Fatalf("nothing logged at ERROR:\n%s", p.logs.String())
			}
		})
	}
}
