package testsupport

import (
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Tool returns the path of an external program a test needs, looked up in PATH and then
// in the Go bin folder where hack/install-test-tools.sh installs. A missing tool fails
// the test: the suites never skip what they cannot run.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{os.Getenv("GOBIN"), filepath.Join(build.Default.GOPATH, "bin")} {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("%s is not installed: run hack/install-test-tools.sh (it installs every tool the tests use)", name)
	return ""
}
