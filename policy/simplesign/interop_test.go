package simplesign

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

// TestInteropSHA1Signature signs one payload with real gpg twice, with SHA-1 and with
// SHA-256 as digest, and checks both with `skopeo standalone-verify` and with pullgate.
// containers/image accepts both; pullgate accepts only the SHA-256 one. That is a
// deliberate difference (DESIGN.md): SHA-1 has practical chosen-prefix collisions, so a
// SHA-1 signature does not bind the signer to one payload.
func TestInteropSHA1Signature(t *testing.T) {
	g, fprs := pgptest.NewSkopeoGnuPG(t, "sha1")
	fpr := fprs[0]
	dir := t.TempDir()
	ring, err := ParseKeyring(g.Export(t, fpr, false))
	if err != nil {
		t.Fatal(err)
	}

	const identity = "quay.io/example/app:1"
	manifestPath, payload := writeInteropManifest(t, dir, identity)
	payloadPath := filepath.Join(dir, "payload.json")
	testsupport.WriteFile(t, payloadPath, payload)

	for _, tt := range []struct {
		digest  string // gpg --digest-algo
		mode    string // --sign or --clearsign
		wantErr string // pullgate's reason; empty: accepted
	}{
		{"SHA256", "--sign", ""},
		{"SHA1", "--sign", "the signature uses SHA-1, which pullgate does not accept"},
		{"SHA256", "--clearsign", ""},
		{"SHA1", "--clearsign", "the signature uses SHA-1, which pullgate does not accept"},
	} {
		t.Run(tt.digest+tt.mode, func(t *testing.T) {
			sigPath := filepath.Join(dir, tt.digest+tt.mode+".sig")
			g.MustRun(t, nil, "gpg", "--batch", "--yes", "--digest-algo", tt.digest, "--local-user", fpr, "--output", sigPath, tt.mode, payloadPath)
			if out, errOut, err := g.Run(nil, "skopeo", "standalone-verify", manifestPath, identity, fpr, sigPath); err != nil {
				t.Fatalf("skopeo standalone-verify refused the %s %s signature (containers/image accepts it): %v\n%s%s", tt.digest, tt.mode, err, out, errOut)
			}
			v, err := ring.Verify(testsupport.ReadFile(t, sigPath), time.Now())
			if tt.wantErr == "" {
				if err != nil || v.KeyFingerprint != fpr {
					t.Fatalf("pullgate: Verify() = %+v, %v; want accepted for %s", v, err, fpr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("pullgate: Verify() error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// writeInteropManifest writes the image manifest the comparisons with `skopeo
// standalone-verify` check signatures against to dir/manifest.json, and returns its path
// and the simple-signing payload that claims that manifest for identity.
func writeInteropManifest(t *testing.T, dir, identity string) (path string, payload []byte) {
	t.Helper()
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}`)
	path = filepath.Join(dir, "manifest.json")
	testsupport.WriteFile(t, path, manifest)
	sum := sha256.Sum256(manifest)
	return path, pgptest.Payload("sha256:"+hex.EncodeToString(sum[:]), identity)
}
