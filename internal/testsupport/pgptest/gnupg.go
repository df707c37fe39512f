package pgptest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// ToolTimeout bounds each gpg or skopeo run of an interoperability test; it only guards
// against a hung tool, it is not a performance assertion.
const ToolTimeout = 2 * time.Minute

// GnuPG is a throwaway GnuPG home for interoperability tests: keys and signatures made
// by the real gpg, and the keyring `skopeo standalone-verify` reads (GNUPGHOME). It lives
// in a short /tmp folder (gpg-agent's socket path is length-limited, which a t.TempDir
// path can exceed); the agent is stopped and the folder removed when the test ends.
type GnuPG struct {
	// Home is the GNUPGHOME folder.
	Home string
}

// NewGnuPG creates an empty GnuPG home. gpg and gpgconf must be installed
// (hack/install-test-tools.sh installs them); the test fails otherwise.
func NewGnuPG(t testing.TB) *GnuPG {
	t.Helper()
	RequireTools(t, "gpg", "gpgconf")
	home, err := os.MkdirTemp("/tmp", "pg-gpg-")
	if err != nil {
		t.Fatal(err)
	}
	g := &GnuPG{Home: home}
	t.Cleanup(func() {
		if _, errOut, err := g.Run(nil, "gpgconf", "--kill", "all"); err != nil {
			t.Logf("gpgconf --kill all: %v: %s", err, errOut)
		}
		os.RemoveAll(home)
	})
	return g
}

// NewSkopeoGnuPG is the set-up of a test that compares pullgate with skopeo: skopeo must
// be installed, and a fresh GnuPG home holds a new key for each name, whose fingerprints
// are returned in order.
func NewSkopeoGnuPG(t testing.TB, keys ...string) (*GnuPG, []string) {
	t.Helper()
	RequireTools(t, "skopeo")
	g := NewGnuPG(t)
	fprs := make([]string, len(keys))
	for i, name := range keys {
		fprs[i] = g.GenKey(t, name)
	}
	return g, fprs
}

// RequireTools fails the test unless every tool is on PATH.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run hack/install-test-tools.sh (it installs skopeo and gnupg): %v", tool, err)
		}
	}
}

// Env is the environment a tool needs to use this home.
func (g *GnuPG) Env() []string { return append(os.Environ(), "GNUPGHOME="+g.Home) }

// Run runs name with this home as GNUPGHOME and stdin as its input, and returns its
// standard output and error without judging them.
func (g *GnuPG) Run(stdin []byte, name string, args ...string) (stdout []byte, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), ToolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = g.Env()
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.Bytes(), errOut.String(), err
}

// MustRun is Run that fails the test when the tool fails.
func (g *GnuPG) MustRun(t testing.TB, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	out, errOut, err := g.Run(stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, errOut)
	}
	return out
}

// GenKey makes an unprotected Ed25519 signing key for name (one word) and returns its
// fingerprint.
func (g *GnuPG) GenKey(t testing.TB, name string) string {
	t.Helper()
	spec := "%no-protection\nKey-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: sign\nName-Real: " + name +
		"\nName-Email: " + name + "@example.test\nExpire-Date: 0\n%commit\n"
	g.MustRun(t, []byte(spec), "gpg", "--batch", "--quiet", "--gen-key")
	list := string(g.MustRun(t, nil, "gpg", "--batch", "--with-colons", "--list-keys", name+"@example.test"))
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" && len(f[9]) == 40 {
			return f[9]
		}
	}
	t.Fatalf("no fingerprint for the key of %s in:\n%s", name, list)
	return ""
}

// Export returns the public key fpr as `gpg --export` writes it, or ASCII-armored.
func (g *GnuPG) Export(t testing.TB, fpr string, armored bool) []byte {
	t.Helper()
	args := []string{"--batch", "--export"}
	if armored {
		args = []string{"--batch", "--armor", "--export"}
	}
	return g.MustRun(t, nil, "gpg", append(args, fpr)...)
}

// Sign signs content with the key fpr; args select the form ("--sign", "--armor",
// "--sign", "--clearsign", "--detach-sign").
func (g *GnuPG) Sign(t testing.TB, fpr string, content []byte, args ...string) []byte {
	t.Helper()
	return g.MustRun(t, content, "gpg", append([]string{"--batch", "--local-user", fpr}, args...)...)
}
