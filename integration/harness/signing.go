package harness

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// SimpleSigning is everything "simple signing" needs, made for one test: a GnuPG
// keyring, a lookaside server over its staging folder, and a registries.d folder whose
// default-docker section names both (lookaside for reading, lookaside-staging for
// skopeo's writes), as in TOOLING.md 3b. pullgate and skopeo read the same registries.d.
type SimpleSigning struct {
	Keyring   *GPGKeyring
	Lookaside *Lookaside
	// RegistriesD is the registries.d folder.
	RegistriesD string
	keys        string
}

// NewSimpleSigning starts the lookaside and writes registries.d.
func NewSimpleSigning(t testing.TB) *SimpleSigning {
	t.Helper()
	dir := t.TempDir()
	staging := filepath.Join(dir, "lookaside")
	regd := filepath.Join(dir, "registries.d")
	keys := filepath.Join(dir, "keys")
	for _, d := range []string{staging, regd, keys} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s := &SimpleSigning{Keyring: NewGPGKeyring(t), Lookaside: StartLookaside(t, staging), RegistriesD: regd, keys: keys}
	yaml := fmt.Sprintf("default-docker:\n  lookaside: %s\n  lookaside-staging: file://%s\n", s.Lookaside.URL, staging)
	if err := os.WriteFile(filepath.Join(regd, "default.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// Key makes a new signing key (name: one word).
func (s *SimpleSigning) Key(t testing.TB, name string) GPGKey {
	t.Helper()
	return s.Keyring.NewKey(t, name, s.keys)
}

// CopySigned copies the image src to dst (docker://... references of plain-http
// registries) with skopeo, signing what it writes with key and identity (a full
// reference with tag) into the lookaside. Extra flags (--all) go before the references.
func (s *SimpleSigning) CopySigned(t testing.TB, key GPGKey, identity, src, dst string, flags ...string) {
	t.Helper()
	args := append([]string{"copy", "--remove-signatures", "--src-tls-verify=false", "--dest-tls-verify=false",
		"--sign-by", key.Fingerprint, "--sign-identity", identity}, flags...)
	SkopeoOK(t, SkopeoOptions{RegistriesD: s.RegistriesD, Env: s.Keyring.Env()}, append(args, src, dst)...)
}

// SignatureDir is the lookaside folder of manifest d of repository repo (the path
// without the registry host): <staging>/<repo>@sha256=<hex>.
func (s *SimpleSigning) SignatureDir(repo string, d v1.Hash) string {
	return filepath.Join(s.Lookaside.Dir, repo+"@"+d.Algorithm+"="+d.Hex)
}

// Signatures returns the signature files stored for manifest d of repo, in order.
func (s *SimpleSigning) Signatures(t testing.TB, repo string, d v1.Hash) [][]byte {
	t.Helper()
	var out [][]byte
	for i := 1; ; i++ {
		b, err := os.ReadFile(filepath.Join(s.SignatureDir(repo, d), fmt.Sprintf("signature-%d", i)))
		if os.IsNotExist(err) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

// PutSignatures replaces the signatures of manifest d of repo with sigs (none removes
// them all).
func (s *SimpleSigning) PutSignatures(t testing.TB, repo string, d v1.Hash, sigs [][]byte) {
	t.Helper()
	dir := s.SignatureDir(repo, d)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if len(sigs) == 0 {
		return
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for i, sig := range sigs {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("signature-%d", i+1)), sig, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// SignManifest signs manifest bytes for identity with `skopeo standalone-sign` and
// stores the signature in the lookaside for repo, after any already there. It returns
// the manifest's digest.
func (s *SimpleSigning) SignManifest(t testing.TB, key GPGKey, manifest []byte, identity, repo string) v1.Hash {
	t.Helper()
	dir := t.TempDir()
	mf := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(mf, manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	sigFile := filepath.Join(dir, "signature")
	SkopeoOK(t, SkopeoOptions{Env: s.Keyring.Env()}, "standalone-sign", mf, identity, key.Fingerprint, "-o", sigFile)
	sig, err := os.ReadFile(sigFile)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(manifest)
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if got := strings.TrimSpace(SkopeoOK(t, SkopeoOptions{}, "manifest-digest", mf)); got != d.String() {
		t.Fatalf("harness: skopeo manifest-digest %s, sha256 of the bytes %s", got, d)
	}
	s.PutSignatures(t, repo, d, append(s.Signatures(t, repo, d), sig))
	return d
}
