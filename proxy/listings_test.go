package proxy_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullgate/pullgate/proxy/gatetest"
)

// addLink gives tags/list answers a Link header the way distribution does, pointing at
// the upstream's own path (go-containerregistry's registry paginates but sends none).
func addLink(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/tags/list") && r.URL.Query().Get("n") != "" {
			repo := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v2/"), "/tags/list")
			w.Header().Set("Link", `<http://upstream.internal/v2/`+repo+`/tags/list?last=b&n=`+r.URL.Query().Get("n")+`&ns=x>; rel="next"`)
		}
		next.ServeHTTP(w, r)
	})
}

func TestTagsPaginationAndLink(t *testing.T) {
	u := startUpstream(t, addLink)
	img := randomImage(t)
	for _, tag := range []string{"a", "b", "c", "d"} {
		u.push(t, "team/app", tag, img)
	}
	p := startProxy(t, gatetest.AllowAll{}, u)
	tests := []struct {
		path     string
		wantName string
		wantTags []string
		wantLink string
	}{
		{path: "/v2/team/app/tags/list", wantName: "team/app", wantTags: []string{"a", "b", "c", "d"}},
		{path: "/v2/team/app/tags/list?n=2", wantName: "team/app", wantTags: []string{"a", "b"},
			wantLink: `</v2/team/app/tags/list?last=b&n=2>; rel="next"`},
		{path: "/v2/team/app/tags/list?last=b", wantName: "team/app", wantTags: []string{"c", "d"}},
		{path: "/v2/team/app/tags/list?n=1&last=c", wantName: "team/app", wantTags: []string{"d"},
			wantLink: `</v2/team/app/tags/list?last=b&n=1>; rel="next"`},
		{path: "/v2/" + testRegistry + "/team/app/tags/list?n=2", wantName: testRegistry + "/team/app", wantTags: []string{"a", "b"},
			wantLink: `</v2/` + testRegistry + `/team/app/tags/list?last=b&n=2>; rel="next"`},
		{path: "/v2/team/app/tags/list?n=2&ns=" + testRegistry, wantName: "team/app", wantTags: []string{"a", "b"},
			wantLink: `</v2/team/app/tags/list?last=b&n=2&ns=` + testRegistry + `>; rel="next"`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body, err := p.do(t, "GET", tt.path, nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%s %v %s", resp.Status, err, body)
			}
			var tl struct {
				Name string   `json:"name"`
				Tags []string `json:"tags"`
			}
			if err := json.Unmarshal(body, &tl); err != nil {
				t.Fatal(err)
			}
			if tl.Name != tt.wantName || !slices.Equal(tl.Tags, tt.wantTags) {
				t.Fatalf("got %s %q, want %s %q", tl.Name, tl.Tags, tt.wantName, tt.wantTags)
			}
			if got := resp.Header.Get("Link"); got != tt.wantLink {
				t.Fatalf("Link %q, want %q", got, tt.wantLink)
			}
		})
	}
	resp, body, _ := p.do(t, "GET", "/v2/team/nothing/tags/list", nil)
	if resp.StatusCode != 404 {
		t.Fatalf("unknown repository: %s", resp.Status)
	}
	if code, _ := ociError(t, body); code != "NAME_UNKNOWN" {
		t.Fatalf("unknown repository: %s", code)
	}
}

// pushReferrer pushes an artifact manifest whose subject is subject and returns its
// descriptor as a referrers list shows it.
func pushReferrer(t *testing.T, u *upstreamServer, repo string, subject v1.Descriptor, artifactType string) v1.Descriptor {
	t.Helper()
	art := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.MediaType(artifactType))
	art = mutate.Subject(art, subject).(v1.Image)
	d, _ := art.Digest()
	ref, _ := name.ParseReference(u.host() + "/" + repo + "@" + d.String())
	if err := remote.Write(ref, art); err != nil {
		t.Fatal(err)
	}
	raw, _ := art.RawManifest()
	return v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: d, Size: int64(len(raw)), ArtifactType: artifactType}
}

func subjectOf(t *testing.T, u *upstreamServer, repo, tag string) v1.Descriptor {
	t.Helper()
	img := randomImage(t)
	d := u.push(t, repo, tag, img)
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	return v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))}
}

func TestReferrersPassThrough(t *testing.T) {
	u := startUpstream(t, nil)
	subject := subjectOf(t, u, "team/app", "v1")
	sig := pushReferrer(t, u, "team/app", subject, "application/vnd.example.sig")
	p := startProxy(t, gatetest.AllowAll{}, u)
	direct := get(t, http.DefaultClient, "GET", u.URL+"/v2/team/app/referrers/"+subject.Digest.String(), nil)
	resp, body, _ := p.do(t, "GET", "/v2/team/app/referrers/"+subject.Digest.String(), nil)
	// Re-encoded from what was parsed (never the upstream's bytes), so equal as JSON.
	var got, want any
	if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil || json.Unmarshal(direct.body, &want) != nil ||
		!reflect.DeepEqual(got, want) {
		t.Fatalf("%s: %s, upstream said %s", resp.Status, body, direct.body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("Content-Type %q", ct)
	}
	if !strings.Contains(string(body), sig.Digest.String()) {
		t.Fatalf("referrer missing: %s", body)
	}
}

func TestReferrersFromTagSchema(t *testing.T) {
	u := startUpstream(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/referrers/") {
				http.NotFound(w, r) // an upstream without the referrers API
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	subject := subjectOf(t, u, "team/app", "v1")
	sig := pushReferrer(t, u, "team/app", subject, "application/vnd.example.sig")
	sbom := pushReferrer(t, u, "team/app", subject, "application/vnd.example.sbom")
	// The referrers tag schema: an index tagged sha256-<hex> listing the referrers.
	tagIdx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	tagIdx = mutate.AppendManifests(tagIdx,
		mutate.IndexAddendum{Add: mustImage(t, u, "team/app", sig.Digest), Descriptor: sig},
		mutate.IndexAddendum{Add: mustImage(t, u, "team/app", sbom.Digest), Descriptor: sbom})
	tagRef, _ := name.ParseReference(u.host() + "/team/app:sha256-" + subject.Digest.Hex)
	if err := remote.WriteIndex(tagRef, tagIdx); err != nil {
		t.Fatal(err)
	}
	lonely := subjectOf(t, u, "team/app", "v2")
	p := startProxy(t, gatetest.AllowAll{}, u)

	tests := []struct {
		name        string
		path        string
		wantDigests []string
		wantFilter  string
	}{
		{name: "all", path: "/v2/team/app/referrers/" + subject.Digest.String(), wantDigests: []string{sig.Digest.String(), sbom.Digest.String()}},
		{name: "filtered", path: "/v2/team/app/referrers/" + subject.Digest.String() + "?artifactType=application/vnd.example.sbom",
			wantDigests: []string{sbom.Digest.String()}, wantFilter: "artifactType"},
		{name: "no tag", path: "/v2/team/app/referrers/" + lonely.Digest.String(), wantDigests: []string{}},
		{name: "unknown repository", path: "/v2/team/none/referrers/" + lonely.Digest.String(), wantDigests: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, _ := p.do(t, "GET", tt.path, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("%s %s", resp.Status, body)
			}
			var idx struct {
				SchemaVersion int               `json:"schemaVersion"`
				MediaType     string            `json:"mediaType"`
				Manifests     []v1.Descriptor   `json:"manifests"`
				Extra         map[string]string `json:"annotations"`
			}
			if err := json.Unmarshal(body, &idx); err != nil {
				t.Fatal(err)
			}
			if idx.SchemaVersion != 2 || idx.MediaType != "application/vnd.oci.image.index.v1+json" || idx.Manifests == nil {
				t.Fatalf("not an image index: %s", body)
			}
			var got []string
			for _, m := range idx.Manifests {
				got = append(got, m.Digest.String())
			}
			if !slices.Equal(got, tt.wantDigests) && !(len(got) == 0 && len(tt.wantDigests) == 0) {
				t.Fatalf("referrers %q, want %q", got, tt.wantDigests)
			}
			if f := resp.Header.Get("OCI-Filters-Applied"); f != tt.wantFilter {
				t.Fatalf("OCI-Filters-Applied %q, want %q", f, tt.wantFilter)
			}
		})
	}
}

func mustImage(t *testing.T, u *upstreamServer, repo string, d v1.Hash) v1.Image {
	t.Helper()
	ref, _ := name.ParseReference(u.host() + "/" + repo + "@" + d.String())
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
