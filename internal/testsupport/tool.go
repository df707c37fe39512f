package testsupport

import (
	"testing"

	"github.com/pullgate/pullgate/internal/toolpath"
)

// Tool returns the path of an external program a test needs, looked up in PATH and then
// in the Go bin folder where hack/install-test-tools.sh installs (toolpath.Find). A missing
// tool fails the test: the suites never skip what they cannot run.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := toolpath.Find(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
