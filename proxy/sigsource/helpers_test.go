package sigsource

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy/upstream"
)

// testRegistryName is the upstream's registry name: the name identities and registries.d
// use (DESIGN.md difference 4), not its address.
const testRegistryName = "registry.test"

// testRegistry is an in-memory registry (go-containerregistry) on 127.0.0.1, reached by a
// real upstream.Client. It records every request, lets a test answer chosen requests
// itself, and can offer the registry signature API extension.
type testRegistry struct {
	*httptest.Server
	client *upstream.Client

	mu        sync.Mutex
	requests  []string                    // "GET /v2/org/app/manifests/..."
	overrides map[string]http.HandlerFunc // "METHOD path" -> answer instead of the registry
	// sigAPI, when not nil, makes /v2/ advertise the signature API and serves
	// /extensions/v2/<repo>/signatures/<digest> from it ("<repo>@<digest>" -> body).
	sigAPI map[string]string
	// blobBytes counts the body bytes written in answer to blob requests.
	blobBytes atomic.Int64
}

// newTestRegistry starts a registry; referrers enables its OCI referrers API (without
// it, /referrers answers 404 and the referrers tag schema is used).
func newTestRegistry(t *testing.T, referrers bool) *testRegistry {
	t.Helper()
	inner := testsupport.MemoryRegistry(nil, registry.WithReferrersSupport(referrers))
	r := &testRegistry{overrides: map[string]http.HandlerFunc{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		key := req.Method + " " + req.URL.Path
		r.mu.Lock()
		r.requests = append(r.requests, key)
		override := r.overrides[key]
		sigAPI := r.sigAPI
		r.mu.Unlock()
		if strings.Contains(req.URL.Path, "/blobs/sha256:") {
			w = testsupport.CountingWriter{ResponseWriter: w, N: &r.blobBytes}
		}
		switch {
		case override != nil:
			override(w, req)
		case sigAPI != nil && strings.HasPrefix(req.URL.Path, "/extensions/v2/"):
			name := strings.TrimPrefix(req.URL.Path, "/extensions/v2/")
			repo, d, _ := strings.Cut(name, "/signatures/")
			body, ok := sigAPI[repo+"@"+d]
			if !ok {
				http.NotFound(w, req)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, body)
		default:
			if sigAPI != nil && req.URL.Path == "/v2/" {
				w.Header().Set("X-Registry-Supports-Signatures", "1")
			}
			inner.ServeHTTP(w, req)
		}
	}))
	t.Cleanup(r.Close)
	u, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	r.client, err = upstream.New(upstream.Options{Registry: testRegistryName, URL: u, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// override answers "METHOD path" with h instead of the registry.
func (r *testRegistry) override(method, path string, h http.HandlerFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.overrides[method+" "+path] = h
}

// enableSignatureAPI makes the registry advertise and serve the signature API.
func (r *testRegistry) enableSignatureAPI(lists map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sigAPI = lists
}

// count is how many requests matched method and had a path containing pathPart.
func (r *testRegistry) count(method, pathPart string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, req := range r.requests {
		m, p, _ := strings.Cut(req, " ")
		if m == method && strings.Contains(p, pathPart) {
			n++
		}
	}
	return n
}

// countExact is how many requests were exactly "method path".
func (r *testRegistry) countExact(method, path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, req := range r.requests {
		if req == method+" "+path {
			n++
		}
	}
	return n
}

// repoRequests is how many requests were made below /v2/<repo>/ (anything but the
// /v2/ probe).
func (r *testRegistry) repoRequests(repo string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, req := range r.requests {
		if _, p, _ := strings.Cut(req, " "); strings.HasPrefix(p, "/v2/"+repo+"/") {
			n++
		}
	}
	return n
}

// putBlob uploads data (monolithic POST) and returns its descriptor.
func (r *testRegistry) putBlob(t *testing.T, repo, mediaType string, data []byte) ocispec.Descriptor {
	t.Helper()
	d := digest.FromBytes(data)
	resp, err := http.Post(r.URL+"/v2/"+repo+"/blobs/uploads/?digest="+d.String(), "application/octet-stream", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("uploading blob %s: status %d", d, resp.StatusCode)
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

// putManifest stores data as repo:ref (a tag or digest) with Content-Type contentType.
func (r *testRegistry) putManifest(t *testing.T, repo, ref, contentType string, data []byte) ocispec.Descriptor {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, r.URL+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("putting manifest %s:%s: status %d", repo, ref, resp.StatusCode)
	}
	return ocispec.Descriptor{MediaType: contentType, Digest: digest.FromBytes(data), Size: int64(len(data))}
}

// emptyConfig is the OCI empty descriptor's blob, pushed to repo.
func (r *testRegistry) emptyConfig(t *testing.T, repo, mediaType string) ocispec.Descriptor {
	t.Helper()
	return r.putBlob(t, repo, mediaType, []byte("{}"))
}

// sigLayer is one layer of a .sig manifest or a referrer artifact.
type sigLayer struct {
	mediaType   string
	data        []byte
	annotations map[string]string
}

// putSigManifest pushes the layers and an OCI image manifest listing them as
// repo:sha256-<hex>.sig for subject, as cosign does, and returns the manifest's descriptor.
func (r *testRegistry) putSigManifest(t *testing.T, repo string, subject digest.Digest, layers ...sigLayer) ocispec.Descriptor {
	t.Helper()
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    r.emptyConfig(t, repo, ocispec.MediaTypeImageConfig),
	}
	m.SchemaVersion = 2
	for _, l := range layers {
		desc := r.putBlob(t, repo, l.mediaType, l.data)
		desc.Annotations = l.annotations
		m.Layers = append(m.Layers, desc)
	}
	return r.putManifest(t, repo, sigTag(subject), ocispec.MediaTypeImageManifest, testsupport.JSON(t, m))
}

// putReferrer pushes an artifact manifest whose subject is subject: config of
// configType, the given layers, artifactType as given (may be empty). It is stored by
// digest only, as cosign attaches bundles.
func (r *testRegistry) putReferrer(t *testing.T, repo string, subject ocispec.Descriptor, artifactType, configType string, layers ...sigLayer) ocispec.Descriptor {
	t.Helper()
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       r.emptyConfig(t, repo, configType),
		Subject:      &subject,
		Annotations:  map[string]string{"org.opencontainers.image.created": "2025-01-01T00:00:00Z"},
	}
	m.SchemaVersion = 2
	for _, l := range layers {
		desc := r.putBlob(t, repo, l.mediaType, l.data)
		desc.Annotations = l.annotations
		m.Layers = append(m.Layers, desc)
	}
	data := testsupport.JSON(t, m)
	desc := r.putManifest(t, repo, digest.FromBytes(data).String(), ocispec.MediaTypeImageManifest, data)
	desc.ArtifactType = artifactType
	return desc
}

// putImage pushes a small runnable image (config and one layer) as repo:tag.
func (r *testRegistry) putImage(t *testing.T, repo, tag string) ocispec.Descriptor {
	t.Helper()
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    r.putBlob(t, repo, ocispec.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)),
		Layers:    []ocispec.Descriptor{r.putBlob(t, repo, ocispec.MediaTypeImageLayer, []byte("layer of "+repo+":"+tag))},
	}
	m.SchemaVersion = 2
	return r.putManifest(t, repo, tag, ocispec.MediaTypeImageManifest, testsupport.JSON(t, m))
}

func sigTag(d digest.Digest) string { return "sha256-" + d.Encoded() + ".sig" }

// newTestFinder builds a Finder over reg with the registries.d files given (none: an
// empty configuration).
func newTestFinder(t *testing.T, reg *testRegistry, registriesD map[string]string, change func(*FinderOptions)) *Finder {
	t.Helper()
	rd := &RegistriesD{docker: map[string]namespace{}}
	if registriesD != nil {
		var err error
		if rd, err = LoadRegistriesD(writeFiles(t, registriesD)); err != nil {
			t.Fatal(err)
		}
	}
	opts := FinderOptions{Registries: map[string]Registry{testRegistryName: reg.client}, RegistriesD: rd}
	if change != nil {
		change(&opts)
	}
	f, err := NewFinder(opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// attachmentsOn is a registries.d enabling sigstore attachments for the test registry.
var attachmentsOn = map[string]string{"a.yaml": "docker:\n  " + testRegistryName + ":\n    use-sigstore-attachments: true\n"}

// signaturesOf asks f for the signatures of registry.test/<repo>@d.
func signaturesOf(t *testing.T, f *Finder, repo string, d digest.Digest) ([]policy.Signature, error) {
	t.Helper()
	ref := mustRef(t, testRegistryName+"/"+repo+"@"+d.String())
	return f.Signatures(context.Background(), testRegistryName, repo, ref, d)
}

// sigServer is a lookaside web server on 127.0.0.1: answers maps a URL path to its
// handler, anything else is 404. It records the paths requested.
type sigServer struct {
	*httptest.Server
	mu      sync.Mutex
	answers map[string]http.HandlerFunc
	paths   []string
}

func newSigServer(t *testing.T) *sigServer {
	t.Helper()
	s := &sigServer{answers: map[string]http.HandlerFunc{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.paths = append(s.paths, r.URL.Path)
		h := s.answers[r.URL.Path]
		s.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// sigPath is the path of signature n of repo@d below the server's /base lookaside.
func sigPath(repo string, d digest.Digest, n int) string {
	return "/base/" + repo + "@" + d.Algorithm().String() + "=" + d.Encoded() + "/signature-" + strconv.Itoa(n)
}

// put serves data at signature n of repo@d.
func (s *sigServer) put(repo string, d digest.Digest, n int, data []byte) {
	s.answer(sigPath(repo, d, n), func(w http.ResponseWriter, _ *http.Request) { w.Write(data) })
}

// answer makes h answer path.
func (s *sigServer) answer(path string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers[path] = h
}

// requests returns the paths requested so far.
func (s *sigServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.paths)
}

// registriesD is a registries.d file whose default-docker lookaside is the server's
// /base, plus extra YAML lines under "docker:" when given.
func (s *sigServer) registriesD(docker string) map[string]string {
	yaml := "default-docker:\n  lookaside: " + s.URL + "/base\n"
	if docker != "" {
		yaml += "docker:\n" + docker
	}
	return map[string]string{"lookaside.yaml": yaml}
}

// total is the number of requests received so far.
func (r *testRegistry) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.requests)
}

// sigstorePolicy trusts cosign signatures by the PEM key for the test registry, with
// cosign's repository-only identity, and rejects everything else.
func sigstorePolicy(t *testing.T, pemKey []byte) *policy.Policy {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cosign.pub")
	testsupport.WriteFile(t, path, pemKey)
	p, err := policy.Parse([]byte(`{"default":[{"type":"reject"}],"transports":{"docker":{"`+testRegistryName+
		`":[{"type":"sigstoreSigned","keyPath":"`+path+`","signedIdentity":{"type":"matchRepository"}}]}}}`), "policy.json")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// signedCosignLayer is a .sig layer as `cosign sign --key` writes it for d: the payload
// with cosign's repository-only identity and its ECDSA signature.
func signedCosignLayer(t *testing.T, key *ecdsa.PrivateKey, d digest.Digest) sigLayer {
	t.Helper()
	payload := []byte(`{"critical":{"identity":{"docker-reference":"` + testRegistryName + "/" + testRepo +
		`"},"image":{"docker-manifest-digest":"` + d.String() + `"},"type":"cosign container image signature"},"optional":null}`)
	sum := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return sigLayer{mediaType: mediaTypeSimpleSign, data: payload,
		annotations: map[string]string{"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(sig)}}
}

// inUse is the number of bytes taken from the pool.
func (p *bytePool) inUse() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used
}

// len is the number of manifests remembered.
func (v *verdictSettings) len() int { return v.lru.Len() }

// wantLookup fails unless a lookup ended as a table row wants: with an ErrRegistryFetch
// mentioning wantErr, or, when wantErr is empty, with n signatures. It reports whether
// the signatures are there to be checked further.
func wantLookup(t *testing.T, sigs []policy.Signature, err error, wantErr string, n int) bool {
	t.Helper()
	if wantErr != "" {
		if !errors.Is(err, ErrRegistryFetch) || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err = %v, want ErrRegistryFetch mentioning %q", err, wantErr)
		}
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(sigs) != n {
		t.Fatalf("found %d signatures, want %d: %+v", len(sigs), n, sigs)
	}
	return true
}
