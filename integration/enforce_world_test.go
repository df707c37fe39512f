package integration

// The shared set-up of the enforcement tests: an upstream registry, real gpg keys, a
// lookaside over http written by skopeo, a policy, and pullgate with the real gate.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

// enforceWorld is one upstream registry, signing keys and a lookaside, and the policy
// pullgate and skopeo both apply. Images are named by pullgate (and by skopeo pulling
// directly) as registry.test/<repo>; the registry listens on 127.0.0.1:<port>.
//
// Why registry.test and not 127.0.0.1:<port>: pullgate's prefix routing puts the
// registry name in the path (/v2/<registry>/<repo>/...), and a name with a port cannot
// be a path component of a docker reference, so no client can pull
// 127.0.0.1:<proxy>/127.0.0.1:<port>/repo. skopeo pulling directly reaches
// registry.test through a registries.conf location entry; containers/image then uses
// registry.test for the policy identity and 127.0.0.1:<port> only for the lookaside
// path, whose repository part is the same. Signatures are made with --sign-identity
// registry.test/<repo>:v1.
type enforceWorld struct {
	reg                *harness.Registry
	sig                *harness.SimpleSigning
	trusted, untrusted harness.GPGKey
	policy             string
	// bin is the pullgate binary, once built (build).
	bin string
}

func newEnforceWorld(t *testing.T) *enforceWorld {
	t.Helper()
	return newEnforceWorldWith(t)
}

// newEnforceWorldWith is newEnforceWorld with options for the registry (a middleware
// that counts, slows down or breaks its answers).
func newEnforceWorldWith(t *testing.T, opts ...harness.RegistryOption) *enforceWorld {
	t.Helper()
	w := &enforceWorld{reg: harness.StartRegistry(t, opts...), sig: harness.NewSimpleSigning(t)}
	w.trusted = w.sig.Key(t, "trusted")
	w.untrusted = w.sig.Key(t, "untrusted")
	w.policy = filepath.Join(t.TempDir(), "policy.json")
	testsupport.WriteFile(t, w.policy, w.policyJSON())
	return w
}

// policyJSON is the policy of every enforcement test: reject by default; the upstream
// requires a signature by the trusted key (default identity matcher); one repository is
// rejected outright; one requires the exact identity (matchExact) to tell tag and digest
// identities apart.
func (w *enforceWorld) policyJSON() string {
	return fmt.Sprintf(`{
  "default": [{"type": "reject"}],
  "transports": {
    "docker": {
      %q: [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": %q}],
      %q: [{"type": "reject"}],
      %q: [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": %q, "signedIdentity": {"type": "matchExact"}}]
    }
  }
}
`, upstreamName, w.trusted.PublicKeyFile, upstreamName+"/rejected", upstreamName+"/exact", w.trusted.PublicKeyFile)
}

// fullName is the full name of repo as pullgate and its policy know it.
func fullName(repo string) string { return upstreamName + "/" + repo }

// direct is how skopeo pulls from the upstream itself, with the same policy and
// registries.d as pullgate.
func (w *enforceWorld) direct() harness.SkopeoOptions {
	return harness.SkopeoOptions{Policy: w.policy, RegistriesD: w.sig.RegistriesD,
		RegistriesConf: harness.RegistryLocation(upstreamName, w.reg.Host)}
}

// build builds the pullgate binary into dir, a folder of the top-level test (the
// subtests that build it in parallel with other set-up steps end before it is used).
func (w *enforceWorld) build(dir string) func(t *testing.T) {
	return func(t *testing.T) { w.bin = harness.BuildPullgate(t, dir) }
}

// pullgateConfig writes a configuration for the binary with this world's registry,
// policy (or another one) and registries.d (or another one).
func (w *enforceWorld) pullgateConfig(t *testing.T, policy, regd string) string {
	t.Helper()
	return harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams:       []harness.Upstream{{Registry: upstreamName, URL: w.reg.URL}},
		DefaultUpstream: upstreamName,
		Policy:          policy,
		RegistriesD:     regd,
	})
}

// startPullgate runs the binary with this world's policy and registries.d.
func (w *enforceWorld) startPullgate(t *testing.T) *harness.Pullgate {
	t.Helper()
	return harness.StartPullgate(t, w.bin, w.pullgateConfig(t, w.policy, w.sig.RegistriesD))
}

// image pushes a random single-platform OCI image as repo:v1 and returns its digest.
func (w *enforceWorld) image(t *testing.T, repo string) v1.Hash {
	t.Helper()
	return w.reg.Push(t, repo+":v1", harness.OCIImage(t, 2, 2048, harness.LinuxAMD64))
}

// signedImage pushes a random image to src/<repo>, then copies it to repo:v1 with skopeo,
// signing with key for identity. It returns the digest of repo:v1.
func (w *enforceWorld) signedImage(t *testing.T, repo string, key harness.GPGKey, identity string) v1.Hash {
	t.Helper()
	w.image(t, "src/"+repo)
	w.copySigned(t, key, identity, "src/"+repo+":v1", repo+":v1")
	return w.digest(t, repo+":v1")
}

// copySigned copies src to dst inside the registry with skopeo, signing with key for
// identity (flags such as --all before the references).
func (w *enforceWorld) copySigned(t *testing.T, key harness.GPGKey, identity, src, dst string, flags ...string) {
	t.Helper()
	w.sig.CopySigned(t, key, identity, "docker://"+w.reg.Host+"/"+src, "docker://"+w.reg.Host+"/"+dst, flags...)
}

// digest is the digest the registry holds for repoRef.
func (w *enforceWorld) digest(t *testing.T, repoRef string) v1.Hash {
	t.Helper()
	desc, err := remote.Head(w.reg.Ref(t, repoRef))
	if err != nil {
		t.Fatalf("HEAD %s: %v", repoRef, err)
	}
	return desc.Digest
}

// parallel runs each set-up function as a parallel subtest of a subtest called what,
// returns when all are done, and stops the test if one failed.
func parallel(t *testing.T, what string, steps map[string]func(t *testing.T)) {
	t.Helper()
	ok := t.Run(what, func(t *testing.T) {
		for name, step := range steps {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				step(t)
			})
		}
	})
	if !ok {
		t.FailNow()
	}
}

// manifestAccept is what podman and skopeo accept for manifests.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json",
}, ", ")

// answer is one HTTP response, body read.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// call sends method to url (accepting every manifest type) and reads the answer.
func call(t *testing.T, method, url string) answer {
	t.Helper()
	return callWith(t, http.DefaultClient, method, url, nil)
}

// callWith is call through client, with header added to the request's.
func callWith(t *testing.T, client *http.Client, method, url string, header http.Header) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", manifestAccept)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading: %v", method, url, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: body}
}

// ociError is the first error of an OCI error body.
type ociError struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Detail  map[string]any `json:"detail"`
}

// oneError decodes the body as an OCI error list of one error.
func (a answer) oneError(t *testing.T) ociError {
	t.Helper()
	var e struct {
		Errors []ociError `json:"errors"`
	}
	if err := json.Unmarshal(a.body, &e); err != nil || len(e.Errors) != 1 {
		t.Fatalf("status %d, body is not an OCI error list of one error (%v): %q", a.status, err, a.body)
	}
	return e.Errors[0]
}

// denied checks a 403 DENIED answer and returns its error.
func (a answer) denied(t *testing.T, what string) ociError {
	t.Helper()
	if a.status != http.StatusForbidden {
		t.Fatalf("%s: status %d, want 403; body %q", what, a.status, a.body)
	}
	e := a.oneError(t)
	if e.Code != "DENIED" {
		t.Fatalf("%s: code %s, want DENIED: %+v", what, e.Code, e)
	}
	if a.header.Get("Docker-Content-Digest") != "" {
		t.Errorf("%s: a denial carries Docker-Content-Digest %s", what, a.header.Get("Docker-Content-Digest"))
	}
	return e
}

// served checks a 200 answer whose content has digest want.
func (a answer) served(t *testing.T, what string, want v1.Hash) {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("%s: status %d, want 200; body %q", what, a.status, a.body)
	}
	got, _, err := v1.SHA256(strings.NewReader(string(a.body)))
	if err != nil || got != want {
		t.Fatalf("%s: served bytes hash to %s, want %s", what, got, want)
	}
}

// decisions returns the decision log lines pullgate wrote about repo (on registry.test),
// of kind (manifest, blob; empty for both).
func decisions(pg *harness.Pullgate, repo, kind string) []map[string]any {
	var out []map[string]any
	for _, e := range pg.LogEntries("decision") {
		if e["repository"] == repo && (kind == "" || e["kind"] == kind) {
			out = append(out, e)
		}
	}
	return out
}

// waitDecisions waits until pullgate has logged n decisions of kind about repo (its log
// is read from a pipe, so a line may arrive just after the answer) and returns them.
func waitDecisions(t *testing.T, pg *harness.Pullgate, repo, kind string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := decisions(pg, repo, kind)
		if len(d) >= n {
			if len(d) > n {
				t.Fatalf("%d decisions about %s, want %d: %v", len(d), repo, n, d)
			}
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d decisions about %s after 10s, want %d", len(d), repo, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
