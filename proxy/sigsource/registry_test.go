package sigsource

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
	"github.com/pullgate/pullgate/policy"
)

const (
	testRepo            = "org/app"
	mediaTypeSimpleSign = "application/vnd.dev.cosign.simplesigning.v1+json"
	mediaTypeDSSE       = "application/vnd.dsse.envelope.v1+json"
	mediaTypeBundle     = "application/vnd.dev.sigstore.bundle.v0.3+json"
)

// signedByPolicy is a policy trusting key for the test registry and rejecting everything
// else.
func signedByPolicy(t *testing.T, key *pgptest.Key) *policy.Policy {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trusted.gpg")
	testsupport.WriteFile(t, path, key.Public(t))
	p, err := policy.Parse([]byte(`{"default":[{"type":"reject"}],"transports":{"docker":{"`+testRegistryName+
		`":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"`+path+`"}]}}}`), "policy.json")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// evaluate applies p to registry.test/org/app:<tag> at digest d, with f as the source.
func evaluate(t *testing.T, p *policy.Policy, f *Finder, tag string, d digest.Digest) (policy.Verdict, error) {
	t.Helper()
	identity := mustRef(t, testRegistryName+"/"+testRepo+":"+tag)
	src := policy.SignatureSourceFunc(func(ctx context.Context, img policy.Image) ([]policy.Signature, error) {
		return f.Signatures(ctx, testRegistryName, testRepo, identity, d)
	})
	return p.Evaluate(context.Background(), policy.Image{Identity: identity, Digest: d}, src)
}

// trustedAndSignatures returns a key and two simple signatures of d for
// registry.test/org/app:1: good by that key, wrongKey by another.
func trustedAndSignatures(t *testing.T, d digest.Digest) (trusted *pgptest.Key, good, wrongKey []byte) {
	t.Helper()
	trusted = pgptest.NewKey(t, "trusted", pgptest.KeyOptions{})
	other := pgptest.NewKey(t, "other", pgptest.KeyOptions{})
	ref := testRegistryName + "/" + testRepo + ":1"
	return trusted, pgptest.SimpleSignature(t, trusted, d.String(), ref), pgptest.SimpleSignature(t, other, d.String(), ref)
}

func signatureListEntry(version int, typ string, content []byte) string {
	return `{"schemaVersion":` + string(rune('0'+version)) + `,"type":"` + typ + `","name":"x@y","content":"` +
		base64.StdEncoding.EncodeToString(content) + `"}`
}

// TestSignatureAPI: the registry signature API extension (SPEC.md 4, 10.4 #34). When the
// upstream advertises it, it is the only simple-signing source: a configured lookaside is
// not read at all.
func TestSignatureAPI(t *testing.T) {
	d := digest.FromString("an image manifest")
	trusted, good, wrongKey := trustedAndSignatures(t, d)
	apiPath := "/extensions/v2/" + testRepo + "/signatures/" + d.String()
	status := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
	}

	tests := []struct {
		name     string
		list     string           // served by the API; "" means not stored (404)
		answer   http.HandlerFunc // overrides the API answer
		wantData [][]byte         // signatures found
		wantErr  bool
		accepted bool // the policy's verdict over what was found
		reason   string
	}{
		{name: "version 1 and type other skipped, atomic read",
			list: `{"signatures":[` + signatureListEntry(1, "atomic", good) + `,` + signatureListEntry(2, "other", good) +
				`,` + signatureListEntry(2, "atomic", wrongKey) + `,` + signatureListEntry(2, "atomic", good) + `]}`,
			wantData: [][]byte{wrongKey, good}, accepted: true},
		{name: "only skipped entries", list: `{"signatures":[` + signatureListEntry(1, "atomic", good) + `]}`,
			reason: "no signature exists"},
		{name: "empty list", list: `{"signatures":[]}`, reason: "no signature exists"},
		{name: "unknown keys are ignored", list: `{"signatures":[` + signatureListEntry(2, "atomic", good) + `],"extra":1}`,
			wantData: [][]byte{good}, accepted: true},
		{name: "404 is an error, not an empty list", answer: http.NotFound, wantErr: true},
		{name: "500", answer: status(http.StatusInternalServerError), wantErr: true},
		{name: "403", answer: status(http.StatusForbidden), wantErr: true},
		{name: "not JSON", answer: func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "<html>") }, wantErr: true},
		{name: "content not base64", list: `{"signatures":[{"schemaVersion":2,"type":"atomic","content":"%%%"}]}`, wantErr: true},
		{name: "oversized list", answer: func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, `{"signatures":[]}`+strings.Repeat(" ", 4<<20) /* the upstream client reads at most 4 MiB */)
		}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := newTestRegistry(t, false)
			lists := map[string]string{}
			if tt.list != "" {
				lists[testRepo+"@"+d.String()] = tt.list
			}
			reg.enableSignatureAPI(lists)
			if tt.answer != nil {
				reg.override(http.MethodGet, apiPath, tt.answer)
			}
			// A lookaside holding a valid signature is configured, and must not be read.
			lookaside := newSigServer(t)
			lookaside.put(testRepo, d, 1, good)
			f := newTestFinder(t, reg, lookaside.registriesD(""), nil)

			sigs, err := signaturesOf(t, f, testRepo, d)
			if got := lookaside.requests(); len(got) != 0 {
				t.Fatalf("the lookaside was read although the registry has the signature API: %v", got)
			}
			if tt.wantErr {
				if !errors.Is(err, ErrRegistryFetch) {
					t.Fatalf("err = %v, want ErrRegistryFetch", err)
				}
				if _, err := evaluate(t, signedByPolicy(t, trusted), f, "1", d); !errors.Is(err, policy.ErrIndeterminate) {
					t.Fatalf("evaluation error = %v, want indeterminate", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(sigs) != len(tt.wantData) {
				t.Fatalf("found %d signatures, want %d", len(sigs), len(tt.wantData))
			}
			for i, s := range sigs {
				if s.Format != policy.FormatSimpleSigning || string(s.Data) != string(tt.wantData[i]) || !strings.HasPrefix(s.Origin, "signature API entry ") {
					t.Fatalf("signature %d = %+v", i, s)
				}
			}
			v, err := evaluate(t, signedByPolicy(t, trusted), f, "1", d)
			if err != nil {
				t.Fatal(err)
			}
			if v.Accepted != tt.accepted || !strings.Contains(v.Reason, tt.reason) {
				t.Fatalf("verdict %+v, want accepted=%v with %q", v, tt.accepted, tt.reason)
			}
			if n := reg.count(http.MethodGet, "/extensions/v2/"); n != 1 {
				t.Fatalf("signature API read %d times, want 1 (the second lookup is cached)", n)
			}
		})
	}
}

// TestSignatureAPIProbe: the extension is detected on the unauthenticated /v2/ (200 or
// 401); any other answer fails the lookup, and without the header the lookaside is used.
func TestSignatureAPIProbe(t *testing.T) {
	d := digest.FromString("m")
	t.Run("probe fails", func(t *testing.T) {
		reg := newTestRegistry(t, false)
		reg.override(http.MethodGet, "/v2/", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
		if _, err := signaturesOf(t, newTestFinder(t, reg, nil, nil), testRepo, d); !errors.Is(err, ErrRegistryFetch) {
			t.Fatalf("err = %v, want ErrRegistryFetch", err)
		}
	})
	t.Run("a failed probe is retried", func(t *testing.T) {
		reg := newTestRegistry(t, false)
		reg.override(http.MethodGet, "/v2/", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
		f := newTestFinder(t, reg, nil, nil)
		if _, err := signaturesOf(t, f, testRepo, d); !errors.Is(err, ErrRegistryFetch) {
			t.Fatalf("err = %v, want ErrRegistryFetch", err)
		}
		reg.override(http.MethodGet, "/v2/", nil)
		reg.enableSignatureAPI(map[string]string{testRepo + "@" + d.String(): `{"signatures":[]}`})
		if _, err := signaturesOf(t, f, testRepo, d); err != nil {
			t.Fatal(err)
		}
		if n := reg.count(http.MethodGet, "/extensions/"); n != 1 {
			t.Fatalf("signature API read %d times after the probe recovered, want 1", n)
		}
	})
	t.Run("401 with the header", func(t *testing.T) {
		reg := newTestRegistry(t, false)
		reg.enableSignatureAPI(map[string]string{testRepo + "@" + d.String(): `{"signatures":[]}`})
		reg.override(http.MethodGet, "/v2/", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Registry-Supports-Signatures", "1")
			w.WriteHeader(http.StatusUnauthorized)
		})
		lookaside := newSigServer(t)
		if _, err := signaturesOf(t, newTestFinder(t, reg, lookaside.registriesD(""), nil), testRepo, d); err != nil {
			t.Fatal(err)
		}
		if reg.count(http.MethodGet, "/extensions/") != 1 || len(lookaside.requests()) != 0 {
			t.Fatalf("signature API read %d times, lookaside %v", reg.count(http.MethodGet, "/extensions/"), lookaside.requests())
		}
	})
	t.Run("no header: lookaside", func(t *testing.T) {
		reg := newTestRegistry(t, false)
		lookaside := newSigServer(t)
		if _, err := signaturesOf(t, newTestFinder(t, reg, lookaside.registriesD(""), nil), testRepo, d); err != nil {
			t.Fatal(err)
		}
		if reg.count(http.MethodGet, "/extensions/") != 0 || len(lookaside.requests()) != 1 {
			t.Fatalf("signature API read %d times, lookaside %v", reg.count(http.MethodGet, "/extensions/"), lookaside.requests())
		}
	})
}

// cosignLayer is a .sig layer: a cosign payload with a (here unverified) signature
// annotation.
func cosignLayer(d digest.Digest, n int) sigLayer {
	payload := `{"critical":{"identity":{"docker-reference":"` + testRegistryName + "/" + testRepo + `"},"image":{"docker-manifest-digest":"` +
		d.String() + `"},"type":"cosign container image signature"},"optional":{"n":` + string(rune('0'+n)) + `}}`
	return sigLayer{mediaType: mediaTypeSimpleSign, data: []byte(payload),
		annotations: map[string]string{"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString([]byte{byte(n)})}}
}

// TestSigstoreAttachments: the cosign sha256-<hex>.sig attachment (SPEC.md 5.1, 5.2, 10.5
// #36, #37).
func TestSigstoreAttachments(t *testing.T) {
	sigPath := func(d digest.Digest) string { return "/v2/" + testRepo + "/manifests/" + sigTag(d) }
	ociError := func(status int, code, message string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, `{"errors":[{"code":"`+code+`","message":"`+message+`"}]}`)
		}
	}
	dsse := sigLayer{mediaType: mediaTypeDSSE, data: []byte(`{"payloadType":"application/vnd.in-toto+json"}`),
		annotations: map[string]string{"predicateType": "https://slsa.dev/provenance/v1"}}

	tests := []struct {
		name string
		// setup stores what the test needs for image d and returns the layers expected.
		setup   func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer
		wantErr string
	}{
		{name: "absent: MANIFEST_UNKNOWN", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer { return nil }},
		{name: "absent: repository unknown", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer {
			reg.override(http.MethodGet, sigPath(d), ociError(http.StatusNotFound, "NAME_UNKNOWN", "repository name not known"))
			return nil
		}},
		{name: "absent: bare 404", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer {
			reg.override(http.MethodGet, sigPath(d), http.NotFound)
			return nil
		}},
		{name: "absent: UNKNOWN Not Found (registry.redhat.io)", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer {
			reg.override(http.MethodGet, sigPath(d), ociError(http.StatusBadRequest, "UNKNOWN", "Not Found"))
			return nil
		}},
		{name: "absent: UNKNOWN ... not found (Harbor)", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer {
			reg.override(http.MethodGet, sigPath(d), ociError(http.StatusBadRequest, "UNKNOWN", "artifact org/app:"+sigTag(d)+" not found"))
			return nil
		}},
		{name: "500", wantErr: "500", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer {
			reg.override(http.MethodGet, sigPath(d), ociError(http.StatusInternalServerError, "UNKNOWN", "boom"))
			return nil
		}},
		{name: "other UNKNOWN error", wantErr: "400", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer {
			reg.override(http.MethodGet, sigPath(d), ociError(http.StatusBadRequest, "UNKNOWN", "bad request"))
			return nil
		}},
		{name: "unauthorized", wantErr: "credentials", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer {
			reg.override(http.MethodGet, sigPath(d), ociError(http.StatusUnauthorized, "UNAUTHORIZED", "no"))
			return nil
		}},
		{name: "docker schema2 content type", wantErr: "not an OCI image manifest", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer {
			l := cosignLayer(d, 1)
			m := ocispec.Manifest{MediaType: "application/vnd.docker.distribution.manifest.v2+json",
				Config: reg.emptyConfig(t, testRepo, "application/vnd.docker.container.image.v1+json"),
				Layers: []ocispec.Descriptor{reg.putBlob(t, testRepo, l.mediaType, l.data)}}
			m.SchemaVersion = 2
			reg.putManifest(t, testRepo, sigTag(d), "application/vnd.docker.distribution.manifest.v2+json", testsupport.JSON(t, m))
			return nil
		}},
		{name: "one layer", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer {
			layers := []sigLayer{cosignLayer(d, 1)}
			reg.putSigManifest(t, testRepo, d, layers...)
			return layers
		}},
		{name: "dsse, bad and valid layers are all returned", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer {
			bad := cosignLayer(d, 2)
			bad.annotations = nil
			layers := []sigLayer{dsse, bad, cosignLayer(d, 3)}
			reg.putSigManifest(t, testRepo, d, layers...)
			return layers
		}},
		{name: "Content-Type with parameters", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer {
			layers := []sigLayer{cosignLayer(d, 1)}
			desc := reg.putSigManifest(t, testRepo, d, layers...)
			reg.putManifest(t, testRepo, sigTag(d), ocispec.MediaTypeImageManifest+"; charset=utf-8", mustBytes(t, reg, desc))
			return layers
		}},
		{name: "layer bytes do not match the digest", wantErr: "digest", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer {
			l := cosignLayer(d, 1)
			reg.putSigManifest(t, testRepo, d, l)
			forged := []byte(strings.Replace(string(l.data), d.Encoded(), strings.Repeat("0", 64), 1))
			reg.override(http.MethodGet, "/v2/"+testRepo+"/blobs/"+digest.FromBytes(l.data).String(), func(w http.ResponseWriter, _ *http.Request) {
				w.Write(forged)
			})
			return nil
		}},
		{name: "layer shorter than its descriptor", wantErr: "size", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer {
			l := cosignLayer(d, 1)
			reg.putSigManifest(t, testRepo, d, l)
			reg.override(http.MethodGet, "/v2/"+testRepo+"/blobs/"+digest.FromBytes(l.data).String(), func(w http.ResponseWriter, _ *http.Request) {
				w.Write(l.data[:10])
			})
			return nil
		}},
		{name: "layer blob missing", wantErr: "layer 1", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer {
			m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: reg.emptyConfig(t, testRepo, ocispec.MediaTypeImageConfig),
				Layers: []ocispec.Descriptor{{MediaType: mediaTypeSimpleSign, Digest: digest.FromString("never pushed"), Size: 12}}}
			m.SchemaVersion = 2
			reg.putManifest(t, testRepo, sigTag(d), ocispec.MediaTypeImageManifest, testsupport.JSON(t, m))
			return nil
		}},
		{name: "layer declared larger than 4 MiB", wantErr: "size", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer {
			m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: reg.emptyConfig(t, testRepo, ocispec.MediaTypeImageConfig),
				Layers: []ocispec.Descriptor{{MediaType: mediaTypeSimpleSign, Digest: digest.FromString("big"), Size: maxSignatureSize + 1}}}
			m.SchemaVersion = 2
			reg.putManifest(t, testRepo, sigTag(d), ocispec.MediaTypeImageManifest, testsupport.JSON(t, m))
			return nil
		}},
		{name: "too many layers", wantErr: "layers", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer {
			m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: reg.emptyConfig(t, testRepo, ocispec.MediaTypeImageConfig)}
			m.SchemaVersion = 2
			for i := 0; i <= maxSigstoreLayers; i++ {
				m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: mediaTypeSimpleSign, Digest: digest.FromString(strings.Repeat("x", i)), Size: 1})
			}
			reg.putManifest(t, testRepo, sigTag(d), ocispec.MediaTypeImageManifest, testsupport.JSON(t, m))
			return nil
		}},
		{name: "not JSON", wantErr: "invalid character", setup: func(t *testing.T, reg *testRegistry, d digest.Digest) []sigLayer {
			reg.override(http.MethodGet, sigPath(d), func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
				io.WriteString(w, "<html>")
			})
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := newTestRegistry(t, false)
			img := reg.putImage(t, testRepo, "1")
			want := tt.setup(t, reg, img.Digest)
			sigs, err := signaturesOf(t, newTestFinder(t, reg, attachmentsOn, nil), testRepo, img.Digest)
			if !wantLookup(t, sigs, err, tt.wantErr, len(want)) {
				return
			}
			for i, s := range sigs {
				w := want[i]
				if s.Format != policy.FormatCosign || s.MIMEType != w.mediaType || string(s.Data) != string(w.data) ||
					len(s.Annotations) != len(w.annotations) || s.Origin != sigTag(img.Digest)+" layer "+string(rune('1'+i)) {
					t.Fatalf("signature %d = %+v, want %+v", i, s, w)
				}
				for k, v := range w.annotations {
					if s.Annotations[k] != v {
						t.Fatalf("signature %d annotation %s = %q, want %q", i, k, s.Annotations[k], v)
					}
				}
			}
		})
	}
}

// mustBytes reads back the manifest desc from reg.
func mustBytes(t *testing.T, reg *testRegistry, desc ocispec.Descriptor) []byte {
	t.Helper()
	m, err := reg.client.Manifest(context.Background(), testRepo, desc.Digest.String(), []string{ocispec.MediaTypeImageManifest})
	if err != nil {
		t.Fatal(err)
	}
	return m.Bytes
}
