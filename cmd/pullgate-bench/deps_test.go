package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// TestNoTestingPackage checks that the benchmark does not link the testing package (as it
// did through the tests' versitygw helper): a command must not.
func TestNoTestingPackage(t *testing.T) {
	out, err := exec.Command(testsupport.Tool(t, "go"), "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "testing" {
			t.Fatalf("pullgate-bench links the testing package; its dependencies:\n%s", out)
		}
	}
}
