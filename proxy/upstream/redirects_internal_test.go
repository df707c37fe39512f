package upstream

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
)

func TestRedirectPolicy(t *testing.T) {
	const up = "https://registry.test"
	tests := []struct {
		name  string
		class callClass
		chain []string // the first request, then each redirect target
		want  string   // "" (follow), "cross-host" or "downgrade"
	}{
		{name: "API same origin", chain: []string{up + "/v2/a/manifests/v1", up + "/v2/a/manifests/sha256:1"}},
		{name: "API same origin, explicit port", chain: []string{up + "/v2/a/tags/list", "https://registry.test:443/v2/a/tags/list?n=1"}},
		{name: "API other host", chain: []string{up + "/v2/a/referrers/sha256:1", "https://metadata.internal/creds"}, want: "cross-host"},
		{name: "API other port", chain: []string{up + "/v2/a/manifests/v1", "https://registry.test:8443/v2/a/manifests/v1"}, want: "cross-host"},
		{name: "API downgrade", chain: []string{up + "/v2/a/manifests/v1", "http://elsewhere.test/"}, want: "downgrade"},
		{name: "API back home after leaving", chain: []string{up + "/v2/a/manifests/v1", "https://other.test/x", up + "/v2/"}, want: "cross-host"},
		{name: "set-up ping", class: classSetup, chain: []string{up + "/v2/", "https://other.test/v2/"}, want: "cross-host"},
		{name: "token realm redirected", class: classSetup, chain: []string{"https://auth.test/token?scope=x", "https://other.test/token"}, want: "cross-host"},
		{name: "token refresh during a blob request", class: classBlob, chain: []string{"https://auth.test/token", "https://other.test/token"}, want: "cross-host"},
		{name: "blob to storage", class: classBlob, chain: []string{up + "/v2/a/blobs/sha256:1", "https://bucket.s3.test/obj?sig=1"}},
		{name: "blob through two hops", class: classBlob, chain: []string{up + "/v2/a/blobs/sha256:1", "https://cdn.test/x", "https://bucket.s3.test/obj"}},
		{name: "blob downgrade", class: classBlob, chain: []string{up + "/v2/a/blobs/sha256:1", "http://bucket.s3.test/obj"}, want: "downgrade"},
		{name: "blob downgrade on a later hop", class: classBlob, chain: []string{up + "/v2/a/blobs/sha256:1", "https://cdn.test/x", "http://bucket.s3.test/obj"}, want: "downgrade"},
		{name: "API path under blob class", class: classBlob, chain: []string{up + "/v2/a/manifests/v1", "https://other.test/"}, want: "cross-host"},
	}
	g := &redirectGuard{upstream: originOf(mustParse(t, up)), host: "registry.test"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := withClass(context.Background(), tt.class)
			var err error
			var prev *http.Request
			for i, raw := range tt.chain {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
				if i > 0 {
					req.Response = &http.Response{Request: prev}
					if err = g.check(req); err != nil {
						break
					}
				}
				prev = req
			}
			var re *RedirectError
			got := ""
			if errors.As(err, &re) {
				got = "downgrade"
				if re.CrossHost {
					got = "cross-host"
				}
			} else if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if got != tt.want {
				t.Fatalf("got %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}

func TestRedirectPolicyPinsTheUpstreamScheme(t *testing.T) {
	// go-containerregistry pings an http:// upstream at https://; schemeTransport pins
	// the scheme back, so a same-host redirect there is still same-origin.
	g := &redirectGuard{upstream: originOf(mustParse(t, "http://127.0.0.1:5000")), host: "127.0.0.1:5000"}
	first, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1:5000/v2/", nil)
	next, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1:5000/v2/moved", nil)
	next.Response = &http.Response{Request: first}
	if err := g.check(next); err != nil {
		t.Fatal(err)
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
