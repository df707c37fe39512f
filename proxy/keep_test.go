package proxy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/content"
	"github.com/pullgate/pullgate/proxy/gatetest"
	"github.com/pullgate/pullgate/proxy/upstream"
)

// keepingSource is an upstream that records what the handler asks it to keep.
type keepingSource struct {
	content.Source
	mu   sync.Mutex
	kept []string
}

func (k *keepingSource) KeepManifest(ctx context.Context, repo, ref string, m *content.Manifest) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.kept = append(k.kept, repo+":"+ref)
}

// The handler keeps a manifest only when the gate vouched for it: not when it refused,
// and not when it served a denial in a warn scope.
func TestHandlerKeepsOnlyWhatTheGateVouchedFor(t *testing.T) {
	u := startUpstream(t, nil)
	u.push(t, "team/app", "v1", randomImage(t))
	for _, tc := range []struct {
		name     string
		decision admission.Decision
		status   int
		kept     int
	}{
		{"accepted", admission.Decision{Allow: true}, http.StatusOK, 1},
		{"served under a warn scope", admission.Decision{Allow: true, Unenforced: true}, http.StatusOK, 0},
		{"denied", admission.Decision{Reason: "no"}, http.StatusForbidden, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &keepingSource{Source: newClient(t, u)}
			gate := gatetest.Funcs{Manifest: func(context.Context, *admission.ManifestRequest) (admission.Decision, error) {
				return tc.decision, nil
			}}
			h, err := proxy.New(proxy.Options{Upstreams: []proxy.Upstream{{Registry: testRegistry, Source: src}},
				DefaultUpstream: testRegistry, Gate: gate})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/v2/team/app/manifests/v1")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status || len(src.kept) != tc.kept {
				t.Fatalf("status %d, kept %v; want %d and %d kept", resp.StatusCode, src.kept, tc.status, tc.kept)
			}
		})
	}
}

// newClient is an upstream client for u as the registry.test upstream.
func newClient(t *testing.T, u *upstreamServer) *upstream.Client {
	t.Helper()
	c, err := upstream.New(upstream.Options{Registry: testRegistry, URL: &url.URL{Scheme: "http", Host: u.host()}, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
