package enforce

import (
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy/content"
)

func TestParseManifest(t *testing.T) {
	d1, d2, d3 := digest.FromString("1"), digest.FromString("2"), digest.FromString("3")
	desc := func(mt string, d digest.Digest) string {
		return `{"mediaType":"` + mt + `","digest":"` + d.String() + `","size":1}`
	}
	image := func(mt, layerType string) string {
		return `{"schemaVersion":2,"mediaType":"` + mt + `","config":` + desc("application/vnd.oci.image.config.v1+json", d1) +
			`,"layers":[` + desc(layerType, d2) + `]}`
	}
	tests := []struct {
		name, contentType, body string
		kind                    kind
		blobs, children         []digest.Digest
		artifacts               bool
		wantErr                 bool
	}{
		{name: "oci image", contentType: content.MediaTypeOCIManifest, body: image(content.MediaTypeOCIManifest, "application/vnd.oci.image.layer.v1.tar+gzip"), kind: kindImage, blobs: []digest.Digest{d1, d2}},
		{name: "docker image", contentType: content.MediaTypeDockerManifest, body: image(content.MediaTypeDockerManifest, "application/vnd.docker.image.rootfs.diff.tar.gzip"), kind: kindImage, blobs: []digest.Digest{d1, d2}},
		{name: "wasm is runnable", contentType: content.MediaTypeOCIManifest, body: image(content.MediaTypeOCIManifest, "application/vnd.wasm.content.layer.v1+wasm"), kind: kindImage, blobs: []digest.Digest{d1, d2}},
		{name: "cosign signature", contentType: content.MediaTypeOCIManifest, body: image(content.MediaTypeOCIManifest, "application/vnd.dev.cosign.simplesigning.v1+json"), kind: kindImage, blobs: []digest.Digest{d1, d2}},
		{name: "sigstore bundle with spaced parameter", contentType: content.MediaTypeOCIManifest, body: image(content.MediaTypeOCIManifest, "application/vnd.dev.sigstore.bundle+json; version=0.3"), kind: kindImage, blobs: []digest.Digest{d1, d2}},
		{name: "content type with parameters", contentType: content.MediaTypeOCIManifest + "; charset=utf-8", body: image(content.MediaTypeOCIManifest, "application/vnd.oci.image.layer.v1.tar"), kind: kindImage, blobs: []digest.Digest{d1, d2}},
		{name: "generic content type uses the body", contentType: "application/octet-stream", body: image(content.MediaTypeOCIManifest, "application/vnd.oci.image.layer.v1.tar"), kind: kindImage, blobs: []digest.Digest{d1, d2}},
		{name: "index", contentType: content.MediaTypeOCIIndex, body: `{"schemaVersion":2,"manifests":[` + desc(content.MediaTypeOCIManifest, d1) + `,` + desc(content.MediaTypeOCIManifest, d2) + `]}`, kind: kindIndex, children: []digest.Digest{d1, d2}},
		{name: "docker list", contentType: content.MediaTypeDockerList, body: `{"schemaVersion":2,"manifests":[` + desc(content.MediaTypeDockerManifest, d3) + `]}`, kind: kindIndex, children: []digest.Digest{d3}},
		{name: "referrers tag index", contentType: content.MediaTypeOCIIndex, body: `{"schemaVersion":2,"manifests":[{"mediaType":"` + content.MediaTypeOCIManifest + `","digest":"` + d1.String() + `","size":1,"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"}]}`, kind: kindIndex, children: []digest.Digest{d1}, artifacts: true},
		{name: "index mixing artifacts and images", contentType: content.MediaTypeOCIIndex, body: `{"schemaVersion":2,"manifests":[{"mediaType":"` + content.MediaTypeOCIManifest + `","digest":"` + d1.String() + `","size":1,"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"},` + desc(content.MediaTypeOCIManifest, d2) + `]}`, kind: kindIndex, children: []digest.Digest{d1, d2}},
		{name: "schema1 is not served", contentType: content.MediaTypeSchema1Signed, body: `{"schemaVersion":1,"fsLayers":[{"blobSum":"` + d3.String() + `"}]}`, wantErr: true},
		{name: "no media type anywhere: oci index", contentType: "", body: `{"schemaVersion":2,"manifests":[]}`, kind: kindIndex},
		{name: "image without config", contentType: content.MediaTypeOCIManifest, body: `{"schemaVersion":2,"layers":[]}`, wantErr: true},
		{name: "bad layer digest", contentType: content.MediaTypeOCIManifest, body: `{"schemaVersion":2,"config":` + desc("x", d1) + `,"layers":[{"mediaType":"x","digest":"sha256:abc"}]}`, wantErr: true},
		{name: "unknown media type", contentType: "application/vnd.example+json", body: `{}`, wantErr: true},
		{name: "not json", contentType: content.MediaTypeOCIManifest, body: `<html>`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseManifest(tt.contentType, []byte(tt.body))
			if tt.wantErr {
				if !errors.Is(err, errUnknownManifest) {
					t.Fatalf("err = %v, want errUnknownManifest", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.kind != tt.kind || join(p.blobs) != join(tt.blobs) || join(p.children) != join(tt.children) || p.childrenAreArtifacts != tt.artifacts {
				t.Fatalf("got %+v", p)
			}
		})
	}
}

func join(ds []digest.Digest) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, ",")
}

func FuzzParseManifest(f *testing.F) {
	f.Add(content.MediaTypeOCIManifest, []byte(`{"schemaVersion":2,"config":{"digest":"`+digest.FromString("c").String()+`"},"layers":[]}`))
	f.Add(content.MediaTypeOCIIndex, []byte(`{"manifests":[{"digest":"`+digest.FromString("c").String()+`","artifactType":"application/vnd.in-toto+json"}]}`))
	f.Add("", []byte(`{"schemaVersion":1,"fsLayers":[]}`))
	f.Fuzz(func(t *testing.T, contentType string, data []byte) {
		p, err := parseManifest(contentType, data)
		if err != nil {
			return
		}
		for _, d := range append(p.blobs, p.children...) {
			if d.Validate() != nil {
				t.Fatalf("accepted invalid digest %q", d)
			}
		}
		if p.kind == kindImage && p.config == nil {
			t.Fatalf("image without config: %+v", p)
		}
	})
}

// TestParseCache: a manifest is classified once for its bytes and media type; the same
// bytes under another media type, and bytes larger than the cache keeps, are classified
// afresh, and a refusal is remembered like an acceptance.
func TestParseCache(t *testing.T) {
	c, err := newParseCache(10)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":2},"layers":[]}`)
	first, err := c.parse(content.MediaTypeOCIManifest, body)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := c.parse(content.MediaTypeOCIManifest, body); &again.blobs[0] != &first.blobs[0] {
		t.Fatal("the same bytes were parsed again")
	}
	if _, err := c.parse(content.MediaTypeOCIIndex, body); err == nil {
		t.Fatal("the bytes of an image manifest were accepted as an index: the media type must be part of the key")
	}
	if c.entries.Len() != 2 {
		t.Fatalf("%d entries, want 2 (an acceptance and a refusal)", c.entries.Len())
	}
	big := append(body[:len(body)-1:len(body)-1], []byte(`,"annotations":{"a":"`+strings.Repeat("x", maxParseCachedBytes)+`"}}`)...)
	if _, err := c.parse(content.MediaTypeOCIManifest, big); err != nil {
		t.Fatal(err)
	}
	if c.entries.Len() != 2 {
		t.Fatalf("a manifest of %d bytes was cached", len(big))
	}
}
