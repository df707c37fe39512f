package policy

import (
	"context"
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"
)

// policySeeds are the SPEC 10.1 vectors and a few more shapes.
var policySeeds = []string{
	`{}`,
	`{"default": []}`,
	`{"default": null}`,
	`{"default":[{"type":"reject"}],"default":[{"type":"reject"}]}`,
	`{"defaults":[{"type":"reject"}]}`,
	`{"default":[{"type":"reject"}]} garbage`,
	`{"default":[{"type":"insecureAcceptAnything","x":1}]}`,
	`{"default":[{"type":"signedBy","keyPath":"/k"}]}`,
	`{"default":[{"type":"signedBy","keyType":"signedByGPGKeys","keyPath":"/k"}]}`,
	`{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","keyData":"AA=="}]}`,
	`{"default":[{"type":"signedBy","keyType":"GPGKeys"}]}`,
	`{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPaths":[]}]}`,
	`{"default":[{"type":"signedBy","keyType":"GPGKeys","keyData":"not base64!"}]}`,
	`{"default":[{"type":"sigstoreSigned","keyPath":"/k","fulcio":{"caPath":"/c","oidcIssuer":"i","subjectEmail":"e"}}]}`,
	`{"default":[{"type":"sigstoreSigned","fulcio":{"caPath":"/c","oidcIssuer":"i","subjectEmail":"e"}}]}`,
	`{"default":[{"type":"sigstoreSigned","pki":{"caRootsPath":"/c","subjectEmail":"e"},"rekorPublicKeyPath":"/r"}]}`,
	`{"default":[{"type":"sigstoreSigned","keyPaths":[]}]}`,
	`{"default":[{"type":"sigstoreSigned","keyPath":"/k","rekorPublicKeyPath":"/r","rekorPublicKeyData":"AA=="}]}`,
	`{"default":[{"type":"sigstoreSigned","fulcio":{"caPath":"/c","oidcIssuer":"i"},"rekorPublicKeyPath":"/r"}]}`,
	`{"default":[{"type":"sigstoreSigned","pki":{"caRootsPath":"/c"}}]}`,
	`{"default":[{"type":"sigstoreSigned","pki":{"caRootsPath":"/c","caIntermediatesPath":"/i","caIntermediatesData":"AA==","subjectEmail":"e"}}]}`,
	`{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":null}]}`,
	`{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"matchExact","x":1}}]}`,
	`{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactReference","dockerReference":"busybox"}}]}`,
	`{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactReference","dockerReference":"busybox:1"}}]}`,
	`{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactRepository","dockerRepository":"busybox:1"}}]}`,
	`{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"remapIdentity","prefix":"example.com/ns:tag","signedPrefix":"x.example"}}]}`,
	`{"default":[{"type":"reject"}],"transports":{"dokcer":{"docker.io":[{"type":"insecureAcceptAnything"}]}}}`,
	`{"default":[{"type":"signedBaseLayer","baseLayerIdentity":{"type":"matchRepository"}}]}`,
	`{"default":[{"type":"signedBy","keyType":"GPGKeys","KeyPath":"/k"}]}`,
	`{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"":[{"type":"reject"}],"*.io":[{"type":"reject"}],"docker.io/library/busybox:latest":[{"type":"insecureAcceptAnything"}]},"dir":{"/a":[{"type":"reject"}]},"containers-storage":{"[/s]x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef":[{"type":"reject"}]}}}`,
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range policySeeds {
		f.Add([]byte(s))
	}
	manifest := []byte(testManifest)
	img := Image{Digest: digest.FromBytes(manifest), Manifest: manifest}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := decode(data, "fuzz.json")
		if err != nil {
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("error %v does not wrap ErrInvalidPolicy", err)
			}
			return
		}
		// A decoded policy (keys not loaded) must evaluate without panicking and deny
		// whatever needs keys.
		for _, name := range []string{"docker.io/library/busybox:latest", "quay.io/a/b@" + img.Digest.String(), "localhost:5000/x:1"} {
			img.Identity = mustRef(t, name)
			p.Scope(img.Identity)
			p.NeedsSignatures(img.Identity)
			if _, err := p.Evaluate(context.Background(), img, sigSource()); err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
		}
	})
}

func FuzzParseSchema1Manifest(f *testing.F) {
	f.Add([]byte(testManifest))
	f.Add([]byte(`{"schemaVersion":1,"signatures":[]}`))
	f.Add([]byte(`{"schemaVersion":1,"signatures":[{"header":{"jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}},"protected":"eyJmb3JtYXRMZW5ndGgiOjEsImZvcm1hdFRhaWwiOiJmUSJ9"}]}`))
	f.Add([]byte(`{"schemaVersion":1,"signatures":[{"header":{"jwk":{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"x"}},"protected":"eyJmb3JtYXRMZW5ndGgiOi01fQ"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := manifestDigest(data)
		if err == nil && d.Validate() != nil {
			t.Fatalf("invalid digest %q", d)
		}
	})
}
