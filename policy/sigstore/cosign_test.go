package sigstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"go/build"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// Signatures made by the real cosign CLI (hack/install-test-tools.sh installs v2.6.5),
// stored by it in a registry on 127.0.0.1, read back with ggcr and verified here.

// cosignBinary finds cosign in PATH or in $(go env GOPATH)/bin; a missing cosign fails
// the test, it is never skipped.
func cosignBinary(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("cosign"); err == nil {
		return path
	}
	path := filepath.Join(build.Default.GOPATH, "bin", "cosign")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("cosign is not installed (not in PATH, not at %s): run hack/install-test-tools.sh", path)
	}
	return path
}

// cosignEnv runs cosign in dir, with an empty key password and a private home, so that
// nothing is read from or written to the user's configuration.
type cosignEnv struct {
	bin, dir string
}

func (c cosignEnv) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), c.bin, args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=", "HOME="+c.dir, "TUF_ROOT="+filepath.Join(c.dir, "tuf"), "SIGSTORE_NO_CACHE=true")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (c cosignEnv) write(t *testing.T, file string, data []byte) string {
	t.Helper()
	path := filepath.Join(c.dir, file)
	testsupport.WriteFile(t, path, data)
	return path
}

// testRegistry serves ggcr's in-memory registry (with the referrers API) on 127.0.0.1.
func testRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// pushRandomImage pushes a small random image and returns its digest reference.
func pushRandomImage(t *testing.T, host, repo string) name.Digest {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(host+"/"+repo+":v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return tag.Context().Digest(d.String())
}

// attachmentLayer is one layer of a .sig manifest as a signature source reads it.
type attachmentLayer struct {
	mediaType   string
	data        []byte
	annotations map[string]string
}

// readSigAttachment reads the sha256-<hex>.sig manifest of ref and its layers.
func readSigAttachment(t *testing.T, ref name.Digest) []attachmentLayer {
	t.Helper()
	tag := ref.Context().Tag(strings.Replace(ref.DigestStr(), ":", "-", 1) + ".sig")
	desc, err := remote.Get(tag)
	if err != nil {
		t.Fatal(err)
	}
	if desc.MediaType != types.OCIManifestSchema1 {
		t.Fatalf(".sig manifest media type %s, want %s", desc.MediaType, types.OCIManifestSchema1)
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []attachmentLayer
	for _, l := range manifest.Layers {
		out = append(out, attachmentLayer{mediaType: string(l.MediaType), data: readBlob(t, img, l.Digest), annotations: l.Annotations})
	}
	return out
}

func readBlob(t *testing.T, img v1.Image, d v1.Hash) []byte {
	t.Helper()
	layer, err := img.LayerByDigest(d)
	if err != nil {
		t.Fatal(err)
	}
	_, data := testsupport.Layer(t, layer) // the blob as stored
	return data
}

// readBundles reads the Sigstore bundles that refer to ref through the referrers API: the
// layers with a bundle media type of each referring manifest. (cosign v2.6.5 puts the
// bundle type on the config descriptor, so the referrers index shows the empty config's
// media type as the artifact type.)
func readBundles(t *testing.T, ref name.Digest) [][]byte {
	t.Helper()
	index, err := remote.Referrers(ref)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range manifest.Manifests {
		img, err := remote.Image(ref.Context().Digest(m.Digest.String()))
		if err != nil {
			t.Fatal(err)
		}
		referrer, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range referrer.Layers {
			if strings.HasPrefix(string(l.MediaType), "application/vnd.dev.sigstore.bundle") {
				out = append(out, readBlob(t, img, l.Digest))
			}
		}
	}
	return out
}

func pemPrivateKey(t *testing.T, key testKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key.priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func TestRealCosign(t *testing.T) {
	c := cosignEnv{bin: cosignBinary(t), dir: t.TempDir()}
	host := testRegistry(t)
	c.run(t, "generate-key-pair")
	pubPEM := testsupport.ReadFile(t, filepath.Join(c.dir, "cosign.pub"))
	cosignKey, err := ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := newECDSAKey(t, elliptic.P256()).public()

	// A private CA and a leaf valid now, imported as a cosign key (TOOLING.md 4).
	now := time.Now()
	ca := newTestCAAround(t, now)
	leafKey := newECDSAKey(t, elliptic.P256())
	leaf := ca.issueLeaf(t, leafKey, leafOptions{notBefore: now.Add(-time.Hour), notAfter: now.Add(time.Hour)})
	c.write(t, "leaf.key.pem", pemPrivateKey(t, leafKey))
	c.write(t, "leaf.pem", []byte(certPEM(leaf)))
	c.write(t, "chain.pem", []byte(certPEM(ca.intermediate, ca.root)))
	c.run(t, "import-key-pair", "--key", "leaf.key.pem", "--output-key-prefix", "leaf")

	t.Run("key-signed .sig attachment", func(t *testing.T) {
		ref := pushRandomImage(t, host, "test/app")
		c.run(t, "sign", "--yes", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", ref.String())
		layers := readSigAttachment(t, ref)
		if len(layers) != 1 {
			t.Fatalf("%d layers in the .sig manifest, want 1", len(layers))
		}
		l := layers[0]
		claims, err := (&Trust{PublicKeys: []crypto.PublicKey{cosignKey}}).VerifyAttachment(l.mediaType, l.data, l.annotations, time.Now())
		checkResult(t, err, "")
		if claims.ManifestDigest.String() != ref.DigestStr() {
			t.Errorf("signed digest %s, want %s", claims.ManifestDigest, ref.DigestStr())
		}
		// cosign signs the repository, without a tag (SPEC.md 5.3).
		if claims.DockerReference != ref.Context().Name() {
			t.Errorf("signed identity %q, want %q", claims.DockerReference, ref.Context().Name())
		}
		_, err = (&Trust{PublicKeys: []crypto.PublicKey{otherKey}}).VerifyAttachment(l.mediaType, l.data, l.annotations, time.Now())
		checkResult(t, err, "cryptographic signature verification failed")
		_, err = (&Trust{PublicKeys: []crypto.PublicKey{otherKey, cosignKey}}).VerifyAttachment(l.mediaType, l.data, l.annotations, time.Now())
		checkResult(t, err, "")
		// Without --tlog-upload there is no SET, so a Rekor requirement rejects it.
		_, err = (&Trust{PublicKeys: []crypto.PublicKey{cosignKey}, RekorKeys: []*ecdsa.PublicKey{newFakeRekor(t).public()}}).
			VerifyAttachment(l.mediaType, l.data, l.annotations, time.Now())
		checkResult(t, err, "missing dev.sigstore.cosign/bundle annotation")
	})

	t.Run("two signatures append two layers", func(t *testing.T) {
		ref := pushRandomImage(t, host, "test/twice")
		c.run(t, "sign", "--yes", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", ref.String())
		other := newECDSAKey(t, elliptic.P256())
		c.write(t, "other.key.pem", pemPrivateKey(t, other))
		c.run(t, "import-key-pair", "--key", "other.key.pem", "--output-key-prefix", "other")
		c.run(t, "sign", "--yes", "--key", "other.key", "--tlog-upload=false", "--allow-insecure-registry", ref.String())
		layers := readSigAttachment(t, ref)
		if len(layers) != 2 {
			t.Fatalf("%d layers in the .sig manifest, want 2", len(layers))
		}
		trust := &Trust{PublicKeys: []crypto.PublicKey{other.public()}}
		var results []bool
		for _, l := range layers {
			_, err := trust.VerifyAttachment(l.mediaType, l.data, l.annotations, time.Now())
			results = append(results, err == nil)
		}
		if !slices.Equal(results, []bool{false, true}) {
			t.Fatalf("accepted layers %v, want only the second", results)
		}
	})

	t.Run("P-384 key: cosign hashes with SHA-384, containers/image expects SHA-256", func(t *testing.T) {
		ref := pushRandomImage(t, host, "test/p384")
		p384 := newECDSAKey(t, elliptic.P384())
		c.write(t, "p384.key.pem", pemPrivateKey(t, p384))
		c.run(t, "import-key-pair", "--key", "p384.key.pem", "--output-key-prefix", "p384")
		c.run(t, "sign", "--yes", "--key", "p384.key", "--tlog-upload=false", "--allow-insecure-registry", ref.String())
		l := readSigAttachment(t, ref)[0]
		trust := &Trust{PublicKeys: []crypto.PublicKey{p384.public()}}
		_, err := trust.VerifyAttachment(l.mediaType, l.data, l.annotations, time.Now())
		checkResult(t, err, "cryptographic signature verification failed")
		// Bundles follow sigstore-go, which picks the hash by key: accepted.
		c.run(t, "sign", "--yes", "--new-bundle-format", "--key", "p384.key", "--tlog-upload=false", "--allow-insecure-registry", ref.String())
		bundles := readBundles(t, ref)
		if len(bundles) != 1 {
			t.Fatalf("%d bundles refer to the image, want 1", len(bundles))
		}
		_, err = trust.VerifyBundle(bundles[0], time.Now())
		checkResult(t, err, "")
	})

	t.Run("certificate-signed .sig attachment (PKI)", func(t *testing.T) {
		ref := pushRandomImage(t, host, "test/pki")
		c.run(t, "sign", "--yes", "--key", "leaf.key", "--certificate", "leaf.pem", "--certificate-chain", "chain.pem",
			"--tlog-upload=false", "--allow-insecure-registry", ref.String())
		l := readSigAttachment(t, ref)[0]
		if l.annotations[AnnotationCertificate] == "" || l.annotations[AnnotationChain] == "" {
			t.Fatalf("cosign wrote no certificate or chain annotation: %v", l.annotations)
		}
		pki := &PKI{Roots: ca.Roots(), SubjectEmail: testEmail}
		_, err := (&Trust{PKI: pki}).VerifyAttachment(l.mediaType, l.data, l.annotations, now)
		checkResult(t, err, "")
		_, err = (&Trust{PKI: &PKI{Roots: ca.Roots(), SubjectEmail: "other@example.test"}}).VerifyAttachment(l.mediaType, l.data, l.annotations, now)
		checkResult(t, err, "do not include")
		_, err = (&Trust{PKI: pki}).VerifyAttachment(l.mediaType, l.data, l.annotations, now.Add(2*time.Hour))
		checkResult(t, err, "certificate has expired")
	})

	t.Run("key-signed bundle (cosign --new-bundle-format)", func(t *testing.T) {
		ref := pushRandomImage(t, host, "test/bundle")
		c.run(t, "sign", "--yes", "--new-bundle-format", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", ref.String())
		bundles := readBundles(t, ref)
		if len(bundles) != 1 {
			t.Fatalf("%d bundles refer to the image, want 1", len(bundles))
		}
		t.Logf("cosign's bundle: %s", bundles[0])
		claims, err := (&Trust{PublicKeys: []crypto.PublicKey{cosignKey}}).VerifyBundle(bundles[0], time.Now())
		checkResult(t, err, "")
		if !slices.Equal(claims.Subjects, []digest.Digest{digest.Digest(ref.DigestStr())}) {
			t.Errorf("subjects %v, want [%s]", claims.Subjects, ref.DigestStr())
		}
		_, err = (&Trust{PublicKeys: []crypto.PublicKey{otherKey}}).VerifyBundle(bundles[0], time.Now())
		checkResult(t, err, "cryptographic signature verification failed")
		_, err = (&Trust{PublicKeys: []crypto.PublicKey{cosignKey}, RekorKeys: []*ecdsa.PublicKey{newFakeRekor(t).public()}}).VerifyBundle(bundles[0], time.Now())
		checkResult(t, err, "no Rekor entry")
	})

	t.Run("certificate-signed bundle (PKI)", func(t *testing.T) {
		ref := pushRandomImage(t, host, "test/bundlepki")
		c.run(t, "sign", "--yes", "--new-bundle-format", "--key", "leaf.key", "--certificate", "leaf.pem", "--certificate-chain", "chain.pem",
			"--tlog-upload=false", "--allow-insecure-registry", ref.String())
		bundles := readBundles(t, ref)
		if len(bundles) != 1 {
			t.Fatalf("%d bundles refer to the image, want 1", len(bundles))
		}
		// The bundle carries the leaf only: the intermediate comes from the configuration.
		trust := &Trust{PKI: &PKI{Roots: ca.Roots(), Intermediates: []*x509.Certificate{ca.intermediate}, SubjectEmail: testEmail}}
		claims, err := trust.VerifyBundle(bundles[0], now)
		checkResult(t, err, "")
		if !slices.Equal(claims.Subjects, []digest.Digest{digest.Digest(ref.DigestStr())}) {
			t.Errorf("subjects %v, want [%s]", claims.Subjects, ref.DigestStr())
		}
	})
}
