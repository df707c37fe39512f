// Package toolpath finds the external programs that the tests and pullgate-bench run
// (versitygw, crane, …): in PATH, then in the Go bin folder where
// hack/install-test-tools.sh installs them. Standard library only; it does not link the
// testing package, so commands can use it.
package toolpath

import (
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
)

// Find returns the path of the program name, looked up in PATH and then in $GOBIN and
// $(go env GOPATH)/bin. A missing program is an error that says how to install it.
func Find(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{os.Getenv("GOBIN"), filepath.Join(build.Default.GOPATH, "bin")} {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed: run hack/install-test-tools.sh (it installs every tool the tests use)", name)
}
