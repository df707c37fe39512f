package harness

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// ToolTimeout bounds one run of an external tool; a pull of the small test images takes
// well under a second.
const ToolTimeout = 2 * time.Minute

// Tool returns the path of an external program the tests need, looked up in PATH and
// then in the Go bin folder where hack/install-test-tools.sh installs. A missing tool
// fails the test: the suite never skips what it cannot run.
func Tool(t testing.TB, name string) string {
	t.Helper()
	return testsupport.Tool(t, name)
}

// Run runs an external tool with a timeout and returns its output. A tool still running
// at the timeout is killed; err then wraps context.DeadlineExceeded.
func Run(t testing.TB, timeout time.Duration, env []string, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runCommand(timeout, Tool(t, name), "", append(os.Environ(), env...), args...)
}

// runCommand runs bin in dir (empty: the current folder) with exactly env, killing it at
// the timeout; err then wraps context.DeadlineExceeded.
func runCommand(timeout time.Duration, bin, dir string, env []string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	return out.String(), errOut.String(), err
}

// Skopeo runs skopeo with the given arguments (after --insecure-policy, so the host's
// policy.json plays no part) and fails the test if it fails.
func Skopeo(t testing.TB, args ...string) string {
	t.Helper()
	env, global := skopeoEnv(t)
	out, errOut, err := Run(t, ToolTimeout, env, "skopeo", append(global, args...)...)
	if err != nil {
		t.Fatalf("skopeo %v: %v\nstdout: %s\nstderr: %s", args, err, out, errOut)
	}
	return out
}

// SkopeoFails runs skopeo expecting it to fail and returns its error output.
func SkopeoFails(t testing.TB, args ...string) string {
	t.Helper()
	env, global := skopeoEnv(t)
	out, errOut, err := Run(t, ToolTimeout, env, "skopeo", append(global, args...)...)
	if err == nil {
		t.Fatalf("skopeo %v succeeded, want a failure\nstdout: %s", args, out)
	}
	return errOut
}

// skopeoEnv keeps skopeo away from the host's and the user's configuration: an empty
// registries.conf (no mirrors, no search registries), passed with --registries-conf
// because skopeo 1.9 ignores CONTAINERS_REGISTRIES_CONF, and a private HOME. It returns
// the environment and the global options, --insecure-policy included (the host's
// policy.json plays no part).
func skopeoEnv(t testing.TB) (env, global []string) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "registries.conf")
	if err := os.WriteFile(conf, []byte("unqualified-search-registries = []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"HOME=" + dir, "REGISTRY_AUTH_FILE=" + filepath.Join(dir, "auth.json")},
		[]string{"--insecure-policy", "--registries-conf", conf}
}

// Crane runs crane with the given arguments (after --insecure: the test servers speak
// plain http) and fails the test if it fails.
func Crane(t testing.TB, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	out, errOut, err := Run(t, ToolTimeout, []string{"HOME=" + dir, "DOCKER_CONFIG=" + dir}, "crane", append(args, "--insecure")...)
	if err != nil {
		t.Fatalf("crane %v: %v\nstdout: %s\nstderr: %s", args, err, out, errOut)
	}
	return out
}
