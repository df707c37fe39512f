package integration

// Attacks on manifest classification (issue 8, item 1): an upstream that serves bytes whose
// Content-Type and body describe different manifests, so that pullgate checks a signature
// against one reading of the bytes while clients act on another.

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

// forgedManifests is what a malicious upstream answers, by request path, in place of the
// registry: a manifest's bytes under a Content-Type of the attacker's choice.
type forgedManifests struct {
	mu    sync.Mutex
	paths map[string]forgedManifest
}

type forgedManifest struct {
	contentType string
	body        []byte
}

func (f *forgedManifests) set(path, contentType string, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.paths == nil {
		f.paths = map[string]forgedManifest{}
	}
	f.paths[path] = forgedManifest{contentType, body}
}

// middleware answers GET and HEAD of the forged paths itself, with a correct digest and
// length (the bytes are what the attacker means to serve; only their meaning is forged).
func (f *forgedManifests) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		m, ok := f.paths[r.URL.Path]
		f.mu.Unlock()
		if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			next.ServeHTTP(w, r)
			return
		}
		sum := sha256.Sum256(m.body)
		w.Header().Set("Content-Type", m.contentType)
		w.Header().Set("Docker-Content-Digest", "sha256:"+hex.EncodeToString(sum[:]))
		w.Header().Set("Content-Length", strconv.Itoa(len(m.body)))
		if r.Method == http.MethodGet {
			_, _ = w.Write(m.body)
		}
	})
}

// shapePolicy trusts any tag of registry.test/shape/* signed by key (matchRepository, as
// sites that sign every tag of their repositories write it) and rejects everything else.
func shapePolicy(t *testing.T, key harness.GPGKey) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.json")
	testsupport.WriteFile(t, path, fmt.Sprintf(`{
  "default": [{"type": "reject"}],
  "transports": {"docker": {%q: [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": %q, "signedIdentity": {"type": "matchRepository"}}]}}
}
`, upstreamName+"/shape", key.PublicKeyFile))
	return path
}

// evilImage is a runnable OCI image whose one layer holds the file "owned".
func evilImage(t *testing.T) v1.Image {
	t.Helper()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	content := []byte("#!/bin/sh\necho attacker code\n")
	if err := tw.WriteHeader(&tar.Header{Name: "owned", Mode: 0o755, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, static.NewLayer(layer.Bytes(), types.OCIUncompressedLayer))
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{Architecture: "amd64", OS: "linux",
		Config: v1.Config{Entrypoint: []string{"/owned"}}, RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// schema1Disguise builds an OCI image manifest with the config and layers of evil and a
// libtrust-style "signatures" member whose protected header rebuilds signed: libtrust (and
// policy's schema1Payload) take the served bytes' first formatLength bytes and append
// formatTail. With formatLength 1 ("{", the first byte of both) and formatTail the rest of
// signed, the "payload" of the forged manifest is signed byte for byte, so a signature of
// signed matches it. No key is needed: the JWS itself is never verified by a policy.
func schema1Disguise(t *testing.T, signed []byte, evil *v1.Manifest) []byte {
	t.Helper()
	protected := testsupport.JSON(t, map[string]any{"formatLength": 1, "formatTail": base64URL(signed[1:]), "time": "2024-01-01T00:00:00Z"})
	config := testsupport.JSON(t, evil.Config)
	layers := testsupport.JSON(t, evil.Layers)
	// schemaVersion 1 and no mediaType member: what makes a body "signed schema1" for
	// containers/image's GuessMIMEType, whatever the Content-Type says.
	forged := fmt.Sprintf(`{"schemaVersion":1,"config":%s,"layers":%s,"signatures":[{"header":{"alg":"ES256"},"signature":"%s","protected":"%s"}]}`,
		config, layers, base64URL([]byte("not a signature")), base64URL(protected))
	if forged[0] != signed[0] {
		t.Fatalf("the signed manifest starts with %q", signed[0])
	}
	return []byte(forged)
}

func sha256Hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// craneRun runs crane (plain http) and returns its output and error, without failing.
func craneRun(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	dir := t.TempDir()
	return harness.Run(t, harness.ToolTimeout, []string{"HOME=" + dir, "DOCKER_CONFIG=" + dir}, "crane", append(args, "--insecure")...)
}

// tarNames lists the regular files of a tar stream.
func tarNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

// TestAttackShapeSchema1Disguise: an upstream serves, for :evil, an OCI image manifest with
// the attacker's layers plus a "signatures" member whose protected header rebuilds the bytes
// of the legitimately signed manifest D; D's signature is found for the forged digest (here
// copied to its lookaside path; an upstream can serve it itself as a .sig tag or through the
// signature API). The policy check of the digest used to be fooled by the rebuilt payload
// and crane exported the attacker's filesystem. pullgate must refuse the manifest before
// any policy work: Docker schema1 is not served, and an OCI body with schema1 members is
// not an OCI manifest.
//
// The second attack serves, with the index Content-Type, a body that lists D (accepted) and
// also carries the attacker's config and layers: a client reading the body as an image
// manifest would run them. It must be refused too.
func TestAttackShapeSchema1Disguise(t *testing.T) {
	t.Parallel()
	forged := &forgedManifests{}
	w := &enforceWorld{reg: harness.StartRegistry(t, harness.WithMiddleware(forged.middleware)), sig: harness.NewSimpleSigning(t)}
	w.trusted = w.sig.Key(t, "trusted")
	w.policy = shapePolicy(t, w.trusted)
	const repo = "shape/app"
	var signed v1.Hash
	var evil *v1.Manifest
	parallel(t, "set-up", map[string]func(*testing.T){
		"build":  w.build(t.TempDir()),
		"signed": func(t *testing.T) { signed = w.signedImage(t, repo, w.trusted, fullName(repo)+":v1") },
		"evil payload": func(t *testing.T) {
			img := evilImage(t)
			w.reg.Push(t, repo+":payload", img) // its blobs are in the repository, unsigned
			m, err := img.Manifest()
			if err != nil {
				t.Error(err)
				return
			}
			evil = m
		},
	})
	desc, err := remote.Get(w.reg.Ref(t, repo+"@"+signed.String()))
	if err != nil {
		t.Fatal(err)
	}
	d := desc.Manifest
	if sha256Hash(d) != signed {
		t.Fatalf("registry returned other bytes for %s", signed)
	}

	disguised := schema1Disguise(t, d, evil)
	disguisedDigest := sha256Hash(disguised)
	for _, p := range []string{"/v2/" + repo + "/manifests/evil", "/v2/" + repo + "/manifests/" + disguisedDigest.String()} {
		forged.set(p, "application/vnd.oci.image.manifest.v1+json", disguised)
	}
	w.sig.PutSignatures(t, repo, disguisedDigest, w.sig.Signatures(t, repo, signed))

	config := testsupport.JSON(t, evil.Config)
	layers := testsupport.JSON(t, evil.Layers)
	confused := []byte(fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d}],"config":%s,"layers":%s}`,
		signed, len(d), config, layers))
	confusedDigest := sha256Hash(confused)
	for _, p := range []string{"/v2/" + repo + "/manifests/confused", "/v2/" + repo + "/manifests/" + confusedDigest.String()} {
		forged.set(p, "application/vnd.oci.image.index.v1+json", confused)
	}

	// The signed bytes under a Content-Type with a parameter: still the same manifest.
	forged.set("/v2/"+repo+"/manifests/params", "application/vnd.oci.image.manifest.v1+json; charset=utf-8", d)

	pg := w.startPullgate(t)
	base := "http://" + pg.Host + "/v2/" + fullName(repo) + "/manifests/"

	// The legitimately signed image is served, and the unsigned payload is not.
	call(t, http.MethodGet, base+"v1").served(t, "signed :v1", signed)
	call(t, http.MethodGet, base+"payload").denied(t, "unsigned :payload")

	t.Run("OCI manifest with a schema1 signatures member", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "fs.tar")
		_, stderr, err := craneRun(t, "export", pg.Host+"/"+fullName(repo)+":evil", out)
		if err == nil {
			t.Fatalf("crane export of :evil succeeded: pullgate served the attacker's image (files %v) on the strength of %s's signature", tarNames(t, out), signed)
		}
		if !strings.Contains(stderr, "DENIED") || !strings.Contains(stderr, "Docker schema1") {
			t.Errorf("crane does not show the denial:\n%s", stderr)
		}
		e := call(t, http.MethodGet, base+"evil").denied(t, ":evil")
		for _, part := range []string{fullName(repo) + ":evil", disguisedDigest.String(), "Docker schema1 manifests are not served", `"signatures"`} {
			if !strings.Contains(e.Message, part) {
				t.Errorf("message lacks %q: %s", part, e.Message)
			}
		}
		call(t, http.MethodGet, base+disguisedDigest.String()).denied(t, "by digest")
		for _, l := range evil.Layers {
			r := call(t, http.MethodGet, "http://"+pg.Host+"/v2/"+fullName(repo)+"/blobs/"+l.Digest.String())
			r.denied(t, "evil layer")
		}
		// Refused before any policy work: no signature of the forged digest was read.
		if n := w.sig.Lookaside.Count(disguisedDigest.Hex); n != 0 {
			t.Errorf("the lookaside was asked %d times about the forged digest", n)
		}
	})

	t.Run("index Content-Type, body with layers", func(t *testing.T) {
		stdout, stderr, err := craneRun(t, "manifest", pg.Host+"/"+fullName(repo)+":confused")
		if err == nil {
			t.Fatalf("crane manifest of :confused succeeded: pullgate served an index whose body is also an image manifest:\n%s", stdout)
		}
		if !strings.Contains(stderr, "DENIED") {
			t.Errorf("crane does not show the denial:\n%s", stderr)
		}
		e := call(t, http.MethodGet, base+"confused").denied(t, ":confused")
		for _, part := range []string{fullName(repo) + ":confused", confusedDigest.String(), `"layers"`, "application/vnd.oci.image.index.v1+json"} {
			if !strings.Contains(e.Message, part) {
				t.Errorf("message lacks %q: %s", part, e.Message)
			}
		}
	})

	// pullgate verify decides through the same gate: the raw Content-Type (parameters
	// included) reaches the same shape check.
	t.Run("verify", func(t *testing.T) {
		config := w.pullgateConfig(t, w.policy, w.sig.RegistriesD)
		for _, c := range []struct {
			tag  string
			code int
			want string
		}{
			{"v1", 0, "accepted " + fullName(repo) + ":v1"},
			{"params", 0, "accepted " + fullName(repo) + ":params"},
			{"evil", 1, "Docker schema1 manifests are not served"},
			{"confused", 1, "a manifest whose Content-Type and body disagree is not served"},
		} {
			code, out, errOut := harness.RunPullgate(t, w.bin, "verify", "--config", config, fullName(repo)+":"+c.tag)
			if code != c.code || !strings.Contains(out, c.want) {
				t.Errorf("verify :%s: exit %d, want %d with %q\n%s%s", c.tag, code, c.code, c.want, out, errOut)
			}
		}
	})

	// The signed image is still served after the attacks, also under a Content-Type with
	// a parameter.
	call(t, http.MethodGet, base+"v1").served(t, "signed :v1 after the attacks", signed)
	call(t, http.MethodGet, base+"params").served(t, "signed bytes as :params", signed)
}
