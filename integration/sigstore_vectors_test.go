package integration_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullgate/pullgate/integration/harness"
)

// SPEC.md 10.5 (vectors 36-45) end to end, where the registry and the fetch path matter.
// The verification vectors are table tests below this level and are not repeated here:
//   - 37 (layers skipped, rejected one by one), 38 (signature annotation), 39 (key types,
//     keyPaths, first PEM block only), 40 (optional null, name-only identity), 41 (key +
//     Rekor SET), 44 (signed digest): policy/sigstore/attachment_test.go and
//     policy/sigstoresigned_test.go;
//   - 42 (fulcio) and 43 (pki): policy/sigstore/certs_test.go;
//   - 36 and 45 in the finder: proxy/sigsource/registry_test.go and finder_test.go.
// End to end, with cosign and the containers/image oracle: 40 (default matcher), 44, 45
// and 47 in sigstore_test.go, 42-43 against cosign's certificate signatures in
// sigstore_keyless_test.go; here 36 (the .sig manifest absent, unreadable, or written
// with Docker media types) and 37 (every layer of the .sig manifest is tried).

// sigTagGET matches GETs of the .sig manifests of repo once on is true (cosign reads the
// .sig manifest too, before it adds a layer).
func sigTagGET(on *atomic.Bool, repo string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return on.Load() && r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v2/"+repo+"/manifests/sha256-") &&
			strings.HasSuffix(r.URL.Path, ".sig")
	}
}

// answer replaces a response with status and body.
func answer(status int, body string) func(*http.Request, int, http.Header, []byte) (int, []byte) {
	return func(_ *http.Request, _ int, h http.Header, _ []byte) (int, []byte) {
		h.Set("Content-Type", "application/json")
		return status, []byte(body)
	}
}

func TestSigstoreAttachmentVectors(t *testing.T) {
	var broken atomic.Bool
	reg := harness.StartRegistry(t,
		harness.WithMiddleware(harness.RewriteResponses(sigTagGET(&broken, "vectors/redhat"),
			answer(http.StatusBadRequest, `{"errors":[{"code":"UNKNOWN","message":"Not Found"}]}`))),
		harness.WithMiddleware(harness.RewriteResponses(sigTagGET(&broken, "vectors/harbor"),
			answer(http.StatusBadRequest, `{"errors":[{"code":"UNKNOWN","message":"artifact test:sha256-x.sig not found"}]}`))),
		harness.WithMiddleware(harness.RewriteResponses(sigTagGET(&broken, "vectors/sig500"),
			answer(http.StatusInternalServerError, `{"errors":[{"code":"UNKNOWN","message":"Not Found"}]}`))),
	)
	cosign := harness.NewCosign(t)
	otherKey, _ := cosign.GenerateKeyPair(t, "other")
	push := func(t *testing.T, repo string) v1.Hash {
		return reg.Push(t, repo+":v1", harness.OCIImage(t, 1, 2048, harness.LinuxAMD64))
	}
	signed := func(repo string, env ...string) func(*testing.T) {
		return func(t *testing.T) {
			cosign.Sign(t, cosign.Key, reg.Host+"/"+repo+"@"+push(t, repo).String(), env)
		}
	}
	byKey := keyRequirement(cosign.Pub, matchRepository)

	cases := []sigCase{
		// 36: a missing .sig manifest means no signatures, however the registry words it:
		// distribution's 404 MANIFEST_UNKNOWN, registry.redhat.io's UNKNOWN "Not Found",
		// Harbor's UNKNOWN "... not found" (both here with a 400, so that only the error body
		// says "not found").
		{name: "36: .sig absent (404 MANIFEST_UNKNOWN)", repo: "vectors/absent", requirement: byKey,
			sign: func(t *testing.T) { push(t, "vectors/absent") }, oracle: deny, pullgate: deny,
			reason: "no signature exists"},
		{name: "36: .sig absent (UNKNOWN Not Found)", repo: "vectors/redhat", requirement: byKey,
			sign: signed("vectors/redhat"), oracle: deny, pullgate: deny, reason: "no signature exists"},
		{name: "36: .sig absent (UNKNOWN ... not found)", repo: "vectors/harbor", requirement: byKey,
			sign: signed("vectors/harbor"), oracle: deny, pullgate: deny, reason: "no signature exists"},
		// 36: any other failure to read the .sig manifest decides nothing: containers/image
		// fails the pull with an error, pullgate answers 503. The body of a 5xx is not read,
		// so "Not Found" in it does not make the signatures absent.
		{name: "36: .sig answers 500", repo: "vectors/sig500", requirement: byKey,
			sign: signed("vectors/sig500"), oracle: undecided, pullgate: undecided},
		// 36: cosign with COSIGN_DOCKER_MEDIA_TYPES=1 writes the .sig manifest as Docker
		// schema 2, which containers/image refuses to read as an attachment (an error, not
		// "unsigned"); pullgate too.
		{name: "36: .sig with Docker media types", repo: "vectors/dockertypes", requirement: byKey,
			sign: signed("vectors/dockertypes", "COSIGN_DOCKER_MEDIA_TYPES=1"), oracle: undecided, pullgate: undecided},
		// 37: a DSSE layer (skipped), a signature by another key (rejected), then a valid
		// one: every layer is tried, the last accepts.
		{name: "37: skipped, bad, then valid layer", repo: "vectors/layers", requirement: byKey,
			sign: func(t *testing.T) {
				d := push(t, "vectors/layers")
				ref := reg.Host + "/vectors/layers@" + d.String()
				cosign.Sign(t, otherKey, ref, nil)
				cosign.Sign(t, cosign.Key, ref, nil)
				layers := reg.SigLayers(t, "vectors/layers", d)
				if len(layers) != 2 {
					t.Fatalf("%d layers after two cosign sign runs, want 2", len(layers))
				}
				dsse := harness.SigLayer{MediaType: "application/vnd.dsse.envelope.v1+json", Data: []byte(`{"payloadType":"x","payload":"","signatures":[]}`),
					Annotations: layers[1].Annotations}
				reg.PutSigLayers(t, "vectors/layers", d, append([]harness.SigLayer{dsse}, layers...))
			},
			oracle: accept, pullgate: accept, acceptedBy: ".sig layer 3) is a valid sigstore signature"},
	}
	env := prepareSigCases(t, reg, cases)
	broken.Store(true)
	env.checkAll(t, cases)

	// Why neither could decide: pullgate answers clients with a generic 503 and logs the
	// cause; the oracle printed it.
	t.Run("36: why neither could decide", func(t *testing.T) {
		const dockerManifest = `"application/vnd.docker.distribution.manifest.v2+json"`
		for _, c := range []struct {
			repo             string
			pullgate, oracle []string
		}{
			{"vectors/sig500", []string{".sig", "500"}, []string{".sig", "500 Internal Server Error"}},
			{"vectors/dockertypes", []string{dockerManifest, "not an OCI image manifest"},
				[]string{dockerManifest, "unexpected MIME type for sigstore attachment manifest"}},
		} {
			if got := env.ask(t, c.repo, "v1"); got.status != http.StatusServiceUnavailable {
				t.Errorf("%s: pullgate answered %d %s, want 503", c.repo, got.status, got.message)
			}
			d := env.lastDecision(t, c.repo)
			o := env.oracle.Pull(t, env.policy, env.regd, "docker://"+reg.Host+"/"+c.repo+":v1")
			if d.Verdict != "error" || !containsAll(d.Reason, c.pullgate) {
				t.Errorf("%s: pullgate decided %s (%s), want error mentioning %q", c.repo, d.Verdict, d.Reason, c.pullgate)
			}
			if o.Code != harness.OracleFailed || !containsAll(o.Output, c.oracle) {
				t.Errorf("%s: the oracle exited %d (%s), want 2 mentioning %q", c.repo, o.Code, o.Output, c.oracle)
			}
		}
	})
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
