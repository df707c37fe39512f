package enforce

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/content"
)

// TestGateUndecidedIsUnavailable: when signatures cannot be read, the answer is 503
// UNAVAILABLE whatever the upstream said while they were being read. An upstream's 403
// on a .sig tag must not reach the client as a DENIED, nor its 404 on a referrer as a
// MANIFEST_UNKNOWN about the image asked for.
func TestGateUndecidedIsUnavailable(t *testing.T) {
	ociError := func(status int, code string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, `{"errors":[{"code":"`+code+`","message":"from the upstream"}]}`)
		}
	}
	img := image(t, "app")
	sigPath := "/v2/" + testRepo + "/manifests/sha256-" + img.digest.Encoded() + ".sig"
	tests := []struct {
		name string
		fail func(w *world)
	}{
		{"lookaside answers 500", func(w *world) { w.lookaside.fail(testRepo, img.digest, 1, 1) }},
		{".sig answers 403", func(w *world) { w.override(http.MethodGet, sigPath, ociError(http.StatusForbidden, "DENIED")) }},
		{".sig answers 401", func(w *world) { w.override(http.MethodGet, sigPath, ociError(http.StatusUnauthorized, "UNAUTHORIZED")) }},
		{".sig answers 429", func(w *world) {
			w.override(http.MethodGet, sigPath, ociError(http.StatusTooManyRequests, "TOOMANYREQUESTS"))
		}},
		{"listed referrer is missing", func(w *world) {
			w.override(http.MethodGet, "/v2/"+testRepo+"/manifests/"+content.ReferrersTag(img.digest), func(rw http.ResponseWriter, _ *http.Request) {
				rw.Header().Set("Content-Type", content.MediaTypeOCIIndex)
				io.WriteString(rw, `{"schemaVersion":2,"manifests":[{"mediaType":"`+content.MediaTypeOCIManifest+`","digest":"`+
					digest.FromString("gone").String()+`","size":2,"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"}]}`)
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			w.write("registries.d/attachments.yaml", []byte("docker:\n  "+testRegistry+":\n    use-sigstore-attachments: true\n"))
			w.finder = w.newFinder()
			w.push(testRepo, "1", img)
			tt.fail(w)
			g := w.gate(w.policy(signedByTrusted), func(o *Options) { o.DenyTTL = 1 })

			_, err := admit(t, g, testRepo, "1", img)
			pe := proxy.GateAnswer(err)
			var ie *IndeterminateError
			if err == nil || pe.Code != errcode.ErrorCodeUnavailable || pe.HTTPStatus() != http.StatusServiceUnavailable || !errors.As(err, &ie) {
				t.Fatalf("err = %v, want a 503 UNAVAILABLE wrapping an *IndeterminateError", err)
			}
			if strings.Contains(pe.Message, w.lookaside.URL) || strings.Contains(pe.Message, w.registry.URL) {
				t.Fatalf("message %q shows an internal address", pe.Message)
			}

			// The same failure through pullgate's handler.
			tt.fail(w)
			h, err := proxy.New(proxy.Options{Upstreams: []proxy.Upstream{{Registry: testRegistry, Source: w.client}}, Gate: g})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/v2/" + testRegistry + "/" + testRepo + "/manifests/1")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Errors []struct{ Code string } `json:"errors"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusServiceUnavailable || len(body.Errors) != 1 || body.Errors[0].Code != "UNAVAILABLE" {
				t.Fatalf("pullgate answered %d %+v, want 503 UNAVAILABLE", resp.StatusCode, body)
			}
		})
	}
}
