package proxy

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy/content"
)

const testDigest = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func testRouter(defaultRegistry string) *router {
	return &router{
		registries:      map[string]bool{"docker.io": true, "quay.io": true, "127.0.0.1:5001": true, "registry.test": true},
		defaultRegistry: defaultRegistry,
	}
}

func TestRouteParse(t *testing.T) {
	tests := []struct {
		name       string
		path       string
		query      string
		defaultReg string
		want       route
		wantCode   errcode.ErrorCode // zero: success
	}{
		// /v2/ itself.
		{name: "ping", path: "/v2/", want: route{endpoint: endpointPing}},
		{name: "ping without slash", path: "/v2", want: route{endpoint: endpointPing}},
		{name: "catalog", path: "/v2/_catalog", want: route{endpoint: endpointCatalog}},

		// Rule 1: the first component is a configured registry.
		{name: "prefix", path: "/v2/quay.io/team/app/manifests/v1",
			want: route{endpoint: endpointManifest, name: "quay.io/team/app", registry: "quay.io", repo: "team/app", ref: "v1"}},
		{name: "prefix with port", path: "/v2/127.0.0.1:5001/team/app/blobs/" + testDigest,
			want: route{endpoint: endpointBlob, name: "127.0.0.1:5001/team/app", registry: "127.0.0.1:5001", repo: "team/app", ref: testDigest}},
		{name: "prefix docker.io gets library/", path: "/v2/docker.io/alpine/manifests/3.20",
			want: route{endpoint: endpointManifest, name: "docker.io/alpine", registry: "docker.io", repo: "library/alpine", ref: "3.20"}},
		{name: "prefix docker.io two components kept", path: "/v2/docker.io/user/app/tags/list",
			want: route{endpoint: endpointTags, name: "docker.io/user/app", registry: "docker.io", repo: "user/app"}},
		{name: "prefix other registry one component no library/", path: "/v2/quay.io/app/manifests/v1",
			want: route{endpoint: endpointManifest, name: "quay.io/app", registry: "quay.io", repo: "app", ref: "v1"}},
		{name: "prefix wins over ns", path: "/v2/quay.io/team/app/manifests/v1", query: "ns=docker.io",
			want: route{endpoint: endpointManifest, name: "quay.io/team/app", registry: "quay.io", repo: "team/app", ref: "v1", clientNS: "docker.io"}},
		{name: "prefix wins over unknown ns", path: "/v2/quay.io/team/app/manifests/v1", query: "ns=evil.example",
			want: route{endpoint: endpointManifest, name: "quay.io/team/app", registry: "quay.io", repo: "team/app", ref: "v1", clientNS: "evil.example"}},
		{name: "prefix with invalid rest", path: "/v2/quay.io/Team/app/manifests/v1", wantCode: errcode.ErrorCodeNameInvalid},
		{name: "prefix alone is a name, not a registry", path: "/v2/quay.io/manifests/v1", defaultReg: "docker.io",
			want: route{endpoint: endpointManifest, name: "quay.io", registry: "docker.io", repo: "library/quay.io", ref: "v1"}},

		// Rule 2: ns=.
		{name: "ns", path: "/v2/team/app/manifests/v1", query: "ns=quay.io",
			want: route{endpoint: endpointManifest, name: "team/app", registry: "quay.io", repo: "team/app", ref: "v1", ns: "quay.io", clientNS: "quay.io"}},
		{name: "ns docker.io gets library/", path: "/v2/alpine/manifests/latest", query: "ns=docker.io",
			want: route{endpoint: endpointManifest, name: "alpine", registry: "docker.io", repo: "library/alpine", ref: "latest", ns: "docker.io", clientNS: "docker.io"}},
		{name: "ns with port", path: "/v2/lib/app/blobs/" + testDigest, query: "ns=127.0.0.1:5001",
			want: route{endpoint: endpointBlob, name: "lib/app", registry: "127.0.0.1:5001", repo: "lib/app", ref: testDigest, ns: "127.0.0.1:5001", clientNS: "127.0.0.1:5001"}},
		{name: "ns unknown", path: "/v2/library/alpine/manifests/latest", query: "ns=evil.example", defaultReg: "docker.io",
			wantCode: errcode.ErrorCodeNameUnknown},
		{name: "ns empty is unknown", path: "/v2/library/alpine/manifests/latest", query: "ns=", defaultReg: "docker.io",
			wantCode: errcode.ErrorCodeNameUnknown},
		{name: "ns with invalid name", path: "/v2/Team/app/manifests/v1", query: "ns=quay.io", wantCode: errcode.ErrorCodeNameInvalid},

		// Rule 3: defaultUpstream.
		{name: "default", path: "/v2/library/alpine/manifests/latest", defaultReg: "docker.io",
			want: route{endpoint: endpointManifest, name: "library/alpine", registry: "docker.io", repo: "library/alpine", ref: "latest"}},
		{name: "default docker.io gets library/", path: "/v2/alpine/manifests/latest", defaultReg: "docker.io",
			want: route{endpoint: endpointManifest, name: "alpine", registry: "docker.io", repo: "library/alpine", ref: "latest"}},
		{name: "default other registry", path: "/v2/app/manifests/latest", defaultReg: "registry.test",
			want: route{endpoint: endpointManifest, name: "app", registry: "registry.test", repo: "app", ref: "latest"}},
		{name: "unknown prefix falls through when valid", path: "/v2/ghcr.io/org/app/manifests/v1", defaultReg: "docker.io",
			want: route{endpoint: endpointManifest, name: "ghcr.io/org/app", registry: "docker.io", repo: "ghcr.io/org/app", ref: "v1"}},
		{name: "unknown prefix with port is invalid", path: "/v2/localhost:5000/app/manifests/v1", defaultReg: "docker.io",
			wantCode: errcode.ErrorCodeNameInvalid},
		{name: "no default", path: "/v2/library/alpine/manifests/latest", wantCode: errcode.ErrorCodeNameUnknown},

		// Endpoints.
		{name: "tags", path: "/v2/team/app/tags/list", defaultReg: "registry.test",
			want: route{endpoint: endpointTags, name: "team/app", registry: "registry.test", repo: "team/app"}},
		{name: "referrers", path: "/v2/team/app/referrers/" + testDigest, defaultReg: "registry.test",
			want: route{endpoint: endpointReferrers, name: "team/app", registry: "registry.test", repo: "team/app", ref: testDigest}},
		{name: "manifest by digest", path: "/v2/team/app/manifests/" + testDigest, defaultReg: "registry.test",
			want: route{endpoint: endpointManifest, name: "team/app", registry: "registry.test", repo: "team/app", ref: testDigest}},
		{name: "name ending in manifests", path: "/v2/team/manifests/manifests/v1", defaultReg: "registry.test",
			want: route{endpoint: endpointManifest, name: "team/manifests", registry: "registry.test", repo: "team/manifests", ref: "v1"}},
		{name: "upload start", path: "/v2/team/app/blobs/uploads/", defaultReg: "registry.test", want: route{endpoint: endpointBlobUpload}},
		{name: "upload start without slash", path: "/v2/team/app/blobs/uploads", defaultReg: "registry.test", want: route{endpoint: endpointBlobUpload}},
		{name: "upload session", path: "/v2/team/app/blobs/uploads/0b7e-11", defaultReg: "registry.test", want: route{endpoint: endpointBlobUpload}},
		{name: "unknown endpoint", path: "/v2/team/app/other/x", defaultReg: "registry.test", wantCode: errcode.ErrorCodeUnsupported},
		{name: "not the API", path: "/v3/team/app/manifests/v1", wantCode: errcode.ErrorCodeUnsupported},
		{name: "v2 prefix of another word", path: "/v2x/app/manifests/v1", wantCode: errcode.ErrorCodeUnsupported},

		// NAME_INVALID: the OCI name grammar.
		{name: "uppercase", path: "/v2/Library/alpine/manifests/v1", defaultReg: "docker.io", wantCode: errcode.ErrorCodeNameInvalid},
		{name: "empty component", path: "/v2/team//app/manifests/v1", defaultReg: "docker.io", wantCode: errcode.ErrorCodeNameInvalid},
		{name: "dot dot", path: "/v2/team/../app/manifests/v1", defaultReg: "docker.io", wantCode: errcode.ErrorCodeNameInvalid},
		{name: "leading separator", path: "/v2/-team/app/manifests/v1", defaultReg: "docker.io", wantCode: errcode.ErrorCodeNameInvalid},
		{name: "trailing separator", path: "/v2/team_/app/manifests/v1", defaultReg: "docker.io", wantCode: errcode.ErrorCodeNameInvalid},
		{name: "triple underscore", path: "/v2/a___b/manifests/v1", defaultReg: "docker.io", wantCode: errcode.ErrorCodeNameInvalid},
		{name: "space", path: "/v2/te am/manifests/v1", defaultReg: "docker.io", wantCode: errcode.ErrorCodeNameInvalid},
		{name: "empty name", path: "/v2//manifests/v1", defaultReg: "docker.io", wantCode: errcode.ErrorCodeNameInvalid},
		{name: "too long", path: "/v2/" + strings.Repeat("a", 256) + "/manifests/v1", defaultReg: "registry.test", wantCode: errcode.ErrorCodeNameInvalid},
		{name: "separators allowed", path: "/v2/a.b_c__d--e/f/manifests/v1", defaultReg: "registry.test",
			want: route{endpoint: endpointManifest, name: "a.b_c__d--e/f", registry: "registry.test", repo: "a.b_c__d--e/f", ref: "v1"}},

		// References.
		{name: "invalid tag", path: "/v2/team/app/manifests/.v1", defaultReg: "registry.test", wantCode: errcode.ErrorCodeTagInvalid},
		{name: "tag too long", path: "/v2/team/app/manifests/" + strings.Repeat("t", 129), defaultReg: "registry.test", wantCode: errcode.ErrorCodeTagInvalid},
		{name: "bad digest as manifest ref", path: "/v2/team/app/manifests/sha256:abc", defaultReg: "registry.test", wantCode: errcode.ErrorCodeTagInvalid},
		{name: "blob tag instead of digest", path: "/v2/team/app/blobs/latest", defaultReg: "registry.test", wantCode: errcode.ErrorCodeDigestInvalid},
		{name: "blob unknown algorithm", path: "/v2/team/app/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", defaultReg: "registry.test", wantCode: errcode.ErrorCodeDigestInvalid},
		{name: "referrers bad digest", path: "/v2/team/app/referrers/sha256:zz", defaultReg: "registry.test", wantCode: errcode.ErrorCodeDigestInvalid},
		{name: "blob sha512", path: "/v2/team/app/blobs/sha512:" + strings.Repeat("a", 128), defaultReg: "registry.test",
			want: route{endpoint: endpointBlob, name: "team/app", registry: "registry.test", repo: "team/app", ref: "sha512:" + strings.Repeat("a", 128)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := testRouter(tt.defaultReg).parse(tt.path, q)
			if tt.wantCode != 0 {
				var pe *Error
				if !errors.As(err, &pe) {
					t.Fatalf("parse(%q) = %+v, %v; want error %s", tt.path, got, err, tt.wantCode)
				}
				if pe.Code != tt.wantCode {
					t.Fatalf("parse(%q) code = %s (%v), want %s", tt.path, pe.Code, pe, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse(%q): %v", tt.path, err)
			}
			if got != tt.want {
				t.Fatalf("parse(%q)\n got %+v\nwant %+v", tt.path, got, tt.want)
			}
		})
	}
}

func TestReferrersTag(t *testing.T) {
	if got, want := content.ReferrersTag(testDigest), "sha256-"+strings.TrimPrefix(testDigest, "sha256:"); got != want {
		t.Fatalf("referrersTag = %q, want %q", got, want)
	}
	long := digest.Digest("sha512:" + strings.Repeat("b", 128))
	if got, want := content.ReferrersTag(long), "sha512-"+strings.Repeat("b", 64); got != want {
		t.Fatalf("content.ReferrersTag(%s) = %q, want %q", long, got, want)
	}
}

// FuzzRouteParse checks that any path and query either fail with an OCI error or
// resolve to a configured upstream, a repository in the OCI grammar and a valid
// reference.
func FuzzRouteParse(f *testing.F) {
	for _, seed := range []struct{ path, query string }{
		{"/v2/", ""},
		{"/v2/docker.io/alpine/manifests/latest", ""},
		{"/v2/library/alpine/manifests/latest", "ns=docker.io"},
		{"/v2/library/alpine/manifests/latest", "ns=evil.example"},
		{"/v2/127.0.0.1:5001/a/b/blobs/" + testDigest, ""},
		{"/v2/a/b/tags/list", "n=10&last=x"},
		{"/v2/a/referrers/" + testDigest, "artifactType=x"},
		{"/v2/a/blobs/uploads/", ""},
		{"/v2/A//b/../manifests/%00", "ns=%zz"},
		{"/v2/_catalog", ""},
	} {
		f.Add(seed.path, seed.query)
	}
	rt := testRouter("docker.io")
	f.Fuzz(func(t *testing.T, path, rawQuery string) {
		q, _ := url.ParseQuery(rawQuery)
		r, err := rt.parse(path, q)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("parse(%q, %q): error %v is not an *Error", path, rawQuery, err)
			}
			if s := pe.HTTPStatus(); s < 400 || s > 499 {
				t.Fatalf("parse(%q, %q): status %d", path, rawQuery, s)
			}
			return
		}
		switch r.endpoint {
		case endpointPing, endpointCatalog, endpointBlobUpload:
			return
		}
		if !rt.registries[r.registry] {
			t.Fatalf("parse(%q, %q): registry %q is not configured", path, rawQuery, r.registry)
		}
		if !nameRE.MatchString(r.repo) || len(r.name) > maxNameLength {
			t.Fatalf("parse(%q, %q): invalid repo %q", path, rawQuery, r.repo)
		}
		if r.registry == dockerHub && !strings.Contains(r.repo, "/") {
			t.Fatalf("parse(%q, %q): docker.io repo %q without library/", path, rawQuery, r.repo)
		}
		if err := checkReference(r); err != nil {
			t.Fatalf("parse(%q, %q): accepted invalid reference: %v", path, rawQuery, err)
		}
		if r.ns != "" && r.ns != r.registry {
			t.Fatalf("parse(%q, %q): ns %q but registry %q", path, rawQuery, r.ns, r.registry)
		}
	})
}
