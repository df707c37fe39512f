package harness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The oracle is policypull (integration/oracle, a Go module of its own so that
// containers/image never enters pullgate's): it copies an image with the containers/image
// library under a policy.json and a registries.d, as podman would pull it, and exits 0
// (copied), 1 (the policy rejected it) or 2 (could not decide: registry or signature
// source errors). It is the reference for sigstore verdicts, which Debian's skopeo cannot
// give (sigstore compiled out, TOOLING.md 3c).

// oracleBuildTimeout bounds building policypull: the first build downloads and compiles
// containers/image (about 70 s on two cores); later ones are a link from the build cache.
const oracleBuildTimeout = 10 * time.Minute

// oracleSources are hashed, in this order, into the source hash policypull reports with
// --source-hash; hack/install-test-tools.sh hashes the same files the same way.
var oracleSources = []string{"go.mod", "go.sum", "main.go"}

// Oracle runs policypull.
type Oracle struct {
	bin string
}

// OracleVerdict is what policypull decided.
type OracleVerdict struct {
	// Code is its exit status: 0 copied, 1 rejected by the policy, 2 other failure.
	Code int
	// Output is what it printed (the rejection or the error).
	Output string
}

// Oracle exit statuses.
const (
	OracleAccepted = 0
	OracleRejected = 1
	OracleFailed   = 2
)

// NewOracle returns the installed policypull ($GOBIN or $(go env GOPATH)/bin, where
// hack/install-test-tools.sh puts it) when it was built from the current sources, and
// otherwise builds it into a temporary folder.
func NewOracle(t testing.TB) *Oracle {
	t.Helper()
	dir := oracleDir(t)
	want := oracleSourceHash(t, dir)
	for _, bin := range installedOracles() {
		out, err := exec.Command(bin, "--source-hash").Output()
		if err == nil && strings.TrimSpace(string(out)) == want {
			return &Oracle{bin: bin}
		}
		t.Logf("harness: %s is not built from the current integration/oracle; building it (hack/install-test-tools.sh installs it)", bin)
	}
	bin := filepath.Join(t.TempDir(), "policypull")
	ctx, cancel := context.WithTimeout(context.Background(), oracleBuildTimeout)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "containers_image_openpgp", "-trimpath",
		"-ldflags", "-X main.sourceHash="+want, "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod -buildvcs=false", "GOWORK=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("harness: building the oracle (go build in %s): %v\n%s", dir, errors.Join(err, ctx.Err()), out)
	}
	t.Logf("harness: built policypull in %s", time.Since(start).Round(time.Second/10))
	return &Oracle{bin: bin}
}

// oracleDir is integration/oracle in this source tree.
func oracleDir(t testing.TB) string {
	t.Helper()
	_, here, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("harness: cannot locate integration/oracle")
	}
	return filepath.Join(filepath.Dir(here), "..", "oracle")
}

func oracleSourceHash(t testing.TB, dir string) string {
	t.Helper()
	h := sha256.New()
	for _, f := range oracleSources {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("harness: oracle sources: %v", err)
		}
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// installedOracles lists the policypull binaries found in PATH and the Go bin folder.
func installedOracles() []string {
	var out []string
	if p, err := exec.LookPath("policypull"); err == nil {
		out = append(out, p)
	}
	for _, dir := range []string{os.Getenv("GOBIN"), filepath.Join(build.Default.GOPATH, "bin")} {
		p := filepath.Join(dir, "policypull")
		if fi, err := os.Stat(p); dir != "" && err == nil && fi.Mode()&0o111 != 0 {
			out = append(out, p)
		}
	}
	return out
}

// Pull copies src (docker://HOST/REPO:TAG or @DIGEST, plain http allowed) into a
// temporary dir: folder under policy and registriesD, and returns the verdict. A run that
// neither copies nor exits 1 or 2 fails the test.
func (o *Oracle) Pull(t testing.TB, policy, registriesD, src string) OracleVerdict {
	t.Helper()
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), ToolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.bin, "--policy", policy, "--registries.d", registriesD,
		src, "dir:"+filepath.Join(home, "image"))
	cmd.Env = privateEnv(home, "CONTAINERS_", "REGISTRY_AUTH_FILE", "XDG_")
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return OracleVerdict{Code: OracleAccepted, Output: out.String()}
	case errors.As(err, &exitErr) && ctx.Err() == nil && (exitErr.ExitCode() == OracleRejected || exitErr.ExitCode() == OracleFailed):
		return OracleVerdict{Code: exitErr.ExitCode(), Output: strings.TrimSpace(out.String())}
	}
	t.Fatalf("harness: policypull %s: %v\n%s", src, errors.Join(err, ctx.Err()), out.String())
	return OracleVerdict{}
}
