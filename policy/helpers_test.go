package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

// testManifest is an OCI image manifest; its exact bytes are what signatures cover.
const testManifest = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`

// fixture holds keys written to files and a manifest, for building policies and
// signatures in tests.
type fixture struct {
	t        *testing.T
	dir      string
	trusted  *pgptest.Key
	other    *pgptest.Key
	manifest []byte
	digest   digest.Digest
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		t:        t,
		dir:      t.TempDir(),
		trusted:  pgptest.NewKey(t, "trusted", pgptest.KeyOptions{}),
		other:    pgptest.NewKey(t, "other", pgptest.KeyOptions{}),
		manifest: []byte(testManifest),
	}
	f.digest = digest.FromBytes(f.manifest)
	f.write("trusted.gpg", f.trusted.Public(t))
	f.write("trusted.asc", f.trusted.ArmoredPublic(t))
	f.write("other.gpg", f.other.Public(t))
	return f
}

// write creates a file in the fixture directory and returns its path.
func (f *fixture) write(name string, data []byte) string {
	f.t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// path returns the path of a fixture file.
func (f *fixture) path(name string) string { return filepath.Join(f.dir, name) }

// policy parses and loads a policy; "$DIR" in it is replaced by the fixture directory.
func (f *fixture) policy(text string) *Policy {
	f.t.Helper()
	p, err := Parse([]byte(strings.ReplaceAll(text, "$DIR", f.dir)), "test-policy.json")
	if err != nil {
		f.t.Fatalf("Parse: %v", err)
	}
	return p
}

// sig returns a simple-signing signature by key over (manifest digest, reference).
func (f *fixture) sig(key *packet.PrivateKey, d digest.Digest, ref string) Signature {
	f.t.Helper()
	return Signature{
		Format: FormatSimpleSigning,
		Data:   pgptest.Sign(f.t, pgptest.Payload(d.String(), ref), pgptest.SignOptions{Signers: []*packet.PrivateKey{key}, Compress: true}),
	}
}

// image returns the fixture manifest pulled as ref.
func (f *fixture) image(ref string) Image {
	f.t.Helper()
	return Image{Identity: mustRef(f.t, ref), Digest: f.digest, Manifest: f.manifest}
}

// wantBlobAccepted fails unless blob, a signature in a stored form, parses with
// ParseSignatureBlob and p accepts the fixture image as busybox:1 with it.
func (f *fixture) wantBlobAccepted(p *Policy, blob []byte) {
	f.t.Helper()
	sig, err := ParseSignatureBlob(blob)
	if err != nil {
		f.t.Fatal(err)
	}
	v, err := p.Evaluate(context.Background(), f.image("busybox:1"), sigSource(sig))
	if err != nil || !v.Accepted {
		f.t.Fatalf("Evaluate = %+v, %v", v, err)
	}
}

func mustRef(t testing.TB, s string) reference.Named {
	t.Helper()
	r, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		t.Fatalf("ParseNormalizedNamed(%q): %v", s, err)
	}
	return reference.TagNameOnly(r)
}

// countingSource serves fixed signatures (or an error) and counts the calls.
type countingSource struct {
	sigs  []Signature
	err   error
	calls atomic.Int32
}

func (s *countingSource) Signatures(context.Context, Image) ([]Signature, error) {
	s.calls.Add(1)
	return s.sigs, s.err
}

func sigSource(sigs ...Signature) *countingSource { return &countingSource{sigs: sigs} }

func digestOf(b []byte) digest.Digest { return digest.FromBytes(b) }

func writeFile(path string, data []byte) error { return os.WriteFile(path, data, 0o600) }
