package integration

// End-to-end enforcement with the pullgate binary: images signed with real gpg keys by
// skopeo into a lookaside served over http, skopeo pulling through pullgate, and skopeo
// pulling the same images directly with the same policy as the reference verdict.

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

// scopeUpstream is how the policy's scope for the whole upstream is named in verdicts.
var scopeUpstream = fmt.Sprintf("transports.docker[%q]", upstreamName)

func TestEnforceEndToEnd(t *testing.T) {
	t.Parallel()
	w := newEnforceWorld(t)
	digests := map[string]v1.Hash{} // repository → digest of its :v1
	var mu sync.Mutex
	keep := func(repo string, d v1.Hash) {
		mu.Lock()
		digests[repo] = d
		mu.Unlock()
	}
	signed := func(repo string, key harness.GPGKey, identity string) func(*testing.T) {
		return func(t *testing.T) { keep(repo, w.signedImage(t, repo, key, identity)) }
	}
	trusted := func(repo string) func(*testing.T) { return signed(repo, w.trusted, fullName(repo)+":v1") }
	parallel(t, "set-up", map[string]func(*testing.T){
		"build":       w.build(t.TempDir()),
		"signed":      trusted("signed/app"),
		"viaapi":      trusted("viaapi/app"),
		"rejected":    trusted("rejected/app"),
		"parity":      trusted("parity/ok"),
		"logs":        trusted("logs/ok"),
		"hup":         trusted("hup/app"),
		"wrong key":   signed("wrongkey/app", w.untrusted, fullName("wrongkey/app")+":v1"),
		"other name":  signed("mismatch/app", w.trusted, fullName("other/app")+":v1"),
		"other image": trusted("otherdigest/first"),
		"unsigned": func(t *testing.T) {
			for _, repo := range []string{"unsigned/app", "parity/no", "logs/no"} {
				keep(repo, w.image(t, repo))
			}
		},
	})
	// otherdigest/app:v1 is an image whose lookaside holds the (valid, trusted, right
	// identity) signature of another image: what an attacker copying signature files or
	// a stale lookaside produces.
	stolen := w.sig.Signatures(t, "otherdigest/first", digests["otherdigest/first"])
	keep("otherdigest/app", w.image(t, "otherdigest/app"))
	w.sig.PutSignatures(t, "otherdigest/app", digests["otherdigest/app"], stolen)

	pg := w.startPullgate(t)
	t.Run("verdicts match skopeo pulling directly", func(t *testing.T) { testSkopeoVerdicts(t, w, pg, digests) })
	t.Run("skopeo verifies through the signature API", func(t *testing.T) { testSignatureAPI(t, w, pg, digests["viaapi/app"]) })
	t.Run("blobs and HEAD", func(t *testing.T) { testBlobBypass(t, w, pg, digests) })
	t.Run("routing forms", func(t *testing.T) { testRoutingParity(t, w, pg, digests) })
	t.Run("decision log", func(t *testing.T) { testDecisionLog(t, w, pg, digests) })
	t.Run("verify command", func(t *testing.T) { testVerifyCommand(t, w, digests) })
	t.Run("reload on SIGHUP", func(t *testing.T) { testReload(t, w, digests["hup/app"]) })
}

// testSkopeoVerdicts: skopeo pulls each image through pullgate (with no policy of its
// own) and directly from the upstream (with pullgate's policy); the verdicts must agree,
// and pullgate's denials must say what failed.
func testSkopeoVerdicts(t *testing.T, w *enforceWorld, pg *harness.Pullgate, digests map[string]v1.Hash) {
	cases := []struct {
		repo    string
		allowed bool
		// scope and requirement that denied; why is in pullgate's reason, directWhy in
		// skopeo's error when pulling directly.
		scope, requirement, why, directWhy string
	}{
		{repo: "signed/app", allowed: true},
		{repo: "unsigned/app", scope: scopeUpstream, requirement: "[0] signedBy",
			why: "a signature was required, but no signature exists", directWhy: "A signature was required, but no signature exists"},
		{repo: "wrongkey/app", scope: scopeUpstream, requirement: "[0] signedBy",
			why: "which is not trusted", directWhy: "Invalid GPG signature"},
		{repo: "mismatch/app", scope: scopeUpstream, requirement: "[0] signedBy",
			why:       `signature for identity "registry.test/other/app:v1" is not accepted`,
			directWhy: "Signature for identity registry.test/other/app:v1 is not accepted"},
		{repo: "otherdigest/app", scope: scopeUpstream, requirement: "[0] signedBy",
			why:       "signature for digest " + digests["otherdigest/first"].String() + " does not match the manifest",
			directWhy: "Signature for digest " + digests["otherdigest/first"].String() + " does not match"},
		{repo: "rejected/app", scope: fmt.Sprintf("transports.docker[%q]", fullName("rejected")), requirement: "[0] reject",
			why: "is rejected by policy", directWhy: "is rejected by policy"},
	}
	for _, c := range cases {
		t.Run(c.repo, func(t *testing.T) {
			t.Parallel()
			ref := fullName(c.repo) + ":v1"
			want := digests[c.repo]
			_, directErr, err := harness.SkopeoRun(t, w.direct(), "copy", "--src-tls-verify=false",
				"docker://"+ref, "dir:"+t.TempDir())
			directAllowed := err == nil
			out := filepath.Join(t.TempDir(), "oci")
			_, viaErr, err := harness.SkopeoRun(t, harness.SkopeoOptions{}, "copy", "--remove-signatures",
				"--src-tls-verify=false", "docker://"+pg.Host+"/"+ref, "oci:"+out+":v1")
			viaAllowed := err == nil
			if viaAllowed != directAllowed {
				t.Errorf("through pullgate allowed=%v, skopeo directly allowed=%v\nvia pullgate: %s\ndirectly: %s",
					viaAllowed, directAllowed, viaErr, directErr)
			}
			if viaAllowed != c.allowed {
				t.Fatalf("through pullgate allowed=%v, want %v: %s", viaAllowed, c.allowed, viaErr)
			}
			if c.allowed {
				if m := harness.LayoutManifests(t, out); len(m) != 1 || m[0].Digest != want {
					t.Errorf("pulled %v, want %s", m, want)
				}
				return
			}
			if !strings.Contains(directErr, "Source image rejected") || !strings.Contains(directErr, c.directWhy) {
				t.Errorf("skopeo directly: want %q:\n%s", c.directWhy, directErr)
			}
			// skopeo shows pullgate's DENIED message.
			if !strings.Contains(viaErr, "denied: "+ref+" ("+want.String()+") is not trusted") {
				t.Errorf("skopeo through pullgate does not show the denial:\n%s", viaErr)
			}
			e := call(t, http.MethodGet, "http://"+pg.Host+"/v2/"+fullName(c.repo)+"/manifests/v1").denied(t, ref)
			for _, part := range []string{ref, want.String(), "policy " + c.scope + " requirement " + c.requirement, c.why} {
				if !strings.Contains(e.Message, part) {
					t.Errorf("message lacks %q: %s", part, e.Message)
				}
			}
			wantDetail := map[string]string{"identity": ref, "digest": want.String(), "verdict": "deny",
				"scope": c.scope, "requirement": c.requirement}
			for k, v := range wantDetail {
				if e.Detail[k] != v {
					t.Errorf("detail.%s = %v, want %q", k, e.Detail[k], v)
				}
			}
			if r, _ := e.Detail["reason"].(string); !strings.Contains(r, c.why) {
				t.Errorf("detail.reason = %q, want %q in it", r, c.why)
			}
		})
	}
}

// testSignatureAPI: skopeo pointed at pullgate, with a signedBy policy and no
// registries.d, verifies the image with the signatures pullgate serves through its
// signature API, and never reads the lookaside.
//
// Identities: skopeo pulls 127.0.0.1:<pullgate>/registry.test/viaapi/app:v1, so that is
// the identity its policy sees, while the signature claims registry.test/viaapi/app:v1
// (the upstream name, as pullgate's policy needs). A remapIdentity from the proxy-side
// prefix 127.0.0.1:<pullgate>/registry.test to the signed prefix registry.test makes
// them match; without it skopeo refuses the (valid) signature for its identity.
func testSignatureAPI(t *testing.T, w *enforceWorld, pg *harness.Pullgate, want v1.Hash) {
	repo := "viaapi/app"
	proxyPrefix := pg.Host + "/" + upstreamName
	policy := func(key harness.GPGKey, remap bool) string {
		identity := ""
		if remap {
			identity = fmt.Sprintf(`, "signedIdentity": {"type": "remapIdentity", "prefix": %q, "signedPrefix": %q}`, proxyPrefix, upstreamName)
		}
		p := filepath.Join(t.TempDir(), "policy.json")
		testsupport.WriteFile(t, p, fmt.Sprintf(`{"default": [{"type": "reject"}], "transports": {"docker": {%q: [
			{"type": "signedBy", "keyType": "GPGKeys", "keyPath": %q%s}]}}}`, proxyPrefix+"/viaapi", key.PublicKeyFile, identity))
		return p
	}
	src := "docker://" + proxyPrefix + "/" + repo + ":v1"
	pull := func(policy string) (string, string, error) {
		out := filepath.Join(t.TempDir(), "dir")
		_, errOut, err := harness.SkopeoRun(t, harness.SkopeoOptions{Policy: policy}, "copy", "--src-tls-verify=false", src, "dir:"+out)
		return out, errOut, err
	}

	out, errOut, err := pull(policy(w.trusted, true))
	if err != nil {
		t.Fatalf("skopeo with a signedBy policy through pullgate: %v\n%s", err, errOut)
	}
	mf := testsupport.ReadFile(t, filepath.Join(out, "manifest.json"))
	if got, _, _ := v1.SHA256(bytes.NewReader(mf)); got != want {
		t.Errorf("pulled manifest %s, want %s", got, want)
	}
	// skopeo stores the signatures it verified: the lookaside's, served by pullgate.
	copied, err := os.ReadFile(filepath.Join(out, "signature-1"))
	stored := w.sig.Signatures(t, repo, want)
	if err != nil || len(stored) != 1 || !bytes.Equal(copied, stored[0]) {
		t.Errorf("signature skopeo stored (%v) differs from the lookaside's", err)
	}

	// skopeo really verified: the same signatures fail its policy with another key, or
	// without the identity remapping.
	if _, errOut, err := pull(policy(w.untrusted, true)); err == nil || !strings.Contains(errOut, "Invalid GPG signature") {
		t.Errorf("skopeo trusting another key: err %v\n%s", err, errOut)
	}
	wantMsg := "Signature for identity " + fullName(repo) + ":v1 is not accepted"
	if _, errOut, err := pull(policy(w.trusted, false)); err == nil || !strings.Contains(errOut, wantMsg) {
		t.Errorf("skopeo without remapIdentity: err %v, want %q\n%s", err, wantMsg, errOut)
	}

	// The lookaside saw one fetch of signature-1, pullgate's for its verdict (then cached,
	// and served to skopeo three times through the API). skopeo reading it itself, or
	// pullgate fetching again, would show up here.
	if n := w.sig.Lookaside.Count(repo+"@", "/signature-1"); n != 1 {
		t.Errorf("lookaside served signature-1 of %s %d times, want 1 (pullgate's fetch only): %v", repo, n, w.sig.Lookaside.Requests())
	}
	api := call(t, http.MethodGet, "http://"+pg.Host+"/v2/")
	if api.status != http.StatusOK || api.header.Get("X-Registry-Supports-Signatures") != "1" {
		t.Errorf("GET /v2/: %d %v", api.status, api.header)
	}
}

// testBlobBypass: nothing of a denied image is served by digest, a manifest's digest is
// never a blob, and HEAD agrees with GET (SPEC.md 10.7 #52, #53).
func testBlobBypass(t *testing.T, w *enforceWorld, pg *harness.Pullgate, digests map[string]v1.Hash) {
	base := "http://" + pg.Host + "/v2/" + upstreamName + "/"
	contents := func(repo string) (config v1.Hash, layers []v1.Hash) {
		blobs := w.blobsOf(t, repo)
		return blobs[0], blobs[1:]
	}

	deniedConfig, deniedLayers := contents("unsigned/app")
	// Before and after its manifest was refused, no blob of the denied image is served.
	for _, after := range []bool{false, true} {
		if after {
			call(t, http.MethodGet, base+"unsigned/app/manifests/v1").denied(t, "denied manifest")
		}
		for _, d := range append([]v1.Hash{deniedConfig, digests["unsigned/app"]}, deniedLayers...) {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				a := call(t, method, base+"unsigned/app/blobs/"+d.String())
				if method == http.MethodHead {
					if a.status != http.StatusForbidden || len(a.body) != 0 {
						t.Errorf("HEAD blob %s (after manifest: %v): %d, body %q", d, after, a.status, a.body)
					}
					continue
				}
				e := a.denied(t, "blob "+d.String())
				if !strings.Contains(e.Message, d.String()) || !strings.Contains(e.Message, "unsigned/app") {
					t.Errorf("blob denial does not name the blob and repository: %s", e.Message)
				}
			}
		}
	}

	// HEAD and GET of the denied manifest, by tag and by digest.
	for _, ref := range []string{"v1", digests["unsigned/app"].String()} {
		head := call(t, http.MethodHead, base+"unsigned/app/manifests/"+ref)
		if head.status != http.StatusForbidden || len(head.body) != 0 || head.header.Get("Docker-Content-Digest") != "" {
			t.Errorf("HEAD denied manifest %s: %d %v, body %q", ref, head.status, head.header, head.body)
		}
		call(t, http.MethodGet, base+"unsigned/app/manifests/"+ref).denied(t, "GET denied manifest "+ref)
	}

	// The accepted image: HEAD says what GET serves; its blobs are served in its own
	// repository only; its manifest digest is still no blob.
	want := digests["signed/app"]
	for _, ref := range []string{"v1", want.String()} {
		head := call(t, http.MethodHead, base+"signed/app/manifests/"+ref)
		get := call(t, http.MethodGet, base+"signed/app/manifests/"+ref)
		get.served(t, "GET signed manifest "+ref, want)
		if head.status != http.StatusOK || len(head.body) != 0 {
			t.Errorf("HEAD signed manifest %s: %d, body %q", ref, head.status, head.body)
		}
		for _, h := range []string{"Docker-Content-Digest", "Content-Length", "Content-Type"} {
			if head.header.Get(h) == "" || head.header.Get(h) != get.header.Get(h) {
				t.Errorf("%s %s: HEAD %q, GET %q", ref, h, head.header.Get(h), get.header.Get(h))
			}
		}
	}
	config, layers := contents("signed/app")
	for _, d := range append([]v1.Hash{config}, layers...) {
		call(t, http.MethodGet, base+"signed/app/blobs/"+d.String()).served(t, "blob "+d.String(), d)
		// The same digest asked for in another repository is not admitted there.
		call(t, http.MethodGet, base+"unsigned/app/blobs/"+d.String()).denied(t, "blob of signed/app via unsigned/app")
	}
	call(t, http.MethodGet, base+"signed/app/blobs/"+want.String()).denied(t, "an accepted manifest's digest as a blob")
}
