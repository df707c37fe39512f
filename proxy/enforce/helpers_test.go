package enforce

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy/sigsource"
	"github.com/pullgate/pullgate/proxy/upstream"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy/admission"
)

const (
	// testRegistry is the upstream's registry name, as identities and policy scopes use it.
	testRegistry = "registry.test"
	testRepo     = "org/app"
	testClient   = "127.0.0.1:40000"
)

// world is everything a gate needs, real: an in-process registry reached by an upstream
// client, a lookaside web server holding simple signatures, registries.d pointing at it, a
// signature finder, keys, and a policy parsed from JSON.
type world struct {
	t         *testing.T
	dir       string
	registry  *httptest.Server
	client    *upstream.Client
	lookaside *lookasideServer
	finder    *sigsource.Finder
	trusted   *pgptest.Key
	other     *pgptest.Key
	logs      *testsupport.LogBuffer

	mu        sync.Mutex
	overrides map[string]http.HandlerFunc // "METHOD path" of the registry -> answer
}

// override makes h answer "method path" instead of the registry.
func (w *world) override(method, path string, h http.HandlerFunc) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.overrides[method+" "+path] = h
}

// push stores m in the registry as repo:ref.
func (w *world) push(repo, ref string, m manifest) {
	w.t.Helper()
	req, err := http.NewRequest(http.MethodPut, w.registry.URL+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(m.bytes))
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Content-Type", m.mediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		w.t.Fatalf("pushing %s:%s: status %d", repo, ref, resp.StatusCode)
	}
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir(), logs: &testsupport.LogBuffer{}}
	inner := testsupport.MemoryRegistry(nil)
	w.overrides = map[string]http.HandlerFunc{}
	w.registry = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		h := w.overrides[r.Method+" "+r.URL.Path]
		w.mu.Unlock()
		if h != nil {
			h(rw, r)
			return
		}
		inner.ServeHTTP(rw, r)
	}))
	t.Cleanup(w.registry.Close)
	u, err := url.Parse(w.registry.URL)
	if err != nil {
		t.Fatal(err)
	}
	if w.client, err = upstream.New(upstream.Options{Registry: testRegistry, URL: u, Retries: -1}); err != nil {
		t.Fatal(err)
	}
	w.lookaside = newLookasideServer(t)
	w.trusted = pgptest.NewKey(t, "trusted", pgptest.KeyOptions{})
	w.other = pgptest.NewKey(t, "other", pgptest.KeyOptions{})
	w.write("trusted.gpg", w.trusted.Public(t))
	w.write("registries.d/lookaside.yaml", []byte("default-docker:\n  lookaside: "+w.lookaside.URL+"/base\n"))
	w.finder = w.newFinder()
	return w
}

// newFinder builds a signature finder over the world's registry and registries.d.
func (w *world) newFinder() *sigsource.Finder {
	w.t.Helper()
	rd, err := sigsource.LoadRegistriesD(filepath.Join(w.dir, "registries.d"))
	if err != nil {
		w.t.Fatal(err)
	}
	f, err := sigsource.NewFinder(sigsource.FinderOptions{
		Registries:  map[string]sigsource.Registry{testRegistry: w.client},
		RegistriesD: rd,
		// Signatures are looked up afresh each time, so that a test can store new ones.
		CacheTTL: time.Nanosecond,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return f
}

// write creates a file below the world's directory and returns its path.
func (w *world) write(name string, data []byte) string {
	w.t.Helper()
	p := filepath.Join(w.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.t.Fatal(err)
	}
	testsupport.WriteFile(w.t, p, data)
	return p
}

// policy parses a policy; $TRUSTED is the trusted key's file.
func (w *world) policy(text string) *countingPolicy {
	w.t.Helper()
	p, err := policy.Parse([]byte(strings.ReplaceAll(text, "$TRUSTED", filepath.Join(w.dir, "trusted.gpg"))), "policy.json")
	if err != nil {
		w.t.Fatal(err)
	}
	return &countingPolicy{Policy: p}
}

// signedByTrusted trusts the trusted key for the test registry with the default
// identity matcher and rejects everything else.
const signedByTrusted = `{"default":[{"type":"reject"}],"transports":{"docker":{"registry.test":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"$TRUSTED"}]}}}`

// gate builds a gate over p and the world's finder; change adjusts the options.
func (w *world) gate(p Evaluator, change func(*Options)) *Gate {
	w.t.Helper()
	opts := Options{Policy: p, Finder: w.finder, Blobs: UpstreamBlobs{testRegistry: w.client}, Logger: slog.New(slog.NewJSONHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if change != nil {
		change(&opts)
	}
	g, err := New(opts)
	if err != nil {
		w.t.Fatal(err)
	}
	return g
}

// sign stores a simple signature by key over (d, identity) as the next lookaside
// signature of repo@d.
func (w *world) sign(key *pgptest.Key, repo string, d digest.Digest, identity string) {
	w.t.Helper()
	w.lookaside.add(repo, d, pgptest.SimpleSignature(w.t, key, d.String(), identity))
}

// countingPolicy is a real policy that counts its evaluations and can hold them until
// released.
type countingPolicy struct {
	*policy.Policy
	calls atomic.Int32
	hold  chan struct{} // when not nil, Evaluate waits for it to be closed
}

func (p *countingPolicy) Evaluate(ctx context.Context, img policy.Image, src policy.SignatureSource) (policy.Verdict, error) {
	p.calls.Add(1)
	if p.hold != nil {
		<-p.hold
	}
	return p.Policy.Evaluate(ctx, img, src)
}

// lookasideServer is a lookaside web server on 127.0.0.1 holding signature files by
// path; a path may be made to fail a number of times first.
type lookasideServer struct {
	*httptest.Server
	mu       sync.Mutex
	files    map[string][]byte
	failures map[string]int // path -> 500 answers still to give
	requests int
}

func newLookasideServer(t *testing.T) *lookasideServer {
	t.Helper()
	s := &lookasideServer{files: map[string][]byte{}, failures: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.requests++
		if s.failures[r.URL.Path] > 0 {
			s.failures[r.URL.Path]--
			rw.WriteHeader(http.StatusInternalServerError)
			return
		}
		data, ok := s.files[r.URL.Path]
		if !ok {
			http.NotFound(rw, r)
			return
		}
		rw.Write(data)
	}))
	t.Cleanup(s.Close)
	return s
}

func lookasidePath(repo string, d digest.Digest, n int) string {
	return "/base/" + repo + "@sha256=" + d.Encoded() + "/signature-" + strconv.Itoa(n)
}

// add stores data as the next signature of repo@d.
func (s *lookasideServer) add(repo string, d digest.Digest, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := 1; ; n++ {
		p := lookasidePath(repo, d, n)
		if _, ok := s.files[p]; !ok {
			s.files[p] = data
			return
		}
	}
}

// fail makes the next times requests of signature n of repo@d answer 500.
func (s *lookasideServer) fail(repo string, d digest.Digest, n, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[lookasidePath(repo, d, n)] = times
}

// manifest is manifest bytes with what the gate learns from them.
type manifest struct {
	mediaType string
	bytes     []byte
	digest    digest.Digest
	blobs     []digest.Digest // config and layers
}

func newManifest(t *testing.T, mediaType string, v any) manifest {
	t.Helper()
	b := testsupport.JSON(t, v)
	return manifest{mediaType: mediaType, bytes: b, digest: digest.FromBytes(b)}
}

// image is a runnable OCI image manifest; name makes its config and layer unique.
func image(t *testing.T, name string) manifest {
	t.Helper()
	cfg := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString(name + " config"), Size: 100}
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString(name + " layer"), Size: 1000}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{layer}}
	m.SchemaVersion = 2
	out := newManifest(t, ocispec.MediaTypeImageManifest, m)
	out.blobs = []digest.Digest{cfg.Digest, layer.Digest}
	return out
}

// index lists children for two platforms.
func index(t *testing.T, children ...manifest) manifest {
	t.Helper()
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	for i, c := range children {
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: c.mediaType, Digest: c.digest, Size: int64(len(c.bytes)),
			Platform: &ocispec.Platform{OS: "linux", Architecture: []string{"amd64", "arm64", "s390x"}[i%3]}})
	}
	return newManifest(t, ocispec.MediaTypeImageIndex, idx)
}

// admit asks g about m requested as repo:ref (a tag or digest string).
func admit(t *testing.T, g *Gate, repo, ref string, m manifest) (admission.Decision, error) {
	t.Helper()
	return g.AdmitManifest(context.Background(), &admission.ManifestRequest{
		Target:    admission.Target{Registry: testRegistry, Repository: repo, ClientAddr: testClient},
		Reference: ref, Digest: m.digest, MediaType: m.mediaType, Bytes: m.bytes,
	})
}

// mustAdmit is admit that fails the test on an error or a decision other than allow.
func mustAdmit(t *testing.T, g *Gate, repo, ref string, m manifest, allow bool) admission.Decision {
	t.Helper()
	d, err := admit(t, g, repo, ref, m)
	if err != nil {
		t.Fatalf("%s:%s: %v", repo, ref, err)
	}
	if d.Allow != allow {
		t.Fatalf("%s:%s: allow = %v, want %v (%s)", repo, ref, d.Allow, allow, d.Reason)
	}
	return d
}

// blobAllowed asks g about blob b of registry/repo.
func blobAllowed(t *testing.T, g *Gate, registry, repo string, b digest.Digest) bool {
	t.Helper()
	d, err := g.AdmitBlob(context.Background(), &admission.BlobRequest{
		Target: admission.Target{Registry: registry, Repository: repo, ClientAddr: testClient}, Digest: b})
	if err != nil {
		t.Fatal(err)
	}
	return d.Allow
}

// loggedDecisions returns the "decision" log records written to b so far, and forgets them.
func loggedDecisions(t *testing.T, b *testsupport.LogBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.Drain()))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if rec["msg"] == "decision" {
			out = append(out, rec)
		}
	}
	return out
}

// lastDecision is the last decision logged to b since the previous call.
func lastDecision(t *testing.T, b *testsupport.LogBuffer) map[string]any {
	t.Helper()
	recs := loggedDecisions(t, b)
	if len(recs) == 0 {
		t.Fatal("no decision was logged")
	}
	return recs[len(recs)-1]
}

// size is the number of manifests and blob references held.
func (a *admissions) size() (manifests, blobs int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lru.Len(), a.weight
}

// signedApp is a fresh world with image "app" signed by the trusted key for tagIdentity.
func signedApp(t *testing.T) (*world, manifest) {
	t.Helper()
	w := newWorld(t)
	img := image(t, "app")
	w.sign(w.trusted, testRepo, img.digest, tagIdentity)
	return w, img
}
