package integration

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/proxy/gatetest"
)

// TestTagPaginationFollowsLinks walks distribution's tag pages through pullgate in each
// routing form: every Link points back at pullgate in the form the client used.
func TestTagPaginationFollowsLinks(t *testing.T) {
	reg := harness.StartRegistry(t, harness.WithTokenAuth(testUser, testPassword))
	d := reg.Push(t, "team/paged:a", harness.DockerImage(t, 1, 512))
	want := []string{"a", "b", "c", "d", "e"}
	for _, tag := range want[1:] {
		reg.Tag(t, "team/paged", tag, d)
	}
	p := harness.StartProxy(t, harness.ProxyOptions{
		Upstreams:       []harness.Upstream{harness.UpstreamFor(upstreamName, reg)},
		DefaultUpstream: upstreamName, Gate: gatetest.AllowAll{},
	})
	for _, tc := range []struct{ mode, first, wantPrefix, wantName string }{
		{"prefix", "/v2/" + upstreamName + "/team/paged/tags/list?n=2", "/v2/" + upstreamName + "/team/paged/tags/list?", upstreamName + "/team/paged"},
		{"default", "/v2/team/paged/tags/list?n=2", "/v2/team/paged/tags/list?", "team/paged"},
		{"ns", "/v2/team/paged/tags/list?n=2&ns=" + upstreamName, "/v2/team/paged/tags/list?", "team/paged"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			var got []string
			next, pages := tc.first, 0
			for next != "" {
				pages++
				if pages > len(want)+1 {
					t.Fatalf("pagination does not end: %v", got)
				}
				resp, body := httpGet(t, p.URL.String()+next, nil)
				if resp.StatusCode != 200 {
					t.Fatalf("GET %s: %s %s", next, resp.Status, body)
				}
				var tl struct {
					Name string   `json:"name"`
					Tags []string `json:"tags"`
				}
				if err := json.Unmarshal(body, &tl); err != nil {
					t.Fatal(err)
				}
				if tl.Name != tc.wantName || len(tl.Tags) > 2 {
					t.Fatalf("page %d: %s %v", pages, tl.Name, tl.Tags)
				}
				got = append(got, tl.Tags...)
				next = ""
				if link := resp.Header.Get("Link"); link != "" {
					target, _, _ := strings.Cut(strings.TrimPrefix(link, "<"), ">")
					if !strings.HasPrefix(target, tc.wantPrefix) || !strings.Contains(link, `rel="next"`) {
						t.Fatalf("Link %q does not point at pullgate's %s", link, tc.wantPrefix)
					}
					if tc.mode == "ns" && !strings.Contains(target, "ns="+upstreamName) {
						t.Fatalf("Link %q lost ns=", link)
					}
					next = target
				}
			}
			if !slices.Equal(got, want) || pages != 3 {
				t.Fatalf("%d pages, tags %v, want 3 pages of %v", pages, got, want)
			}
		})
	}
	// last= alone.
	resp, body := httpGet(t, p.URL.String()+"/v2/team/paged/tags/list?last=c", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"tags":["d","e"]`) {
		t.Fatalf("last=c: %s %s", resp.Status, body)
	}
}

// TestReferrersThroughTagSchema: distribution has no referrers API, so pullgate answers
// from the referrers tag schema, as oras and cosign write it.
func TestReferrersThroughTagSchema(t *testing.T) {
	reg := harness.StartRegistry(t)
	subject := reg.Push(t, "team/app:v1", harness.OCIImage(t, 1, 512, harness.LinuxAMD64))
	sig := pushArtifact(t, reg, "team/app", subject, "application/vnd.example.signature")
	sbom := pushArtifact(t, reg, "team/app", subject, "application/vnd.example.sbom")
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: sig.img, Descriptor: sig.desc},
		mutate.IndexAddendum{Add: sbom.img, Descriptor: sbom.desc})
	reg.PushIndex(t, "team/app:sha256-"+subject.Hex, idx)
	p := harness.StartProxy(t, harness.ProxyOptions{
		Upstreams:       []harness.Upstream{harness.UpstreamFor(upstreamName, reg)},
		DefaultUpstream: upstreamName, Gate: gatetest.AllowAll{},
	})
	for _, tc := range []struct {
		query      string
		want       []v1.Hash
		wantFilter string
	}{
		{query: "", want: []v1.Hash{sig.desc.Digest, sbom.desc.Digest}},
		{query: "?artifactType=application/vnd.example.sbom", want: []v1.Hash{sbom.desc.Digest}, wantFilter: "artifactType"},
		{query: "?artifactType=application/vnd.example.none", want: nil, wantFilter: "artifactType"},
	} {
		resp, body := httpGet(t, p.URL.String()+"/v2/team/app/referrers/"+subject.String()+tc.query, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" {
			t.Fatalf("referrers%s: %s %q %s", tc.query, resp.Status, resp.Header.Get("Content-Type"), body)
		}
		var im v1.IndexManifest
		if err := json.Unmarshal(body, &im); err != nil {
			t.Fatal(err)
		}
		var got []v1.Hash
		for _, m := range im.Manifests {
			got = append(got, m.Digest)
			if m.ArtifactType == "" {
				t.Errorf("descriptor %s without artifactType", m.Digest)
			}
		}
		if !slices.Equal(got, tc.want) || resp.Header.Get("OCI-Filters-Applied") != tc.wantFilter {
			t.Fatalf("referrers%s: %v (filter %q), want %v", tc.query, got, resp.Header.Get("OCI-Filters-Applied"), tc.want)
		}
	}
	// An image without referrers: an empty index, not a 404.
	other := reg.Push(t, "team/app:v2", harness.OCIImage(t, 1, 512, harness.LinuxAMD64))
	resp, body := httpGet(t, p.URL.String()+"/v2/team/app/referrers/"+other.String(), nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"manifests":[]`) {
		t.Fatalf("no referrers: %s %s", resp.Status, body)
	}
}

type artifact struct {
	img  v1.Image
	desc v1.Descriptor
}

// pushArtifact pushes an OCI artifact manifest whose subject is subject, by digest.
func pushArtifact(t *testing.T, reg *harness.Registry, repo string, subject v1.Hash, artifactType string) artifact {
	t.Helper()
	subjectDesc, err := remote.Head(reg.Ref(t, repo+"@"+subject.String()), remote.WithAuth(reg.Auth()))
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.MediaType(artifactType))
	img = mutate.Subject(img, *subjectDesc).(v1.Image)
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(reg.Ref(t, repo+"@"+d.String()), img, remote.WithAuth(reg.Auth())); err != nil {
		t.Fatal(err)
	}
	raw, _ := img.RawManifest()
	return artifact{img: img, desc: v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: d, Size: int64(len(raw)), ArtifactType: artifactType}}
}
