package pgptest

import (
	"os"
	"os/exec"
	"testing"
)

// GnuPGHome makes a fresh GNUPGHOME for tests that run real gpg (and skopeo, which reads
// its keyring), after checking that every tool named is installed: a missing one fails
// the test with the hint to run hack/install-test-tools.sh, never skips it. It returns
// the folder and the environment to run the tools with; when the test ends gpg-agent is
// stopped and the folder removed.
func GnuPGHome(t testing.TB, tools ...string) (home string, env []string) {
	t.Helper()
	for _, tool := range append([]string{"gpg", "gpgconf"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run hack/install-test-tools.sh (it installs skopeo and gnupg): %v", tool, err)
		}
	}
	// gpg-agent's socket lives in GNUPGHOME, and socket paths are limited to ~107 bytes:
	// a short folder under /tmp rather than t.TempDir().
	home, err := os.MkdirTemp("/tmp", "pg-gpg-")
	if err != nil {
		t.Fatal(err)
	}
	env = append(os.Environ(), "GNUPGHOME="+home)
	t.Cleanup(func() {
		kill := exec.Command("gpgconf", "--kill", "all")
		kill.Env = env
		if out, err := kill.CombinedOutput(); err != nil {
			t.Logf("gpgconf --kill all: %v: %s", err, out)
		}
		os.RemoveAll(home)
	})
	return home, env
}
