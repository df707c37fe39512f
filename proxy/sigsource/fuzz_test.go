package sigsource

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullgate/pullgate/policy"
)

// FuzzParseSignatureList: the signature API's list is untrusted input. Whatever it holds,
// the parser returns only simple-signing signatures from version 2 "atomic" entries, or an
// error wrapping ErrRegistryFetch.
func FuzzParseSignatureList(f *testing.F) {
	content := base64.StdEncoding.EncodeToString([]byte{0xC2, 0x01})
	f.Add([]byte(`{"signatures":[{"schemaVersion":2,"type":"atomic","name":"sha256:a@b","content":"` + content + `"}]}`))
	f.Add([]byte(`{"signatures":[{"schemaVersion":1,"type":"atomic","content":""},{"schemaVersion":2,"type":"other","content":""}]}`))
	f.Add([]byte(`{"signatures":[]}`))
	f.Add([]byte(`{"signatures":null}`))
	f.Add([]byte(`{"signatures":[{"schemaVersion":2,"type":"atomic","content":"%%%"}]}`))
	f.Add([]byte(`<html>`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		sigs, err := parseSignatureList(body)
		if err != nil {
			if !errors.Is(err, ErrRegistryFetch) || sigs != nil {
				t.Fatalf("error %v (with %d signatures) does not wrap ErrRegistryFetch", err, len(sigs))
			}
			return
		}
		for _, s := range sigs {
			if s.Format != policy.FormatSimpleSigning || !strings.HasPrefix(s.Origin, "signature API entry ") {
				t.Fatalf("unexpected signature %+v", s)
			}
		}
	})
}

// FuzzParseSigManifest: a .sig manifest is untrusted input. Whatever it holds, the layers
// returned are few enough, and each names a valid digest and a signature-sized blob.
func FuzzParseSigManifest(f *testing.F) {
	layer := `{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"` + digest.FromString("p").String() +
		`","size":248,"annotations":{"dev.cosignproject.cosign/signature":"MEUC"}}`
	manifest := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		digest.FromString("c").String() + `","size":233},"layers":[` + layer + `]}`
	f.Add(ocispec.MediaTypeImageManifest, []byte(manifest))
	f.Add(ocispec.MediaTypeImageManifest+"; charset=utf-8", []byte(manifest))
	f.Add("application/vnd.docker.distribution.manifest.v2+json", []byte(manifest))
	f.Add(ocispec.MediaTypeImageManifest, []byte(`{"layers":[{"digest":"sha256:abc","size":1}]}`))
	f.Add(ocispec.MediaTypeImageManifest, []byte(`{"layers":[{"digest":"`+digest.FromString("x").String()+`","size":-1}]}`))
	f.Add(ocispec.MediaTypeImageManifest, []byte(`{"layers":null}`))
	f.Add("", []byte(`{}`))
	f.Fuzz(func(t *testing.T, contentType string, data []byte) {
		layers, err := parseSigManifest(contentType, data)
		if err != nil {
			return
		}
		if len(layers) > maxSigstoreLayers {
			t.Fatalf("%d layers accepted", len(layers))
		}
		for _, l := range layers {
			if l.Digest.Validate() != nil || l.Size < 0 || l.Size > maxSignatureSize {
				t.Fatalf("accepted layer %+v", l)
			}
		}
	})
}
