package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Cosign runs the real cosign CLI (hack/install-test-tools.sh installs the pinned
// version) in a private folder: HOME, DOCKER_CONFIG and the TUF cache point there, the
// key password is empty, and no COSIGN_*, SIGSTORE_* or TUF_* variable of the caller's
// shell reaches it. Nothing it does needs the network beyond 127.0.0.1.
type Cosign struct {
	// Dir is its working folder, where keys are written.
	Dir string
	// Key and Pub are the paths of the key pair made by NewCosign (cosign.key,
	// cosign.pub).
	Key, Pub string
	bin      string
}

// NewCosign makes a private folder and a key pair there with `cosign generate-key-pair`.
func NewCosign(t testing.TB) *Cosign {
	t.Helper()
	c := &Cosign{Dir: t.TempDir(), bin: Tool(t, "cosign")}
	c.MustRun(t, nil, "generate-key-pair")
	c.Key, c.Pub = filepath.Join(c.Dir, "cosign.key"), filepath.Join(c.Dir, "cosign.pub")
	return c
}

// GenerateKeyPair makes another key pair, prefix.key and prefix.pub, and returns their
// paths.
func (c *Cosign) GenerateKeyPair(t testing.TB, prefix string) (key, pub string) {
	t.Helper()
	c.MustRun(t, nil, "generate-key-pair", "--output-key-prefix", prefix)
	return filepath.Join(c.Dir, prefix+".key"), filepath.Join(c.Dir, prefix+".pub")
}

// ImportKeyPair turns a PEM private key into a cosign key pair prefix.key / prefix.pub
// and returns the private key's path.
func (c *Cosign) ImportKeyPair(t testing.TB, privatePEM []byte, prefix string) string {
	t.Helper()
	src := c.WriteFile(t, prefix+".import.pem", privatePEM)
	c.MustRun(t, nil, "import-key-pair", "--key", src, "--output-key-prefix", prefix)
	return filepath.Join(c.Dir, prefix+".key")
}

// WriteFile writes data into the folder and returns the path.
func (c *Cosign) WriteFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(c.Dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Sign signs ref (HOST/REPO@DIGEST) with the private key at key, offline: no Rekor
// upload, plain-http registry. Extra flags (--recursive, --new-bundle-format,
// --certificate ...) go before the reference; env adds variables
// (COSIGN_DOCKER_MEDIA_TYPES=1).
func (c *Cosign) Sign(t testing.TB, key, ref string, env []string, flags ...string) {
	t.Helper()
	args := append([]string{"sign", "--yes", "--key", key, "--tlog-upload=false", "--allow-insecure-registry"}, flags...)
	c.MustRun(t, env, append(args, ref)...)
}

// Verify runs `cosign verify --key pub` on ref without a transparency log and returns
// its combined output and error (nil when cosign verified a signature).
func (c *Cosign) Verify(t testing.TB, pub, ref string) (string, error) {
	t.Helper()
	stdout, stderr, err := c.Run(t, nil, "verify", "--key", pub, "--insecure-ignore-tlog", "--allow-insecure-registry", ref)
	return stdout + stderr, err
}

// MustRun runs cosign and fails the test if it fails.
func (c *Cosign) MustRun(t testing.TB, env []string, args ...string) string {
	t.Helper()
	stdout, stderr, err := c.Run(t, env, args...)
	if err != nil {
		t.Fatalf("cosign %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout
}

// Run runs cosign in the folder with a timeout.
func (c *Cosign) Run(t testing.TB, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	full := append(privateEnv(c.Dir, "COSIGN_", "SIGSTORE_", "TUF_"),
		"COSIGN_PASSWORD=", "TUF_ROOT="+filepath.Join(c.Dir, "tuf"), "SIGSTORE_NO_CACHE=true")
	return runCommand(ToolTimeout, c.bin, c.Dir, append(full, env...), args...)
}

// privateEnv is the caller's environment with HOME and DOCKER_CONFIG pointing at dir
// and without the variables starting with any of drop.
func privateEnv(dir string, drop ...string) []string {
	env := []string{"HOME=" + dir, "DOCKER_CONFIG=" + dir}
next:
	for _, kv := range os.Environ() {
		for _, p := range append(drop, "HOME=", "DOCKER_CONFIG=") {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}
