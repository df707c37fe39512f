package sigsource

import (
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy/content"
)

// bundleLayer is a Sigstore bundle layer (its content is not verified here).
func bundleLayer(n string) sigLayer {
	return sigLayer{mediaType: mediaTypeBundle, data: []byte(`{"mediaType":"` + mediaTypeBundle + `","n":"` + n + `"}`)}
}

// TestReferrerBundles: cosign v3 Sigstore bundles attached as referrers (SPEC.md 5.5),
// through the referrers API or, on a registry without it, the referrers tag schema.
func TestReferrerBundles(t *testing.T) {
	sbom := sigLayer{mediaType: "application/spdx+json", data: []byte(`{"spdxVersion":"SPSDX-2.3"}`)}
	tests := []struct {
		name      string
		referrers bool // the registry has the referrers API
		// setup attaches what the test needs to img and returns the bundle layers
		// expected and the referrers that must not be fetched.
		setup   func(t *testing.T, reg *testRegistry, img ocispec.Descriptor) (want []sigLayer, notFetched []digest.Digest)
		wantErr string
	}{
		{name: "none, referrers API", referrers: true,
			setup: func(t *testing.T, reg *testRegistry, img ocispec.Descriptor) ([]sigLayer, []digest.Digest) {
				return nil, nil
			}},
		{name: "none, tag schema", referrers: false,
			setup: func(t *testing.T, reg *testRegistry, img ocispec.Descriptor) ([]sigLayer, []digest.Digest) {
				return nil, nil
			}},
		{
			// go-containerregistry's registry lists a referrer's config media type as its
			// artifactType: this is the listing cosign v2.6.5 produces (empty config type).
			name: "empty-config artifactType (cosign v2.6.5), referrers API", referrers: true,
			setup: func(t *testing.T, reg *testRegistry, img ocispec.Descriptor) ([]sigLayer, []digest.Digest) {
				b := bundleLayer("1")
				reg.putReferrer(t, testRepo, img, mediaTypeBundle, ocispec.MediaTypeEmptyJSON, b)
				return []sigLayer{b}, nil
			},
		},
		{
			name: "bundle artifactType, referrers API", referrers: true,
			setup: func(t *testing.T, reg *testRegistry, img ocispec.Descriptor) ([]sigLayer, []digest.Digest) {
				b := bundleLayer("1")
				reg.putReferrer(t, testRepo, img, mediaTypeBundle, mediaTypeBundle, b)
				return []sigLayer{b}, nil
			},
		},
		{
			name: "SBOM referrer is not fetched, bundles are", referrers: true,
			setup: func(t *testing.T, reg *testRegistry, img ocispec.Descriptor) ([]sigLayer, []digest.Digest) {
				s := reg.putReferrer(t, testRepo, img, "application/spdx+json", "application/spdx+json", sbom)
				b1, b2 := bundleLayer("1"), bundleLayer("2")
				reg.putReferrer(t, testRepo, img, mediaTypeBundle, ocispec.MediaTypeEmptyJSON, b1)
				reg.putReferrer(t, testRepo, img, mediaTypeBundle, mediaTypeBundle, b2)
				return []sigLayer{b1, b2}, []digest.Digest{s.Digest}
			},
		},
		{
			name: "empty-config referrer without bundle layers gives nothing", referrers: true,
			setup: func(t *testing.T, reg *testRegistry, img ocispec.Descriptor) ([]sigLayer, []digest.Digest) {
				reg.putReferrer(t, testRepo, img, "", ocispec.MediaTypeEmptyJSON, sbom)
				return nil, nil
			},
		},
		{
			name: "referrers tag schema", referrers: false,
			setup: func(t *testing.T, reg *testRegistry, img ocispec.Descriptor) ([]sigLayer, []digest.Digest) {
				b := bundleLayer("1")
				bd := reg.putReferrer(t, testRepo, img, mediaTypeBundle, ocispec.MediaTypeEmptyJSON, b)
				s := reg.putReferrer(t, testRepo, img, "application/spdx+json", ocispec.MediaTypeEmptyJSON, sbom)
				// cosign v2.6.5 writes the empty type in the tag index too.
				bd.ArtifactType = ocispec.MediaTypeEmptyJSON
				reg.putReferrersTag(t, img.Digest, bd, s)
				return []sigLayer{b}, []digest.Digest{s.Digest}
			},
		},
		{
			name: "referrers tag schema, parameterised bundle type", referrers: false,
			setup: func(t *testing.T, reg *testRegistry, img ocispec.Descriptor) ([]sigLayer, []digest.Digest) {
				b := sigLayer{mediaType: "application/vnd.dev.sigstore.bundle+json; version=0.2", data: []byte(`{"v":"0.2"}`)}
				bd := reg.putReferrer(t, testRepo, img, "", ocispec.MediaTypeEmptyJSON, b)
				bd.ArtifactType = "application/vnd.dev.sigstore.bundle+json; version=0.2"
				reg.putReferrersTag(t, img.Digest, bd)
				return []sigLayer{b}, nil
			},
		},
		{
			name: "listed referrer missing", referrers: false, wantErr: "referrer",
			setup: func(t *testing.T, reg *testRegistry, img ocispec.Descriptor) ([]sigLayer, []digest.Digest) {
				reg.putReferrersTag(t, img.Digest, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest,
					Digest: digest.FromString("gone"), Size: 2, ArtifactType: mediaTypeBundle})
				return nil, nil
			},
		},
		{
			name: "bundle blob does not match its digest", referrers: true, wantErr: "digest",
			setup: func(t *testing.T, reg *testRegistry, img ocispec.Descriptor) ([]sigLayer, []digest.Digest) {
				b := bundleLayer("1")
				reg.putReferrer(t, testRepo, img, mediaTypeBundle, ocispec.MediaTypeEmptyJSON, b)
				reg.override(http.MethodGet, "/v2/"+testRepo+"/blobs/"+digest.FromBytes(b.data).String(), func(w http.ResponseWriter, _ *http.Request) {
					w.Write([]byte(strings.Replace(string(b.data), "1", "2", 1)))
				})
				return nil, nil
			},
		},
		{
			name: "referrers listing fails", referrers: true, wantErr: "referrers",
			setup: func(t *testing.T, reg *testRegistry, img ocispec.Descriptor) ([]sigLayer, []digest.Digest) {
				reg.override(http.MethodGet, "/v2/"+testRepo+"/referrers/"+img.Digest.String(), func(w http.ResponseWriter, _ *http.Request) {
					w.WriteHeader(http.StatusInternalServerError)
				})
				return nil, nil
			},
		},
		{
			name: "too many candidate referrers", referrers: false, wantErr: "candidate referrers",
			setup: func(t *testing.T, reg *testRegistry, img ocispec.Descriptor) ([]sigLayer, []digest.Digest) {
				// Every listed referrer exists, so the lookup fails on the count alone.
				var descs []ocispec.Descriptor
				for i := 0; i <= maxReferrerManifests; i++ {
					m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: ocispec.DescriptorEmptyJSON,
						Layers: []ocispec.Descriptor{}, Annotations: map[string]string{"n": strings.Repeat("r", i)}}
					m.SchemaVersion = 2
					data := testsupport.JSON(t, m)
					d := reg.putManifest(t, testRepo, digest.FromBytes(data).String(), ocispec.MediaTypeImageManifest, data)
					d.ArtifactType = mediaTypeBundle
					descs = append(descs, d)
				}
				reg.putReferrersTag(t, img.Digest, descs...)
				return nil, nil
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := newTestRegistry(t, tt.referrers)
			img := reg.putImage(t, testRepo, "1")
			want, notFetched := tt.setup(t, reg, img)
			sigs, err := signaturesOf(t, newTestFinder(t, reg, attachmentsOn, nil), testRepo, img.Digest)
			if !wantLookup(t, sigs, err, tt.wantErr, len(want)) {
				return
			}
			// The referrers API lists in no particular order.
			for _, w := range want {
				found := false
				for _, s := range sigs {
					if s.Format == policy.FormatSigstoreBundle && s.MIMEType == w.mediaType && string(s.Data) == string(w.data) &&
						strings.HasPrefix(s.Origin, "referrer sha256:") {
						found = true
					}
				}
				if !found {
					t.Fatalf("bundle %s not found in %+v", w.data, sigs)
				}
			}
			for _, d := range notFetched {
				if n := reg.count(http.MethodGet, "/manifests/"+d.String()); n != 0 {
					t.Fatalf("referrer %s that is not a bundle was fetched %d times", d, n)
				}
			}
			api, tag := reg.count(http.MethodGet, "/referrers/"), reg.countExact(http.MethodGet, "/v2/"+testRepo+"/manifests/"+content.ReferrersTag(img.Digest))
			if tt.referrers && (api != 1 || tag != 0) || !tt.referrers && (api != 1 || tag != 1) {
				t.Fatalf("referrers API read %d times, referrers tag %d times", api, tag)
			}
		})
	}
}

// putReferrersTag stores the referrers tag schema's index for subject.
func (r *testRegistry) putReferrersTag(t *testing.T, subject digest.Digest, descs ...ocispec.Descriptor) {
	t.Helper()
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: descs}
	idx.SchemaVersion = 2
	// go-containerregistry checks that an index's image children exist; referrers are
	// listed with their artifact types, which it does not check.
	r.override(http.MethodGet, "/v2/"+testRepo+"/manifests/"+content.ReferrersTag(subject), func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
		w.Write(testsupport.JSON(t, idx))
	})
}

// TestAttachmentSources: the order of sources and which ones use-sigstore-attachments
// enables (SPEC.md 4, 5.1): lookaside, then the .sig attachment, then bundles.
func TestAttachmentSources(t *testing.T) {
	reg := newTestRegistry(t, true)
	img := reg.putImage(t, testRepo, "1")
	reg.putSigManifest(t, testRepo, img.Digest, cosignLayer(img.Digest, 1))
	reg.putReferrer(t, testRepo, img, mediaTypeBundle, ocispec.MediaTypeEmptyJSON, bundleLayer("1"))
	lookaside := newSigServer(t)
	lookaside.put(testRepo, img.Digest, 1, []byte{0x00, 's', 'i', 'm', 'p', 'l', 'e', '-', 's', 'i', 'g', 'n', 'i', 'n', 'g', '\n', 0xC2})
	rd := lookaside.registriesD("  " + testRegistryName + ":\n    use-sigstore-attachments: true\n")
	sigs, err := signaturesOf(t, newTestFinder(t, reg, rd, nil), testRepo, img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	var formats []string
	for _, s := range sigs {
		formats = append(formats, string(s.Format))
	}
	if got := strings.Join(formats, ","); got != "simple-signing,cosign,sigstore-bundle" {
		t.Fatalf("formats = %s", got)
	}
}
