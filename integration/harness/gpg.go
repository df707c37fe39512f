package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// GPGKeyring is a throwaway GnuPG home holding signing keys made for one test. It lives
// under a short /tmp folder (gpg-agent's socket path must stay under the Unix socket
// limit, which a t.TempDir path can exceed); the agent is killed and the folder removed
// when the test ends.
type GPGKeyring struct {
	// Home is the GNUPGHOME folder.
	Home string
}

// GPGKey is one key of a GPGKeyring.
type GPGKey struct {
	// Fingerprint is what skopeo's --sign-by takes.
	Fingerprint string
	// PublicKeyFile holds the binary public key, as a policy's keyPath names it.
	PublicKeyFile string
}

// NewGPGKeyring creates an empty keyring.
func NewGPGKeyring(t testing.TB) *GPGKeyring {
	t.Helper()
	Tool(t, "gpg")
	home, err := os.MkdirTemp("/tmp", "pg-gpg-")
	if err != nil {
		t.Fatalf("harness: gpg home: %v", err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	k := &GPGKeyring{Home: home}
	t.Cleanup(func() {
		// gpg-agent outlives gpg; stop it before its folder disappears.
		_, _, _ = Run(t, ToolTimeout, k.Env(), "gpgconf", "--homedir", home, "--kill", "all")
		os.RemoveAll(home)
	})
	return k
}

// Env is the environment a signing tool needs to use this keyring.
func (k *GPGKeyring) Env() []string { return []string{"GNUPGHOME=" + k.Home} }

// NewKey generates an unprotected 2048-bit RSA signing key for name (a single word) and
// exports its public key to <dir>/<name>.gpg.
func (k *GPGKeyring) NewKey(t testing.TB, name, dir string) GPGKey {
	t.Helper()
	batch := filepath.Join(k.Home, name+".batch")
	spec := fmt.Sprintf(`%%no-protection
Key-Type: RSA
Key-Length: 2048
Key-Usage: sign
Name-Real: %s
Name-Email: %s@example.test
Expire-Date: 0
%%commit
`, name, name)
	if err := os.WriteFile(batch, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	k.gpg(t, "--batch", "--gen-key", batch)
	out := k.gpg(t, "--list-keys", "--with-colons", name+"@example.test")
	var fpr string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			fpr = f[9]
			break
		}
	}
	if fpr == "" {
		t.Fatalf("harness: no fingerprint for the key of %s in:\n%s", name, out)
	}
	pub := filepath.Join(dir, name+".gpg")
	k.gpg(t, "--batch", "--yes", "--output", pub, "--export", fpr)
	return GPGKey{Fingerprint: fpr, PublicKeyFile: pub}
}

func (k *GPGKeyring) gpg(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, err := Run(t, ToolTimeout, k.Env(), "gpg", append([]string{"--homedir", k.Home}, args...)...)
	if err != nil {
		t.Fatalf("harness: gpg %v: %v\n%s", args, err, errOut)
	}
	return out
}
