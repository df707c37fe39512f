package policy

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

// interopTimeout bounds the fixture script (key generation, five skopeo runs); it only
// guards against a hung tool, it is not a performance assertion.
const interopTimeout = 5 * time.Minute

// TestInteropWithSkopeo makes signatures with the real tools (gpg --batch, skopeo
// standalone-sign, skopeo copy --sign-by) through testdata/make-fixtures.sh, then checks
// each one with pullgate's engine and with `skopeo standalone-verify`, and requires both
// verdicts to agree with the expected one.
func TestInteropWithSkopeo(t *testing.T) {
	pgptest.RequireTools(t, "bash", "skopeo", "sha256sum", "tar", "gzip")
	env := pgptest.NewGnuPG(t).Env()
	out := t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()
	script := exec.CommandContext(ctx, "bash", "testdata/make-fixtures.sh", out)
	script.Env = env
	if output, err := script.CombinedOutput(); err != nil {
		t.Fatalf("make-fixtures.sh: %v\n%s", err, output)
	}
	fpr := readFingerprints(t, filepath.Join(out, "fingerprints"))

	tests := []struct {
		name     string
		manifest string // file in out
		sig      string
		pull     string // the image reference pulled
		keyring  string // the policy's keyPath
		expected string // the fingerprint skopeo standalone-verify is asked to require
		want     bool
	}{
		{"right key and identity", "manifest-a.json", "a-trusted.sig", "quay.io/example/app:1", "trusted.gpg", fpr["trusted"], true},
		{"armored keyring", "manifest-a.json", "a-trusted.sig", "quay.io/example/app:1", "trusted.asc", fpr["trusted"], true},
		{"wrong identity", "manifest-a.json", "a-trusted.sig", "quay.io/example/app:2", "trusted.gpg", fpr["trusted"], false},
		{"short name is not the signed identity", "manifest-a.json", "a-trusted.sig", "quay.io/example/other:1", "trusted.gpg", fpr["trusted"], false},
		{"wrong digest", "manifest-b.json", "a-trusted.sig", "quay.io/example/app:1", "trusted.gpg", fpr["trusted"], false},
		{"other manifest, its own signature", "manifest-b.json", "b-trusted.sig", "quay.io/example/app:2", "trusted.gpg", fpr["trusted"], true},
		{"other key", "manifest-a.json", "a-other.sig", "quay.io/example/app:1", "trusted.gpg", fpr["trusted"], false},
		// skopeo 1.9.3 (containers/image 5.23, gpgme) reports a subkey signature under the
		// subkey's fingerprint; current containers/image maps it to the primary key
		// (SPEC 2.2), as pullgate does. Ask skopeo for the subkey's own fingerprint.
		{"signing subkey", "manifest-a.json", "a-subkey.sig", "quay.io/example/app:1", "subkey.gpg", fpr["subkey_signing"], true},
		{"signing subkey, untrusted primary", "manifest-a.json", "a-subkey.sig", "quay.io/example/app:1", "trusted.gpg", fpr["trusted"], false},
		{"skopeo copy --sign-by", "copy/manifest.json", "copy/signature-1", "quay.io/example/app:copy", "trusted.gpg", fpr["trusted"], true},
		{"skopeo copy --sign-by, wrong identity", "copy/manifest.json", "copy/signature-1", "quay.io/example/app:1", "trusted.gpg", fpr["trusted"], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			manifest := testsupport.ReadFile(t, filepath.Join(out, tt.manifest))
			blob := testsupport.ReadFile(t, filepath.Join(out, tt.sig))

			sig, err := ParseSignatureBlob(blob)
			if err != nil {
				t.Fatalf("ParseSignatureBlob: %v", err)
			}
			p, err := Parse([]byte(`{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"`+filepath.Join(out, tt.keyring)+`"}]}`), "interop.json")
			if err != nil {
				t.Fatal(err)
			}
			img := Image{Identity: mustRef(t, tt.pull), Digest: digest.FromBytes(manifest), Manifest: manifest}
			v, err := p.Evaluate(context.Background(), img, sigSource(sig))
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}

			verify := exec.CommandContext(ctx, "skopeo", "standalone-verify",
				filepath.Join(out, tt.manifest), tt.pull, tt.expected, filepath.Join(out, tt.sig))
			verify.Env = env
			skopeoOut, skopeoErr := verify.CombinedOutput()
			skopeoAccepted := skopeoErr == nil
			if skopeoErr != nil && !strings.Contains(string(skopeoOut), "Error verifying signature") {
				t.Fatalf("skopeo standalone-verify failed to run: %v\n%s", skopeoErr, skopeoOut)
			}

			if v.Accepted != skopeoAccepted {
				t.Fatalf("pullgate accepted=%v (%s), skopeo accepted=%v (%s)", v.Accepted, v.Reason, skopeoAccepted, bytes.TrimSpace(skopeoOut))
			}
			if v.Accepted != tt.want {
				t.Fatalf("both accepted=%v, want %v: pullgate: %s; skopeo: %s", v.Accepted, tt.want, v.Reason, bytes.TrimSpace(skopeoOut))
			}
		})
	}
}

func readFingerprints(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), "="); ok && len(v) == 40 {
			out[k] = v
		}
	}
	for _, k := range []string{"trusted", "other", "subkey", "subkey_signing"} {
		if out[k] == "" {
			t.Fatalf("fingerprints file lacks %q: %v", k, out)
		}
	}
	return out
}
