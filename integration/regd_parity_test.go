package integration

// registries.d parity with containers/image through the built binary (issue 14, items 7
// and 8): a tag-scoped section serves pullgate's own signature API as it served the
// verdict, and a registries.d that podman refuses makes pullgate refuse to start or reload.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

func TestRegdParity(t *testing.T) {
	w := newEnforceWorld(t)
	repo := "regd/app"
	var want v1.Hash
	parallel(t, "set-up", map[string]func(t *testing.T){
		"build": w.build(t.TempDir()),
		"sign":  func(t *testing.T) { want = w.signedImage(t, repo, w.trusted, fullName(repo)+":v1") },
	})
	t.Run("tag-scoped section serves the signature API", func(t *testing.T) { testRegdTagScopedSignatureAPI(t, w, repo, want) })
	t.Run("a registries.d podman refuses", func(t *testing.T) { testRegdRefused(t, w, repo, want) })
}

// testRegdTagScopedSignatureAPI (item 7): registries.d scopes repo:v1 to the lookaside that
// holds its signature and the repository to one that fails. skopeo pulling directly by tag
// reads the tag's section and accepts; through pullgate, the verdict does the same, and
// skopeo then reads the signatures through pullgate's signature API (asked by digest): it
// must get the ones the verdict used, not the repository section's failure.
func testRegdTagScopedSignatureAPI(t *testing.T, w *enforceWorld, repo string, want v1.Hash) {
	broken := harness.StartLookaside(t, t.TempDir())
	broken.SetMode(harness.LookasideError)
	regd := filepath.Join(t.TempDir(), "registries.d")
	if err := os.Mkdir(regd, 0o700); err != nil {
		t.Fatal(err)
	}
	// Both names: pullgate looks registries.d up by the upstream name, skopeo pulling
	// directly by the registry's address (SPEC.md 3.3, the physical reference).
	var yaml strings.Builder
	yaml.WriteString("docker:\n")
	for _, name := range []string{upstreamName, w.reg.Host} {
		fmt.Fprintf(&yaml, "  %s/%s:v1:\n    lookaside: %s\n  %s/%s:\n    lookaside: %s\n", name, repo, w.sig.Lookaside.URL, name, repo, broken.URL)
	}
	testsupport.WriteFile(t, filepath.Join(regd, "scoped.yaml"), yaml.String())

	// containers/image accepts the image pulled by tag with this registries.d.
	direct := w.direct()
	direct.RegistriesD = regd
	if _, errOut, err := harness.SkopeoRun(t, direct, "copy", "--src-tls-verify=false", "docker://"+fullName(repo)+":v1", "dir:"+t.TempDir()); err != nil {
		t.Fatalf("skopeo directly, by tag: %v\n%s", err, errOut)
	}

	pg := harness.StartPullgate(t, w.bin, w.pullgateConfig(t, w.policy, regd))
	proxyPrefix := pg.Host + "/" + upstreamName
	policy := filepath.Join(t.TempDir(), "policy.json")
	testsupport.WriteFile(t, policy, fmt.Sprintf(`{"default": [{"type": "reject"}], "transports": {"docker": {%q: [
		{"type": "signedBy", "keyType": "GPGKeys", "keyPath": %q,
		 "signedIdentity": {"type": "remapIdentity", "prefix": %q, "signedPrefix": %q}}]}}}`,
		proxyPrefix+"/"+repo, w.trusted.PublicKeyFile, proxyPrefix, upstreamName))
	out := filepath.Join(t.TempDir(), "dir")
	if _, errOut, err := harness.SkopeoRun(t, harness.SkopeoOptions{Policy: policy}, "copy", "--src-tls-verify=false",
		"docker://"+proxyPrefix+"/"+repo+":v1", "dir:"+out); err != nil {
		t.Fatalf("skopeo through pullgate, verifying the signatures pullgate serves: %v\n%s", err, errOut)
	}
	copied, err := os.ReadFile(filepath.Join(out, "signature-1"))
	stored := w.sig.Signatures(t, repo, want)
	if err != nil || len(stored) != 1 || !bytes.Equal(copied, stored[0]) {
		t.Errorf("signature skopeo stored (%v) differs from the tag section's lookaside", err)
	}
	if n := len(broken.Requests()); n != 0 {
		t.Errorf("the repository section's lookaside got %d requests: %v", n, broken.Requests())
	}

	// By digest both read the repository section: containers/image and pullgate alike
	// cannot decide (pullgate: 503), and the signature API's memory does not change that.
	if _, _, err := harness.SkopeoRun(t, direct, "copy", "--src-tls-verify=false", "docker://"+fullName(repo)+"@"+want.String(), "dir:"+t.TempDir()); err == nil {
		t.Error("skopeo directly, by digest, accepted the image through the failing section")
	}
	a := call(t, http.MethodGet, "http://"+pg.Host+"/v2/"+upstreamName+"/"+repo+"/manifests/"+want.String())
	if a.status != http.StatusServiceUnavailable {
		t.Errorf("pullgate by digest: status %d, want 503; body %q", a.status, a.body)
	}
}

// testRegdRefused (item 8): containers/image fails on a directory named *.yaml in
// registries.d (os.ReadFile: "is a directory"); pullgate must not start on it, and a reload
// onto it is refused with the previous configuration kept.
func testRegdRefused(t *testing.T, w *enforceWorld, repo string, want v1.Hash) {
	world := testsupport.ReadFile(t, filepath.Join(w.sig.RegistriesD, "default.yaml"))
	regd := filepath.Join(t.TempDir(), "registries.d")
	if err := os.Mkdir(regd, 0o700); err != nil {
		t.Fatal(err)
	}
	testsupport.WriteFile(t, filepath.Join(regd, "default.yaml"), string(world))
	bad := filepath.Join(regd, "extra.yaml")
	if err := os.Mkdir(bad, 0o700); err != nil {
		t.Fatal(err)
	}

	t.Run("serve refuses to start", func(t *testing.T) {
		code, errOut := serveUntilExit(t, w.bin, w.pullgateConfig(t, w.policy, regd))
		if code != 2 || !strings.Contains(errOut, bad) || !strings.Contains(errOut, "is a directory") {
			t.Fatalf("exit %d, want 2 with an error naming %s; stderr:\n%s", code, bad, errOut)
		}
	})

	t.Run("a reload is refused", func(t *testing.T) {
		if err := os.Remove(bad); err != nil {
			t.Fatal(err)
		}
		policy := filepath.Join(t.TempDir(), "policy.json")
		testsupport.WriteFile(t, policy, w.policyJSON())
		pg := harness.StartPullgate(t, w.bin, w.pullgateConfig(t, policy, regd))
		url := "http://" + pg.Host + "/v2/" + upstreamName + "/" + repo + "/manifests/"
		call(t, http.MethodGet, url+"v1").served(t, "before the reload", want)

		// The reload would put a reject policy in force, and finds the directory.
		testsupport.WriteFile(t, policy, rejectPolicy)
		if err := os.Mkdir(bad, 0o700); err != nil {
			t.Fatal(err)
		}
		pg.Signal(t, syscall.SIGHUP)
		line := pg.WaitLog(t, "failed to reload the policy; the previous policy stays in force", 0)
		if msg, _ := line["err"].(string); line["level"] != "ERROR" || !strings.Contains(msg, bad) {
			t.Errorf("reload error line %v, want an error naming %s", line, bad)
		}
		// Not cached before: evaluated now, under the signedBy policy still in force.
		call(t, http.MethodGet, url+want.String()).served(t, "by digest after the refused reload", want)
		if n := len(pg.LogEntries("policy reloaded")); n != 0 {
			t.Errorf("%d reloads logged as done, want 0", n)
		}

		// Without the directory the same reload goes through.
		if err := os.Remove(bad); err != nil {
			t.Fatal(err)
		}
		pg.Reload(t)
		call(t, http.MethodGet, url+"v1").denied(t, "after the reload without the directory")
	})
}

// serveUntilExit runs `pullgate serve --config config` expecting it to refuse to start,
// and returns its exit status and stderr. If it starts listening instead the test fails
// at once (and the process is stopped), rather than waiting for a timeout.
func serveUntilExit(t *testing.T, bin, config string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), harness.ToolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--config", config)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PULLGATE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	started := false
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		stderr.WriteString(sc.Text() + "\n")
		var entry struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &entry) == nil && entry.Msg == "pullgate listening" {
			started = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	err = cmd.Wait()
	if started {
		t.Fatalf("pullgate started serving:\n%s", stderr.String())
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || ctx.Err() != nil {
		t.Fatalf("pullgate serve: %v (%v)\n%s", err, ctx.Err(), stderr.String())
	}
	return exitErr.ExitCode(), stderr.String()
}
