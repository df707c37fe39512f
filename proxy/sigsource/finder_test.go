package sigsource

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/gatetest"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy/admission"
)

// TestUseSigstoreAttachments: attachments are read only where registries.d enables them
// for the upstream name (SPEC.md 10.5 #45; DESIGN.md difference 4). When they are not,
// nothing at all is read from the repository.
func TestUseSigstoreAttachments(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string // registries.d; "" means none
		identity string // the lookup identity
		want     int    // signatures found (.sig layer and bundle)
	}{
		{"no registries.d", "", "registry.test/org/app:1", 0},
		{"explicitly false", "docker:\n  registry.test:\n    use-sigstore-attachments: false\n", "registry.test/org/app:1", 0},
		{"the upstream name applies", "docker:\n  registry.test:\n    use-sigstore-attachments: true\n", "registry.test/org/app:1", 2},
		{"the repository scope applies", "docker:\n  registry.test/org/app:\n    use-sigstore-attachments: true\n", "registry.test/org/app:1", 2},
		{"the default applies", "default-docker:\n  use-sigstore-attachments: true\n", "registry.test/org/app:1", 2},
		{"a more specific false wins", "default-docker:\n  use-sigstore-attachments: true\ndocker:\n  registry.test/org:\n    use-sigstore-attachments: false\n", "registry.test/org/app:1", 0},
		{"a tag scope applies to its tag", "docker:\n  registry.test/org/app:1:\n    use-sigstore-attachments: true\n", "registry.test/org/app:1", 2},
		{"a tag scope does not apply to another tag", "docker:\n  registry.test/org/app:1:\n    use-sigstore-attachments: true\n", "registry.test/org/app:2", 0},
		// podman pulling through a mirror looks registries.d up by the mirror's name;
		// pullgate uses the upstream's, so an entry for pullgate's own address is unused.
		{"pullgate's own address does not apply", "docker:\n  pullgate.example:5000:\n    use-sigstore-attachments: true\n  pullgate.example:5000/registry.test:\n    use-sigstore-attachments: true\n", "registry.test/org/app:1", 0},
		{"another registry's entry does not apply", "docker:\n  docker.io:\n    use-sigstore-attachments: true\n", "registry.test/org/app:1", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := newTestRegistry(t, true)
			img := reg.putImage(t, testRepo, "1")
			reg.putSigManifest(t, testRepo, img.Digest, cosignLayer(img.Digest, 1))
			reg.putReferrer(t, testRepo, img, mediaTypeBundle, ocispec.MediaTypeEmptyJSON, bundleLayer("1"))
			var files map[string]string
			if tt.yaml != "" {
				files = map[string]string{"r.yaml": tt.yaml}
			}
			f := newTestFinder(t, reg, files, nil)
			before := reg.repoRequests(testRepo)
			sigs, err := f.Signatures(context.Background(), testRegistryName, testRepo, mustRef(t, tt.identity), img.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if len(sigs) != tt.want {
				t.Fatalf("found %d signatures, want %d", len(sigs), tt.want)
			}
			if n := reg.repoRequests(testRepo) - before; tt.want == 0 && n != 0 {
				t.Fatalf("attachments are off, yet %d requests were made to the repository", n)
			}
		})
	}
}

// TestAttachmentsOffDenies: SPEC.md 10.5 #45 and #36 through the policy engine: a valid
// cosign signature that is not read (attachments off), or a .sig that is absent, leaves
// sigstoreSigned with "no signature exists".
func TestAttachmentsOffDenies(t *testing.T) {
	pemKey, key := testsupport.ECDSAKeyPEM(t)
	p := sigstorePolicy(t, pemKey)
	reg := newTestRegistry(t, false)
	img := reg.putImage(t, testRepo, "1")
	other := reg.putImage(t, testRepo, "unsigned")
	reg.putSigManifest(t, testRepo, img.Digest, signedCosignLayer(t, key, img.Digest))

	for _, tt := range []struct {
		name     string
		files    map[string]string
		d        digest.Digest
		accepted bool
	}{
		{"attachments on, signed", attachmentsOn, img.Digest, true},
		{"attachments off, signed", nil, img.Digest, false},
		{"attachments on, .sig absent", attachmentsOn, other.Digest, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, err := evaluate(t, p, newTestFinder(t, reg, tt.files, nil), "1", tt.d)
			if err != nil {
				t.Fatal(err)
			}
			if v.Accepted != tt.accepted {
				t.Fatalf("verdict %+v, want accepted=%v", v, tt.accepted)
			}
			if !tt.accepted && !strings.Contains(v.Reason, "no signature exists") {
				t.Fatalf("reason %q, want \"no signature exists\"", v.Reason)
			}
		})
	}
}

// TestFinderCache: found signatures are reused (no request at all the second time),
// failures are not, concurrent lookups of one image share one fetch, and the resolved
// registries.d settings are part of the key.
func TestFinderCache(t *testing.T) {
	t.Run("hit", func(t *testing.T) {
		reg := newTestRegistry(t, true)
		img := reg.putImage(t, testRepo, "1")
		reg.putSigManifest(t, testRepo, img.Digest, cosignLayer(img.Digest, 1))
		f := newTestFinder(t, reg, attachmentsOn, nil)
		first, err := signaturesOf(t, f, testRepo, img.Digest)
		if err != nil || len(first) != 1 {
			t.Fatalf("first lookup: %d signatures, %v", len(first), err)
		}
		before := reg.total()
		second, err := signaturesOf(t, f, testRepo, img.Digest)
		if err != nil || len(second) != 1 {
			t.Fatalf("second lookup: %d signatures, %v", len(second), err)
		}
		if after := reg.total(); after != before {
			t.Fatalf("the second lookup made %d requests", after-before)
		}
	})
	t.Run("large lookups are not kept", func(t *testing.T) {
		reg := newTestRegistry(t, false)
		img := reg.putImage(t, testRepo, "1")
		big := cosignLayer(img.Digest, 1)
		big.annotations["padding"] = strings.Repeat("x", maxCachedSignatureBytes)
		reg.putSigManifest(t, testRepo, img.Digest, big)
		f := newTestFinder(t, reg, attachmentsOn, nil)
		for range 2 {
			if sigs, err := signaturesOf(t, f, testRepo, img.Digest); err != nil || len(sigs) != 1 {
				t.Fatalf("%d signatures, %v", len(sigs), err)
			}
		}
		if n := reg.count(http.MethodGet, "/manifests/"+sigTag(img.Digest)); n != 2 {
			t.Fatalf(".sig read %d times, want 2 (a lookup over %d bytes is not cached)", n, maxCachedSignatureBytes)
		}
	})
	t.Run("expired", func(t *testing.T) {
		reg := newTestRegistry(t, false)
		img := reg.putImage(t, testRepo, "1")
		f := newTestFinder(t, reg, attachmentsOn, func(o *FinderOptions) { o.CacheTTL = time.Nanosecond })
		for range 2 {
			if _, err := signaturesOf(t, f, testRepo, img.Digest); err != nil {
				t.Fatal(err)
			}
		}
		if n := reg.count(http.MethodGet, "/manifests/"+sigTag(img.Digest)); n != 2 {
			t.Fatalf(".sig read %d times, want 2", n)
		}
	})
	t.Run("errors are not cached", func(t *testing.T) {
		reg := newTestRegistry(t, false)
		img := reg.putImage(t, testRepo, "1")
		reg.putSigManifest(t, testRepo, img.Digest, cosignLayer(img.Digest, 1))
		path := "/v2/" + testRepo + "/manifests/" + sigTag(img.Digest)
		reg.override(http.MethodGet, path, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
		f := newTestFinder(t, reg, attachmentsOn, nil)
		if _, err := signaturesOf(t, f, testRepo, img.Digest); !errors.Is(err, ErrRegistryFetch) {
			t.Fatalf("err = %v", err)
		}
		reg.override(http.MethodGet, path, nil)
		sigs, err := signaturesOf(t, f, testRepo, img.Digest)
		if err != nil || len(sigs) != 1 {
			t.Fatalf("after recovery: %d signatures, %v", len(sigs), err)
		}
		if n := reg.countExact(http.MethodGet, path); n != 2 {
			t.Fatalf(".sig read %d times, want 2", n)
		}
	})
	t.Run("concurrent lookups share one fetch", func(t *testing.T) {
		reg := newTestRegistry(t, false)
		img := reg.putImage(t, testRepo, "1")
		layer := cosignLayer(img.Digest, 1)
		sig := reg.putSigManifest(t, testRepo, img.Digest, layer)
		sigBytes := mustBytes(t, reg, sig)
		path := "/v2/" + testRepo + "/manifests/" + sigTag(img.Digest)
		release := make(chan struct{})
		reg.override(http.MethodGet, path, func(w http.ResponseWriter, _ *http.Request) {
			<-release
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Write(sigBytes)
		})
		// No cache: only the shared flight can keep the fetches to one.
		f := newTestFinder(t, reg, attachmentsOn, func(o *FinderOptions) { o.CacheTTL = time.Nanosecond })
		const callers = 8
		var wg sync.WaitGroup
		results := make([][]policy.Signature, callers)
		errs := make([]error, callers)
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = signaturesOf(t, f, testRepo, img.Digest)
			}()
		}
		testsupport.WaitForCallers(t, "cache.(*Group[...]).Do(", callers)
		close(release)
		wg.Wait()
		for i := range callers {
			if errs[i] != nil || len(results[i]) != 1 || string(results[i][0].Data) != string(layer.data) {
				t.Fatalf("caller %d: %d signatures, %v", i, len(results[i]), errs[i])
			}
		}
		if n := reg.countExact(http.MethodGet, path); n != 1 {
			t.Fatalf(".sig read %d times by %d concurrent lookups, want 1", n, callers)
		}
	})
	t.Run("settings are part of the key", func(t *testing.T) {
		reg := newTestRegistry(t, false)
		img := reg.putImage(t, testRepo, "1")
		reg.putSigManifest(t, testRepo, img.Digest, cosignLayer(img.Digest, 1))
		f := newTestFinder(t, reg, map[string]string{"r.yaml": "docker:\n  registry.test/org/app:1:\n    use-sigstore-attachments: true\n"}, nil)
		for _, c := range []struct {
			tag  string
			want int
		}{{"1", 1}, {"2", 0}, {"1", 1}} {
			sigs, err := f.Signatures(context.Background(), testRegistryName, testRepo, mustRef(t, testRegistryName+"/"+testRepo+":"+c.tag), img.Digest)
			if err != nil || len(sigs) != c.want {
				t.Fatalf("tag %s: %d signatures, %v; want %d", c.tag, len(sigs), err, c.want)
			}
		}
	})
}

// TestFinderUnknownRegistry: a registry that is not a configured upstream is an error,
// never "no signatures".
func TestFinderUnknownRegistry(t *testing.T) {
	f := newTestFinder(t, newTestRegistry(t, false), nil, nil)
	d := digest.FromString("x")
	if _, err := f.Signatures(context.Background(), "elsewhere.example", testRepo, mustRef(t, "elsewhere.example/org/app:1"), d); err == nil {
		t.Fatal("no error for an unknown registry")
	}
	if _, err := NewFinder(FinderOptions{}); err == nil {
		t.Fatal("NewFinder accepted no registries")
	}
}

// TestSimpleSignatures: pullgate's own signature API serves the simple-signing signatures
// found, and only those (not .sig layers nor bundles).
func TestSimpleSignatures(t *testing.T) {
	key := pgptest.NewKey(t, "k", pgptest.KeyOptions{})
	reg := newTestRegistry(t, true)
	img := reg.putImage(t, testRepo, "1")
	reg.putSigManifest(t, testRepo, img.Digest, cosignLayer(img.Digest, 1))
	reg.putReferrer(t, testRepo, img, mediaTypeBundle, ocispec.MediaTypeEmptyJSON, bundleLayer("1"))
	raw := pgptest.SimpleSignature(t, key, img.Digest.String(), testRegistryName+"/"+testRepo+":1")
	wrapped := append([]byte("\x00simple-signing\n"), raw...)
	lookaside := newSigServer(t)
	lookaside.put(testRepo, img.Digest, 1, raw)
	lookaside.put(testRepo, img.Digest, 2, wrapped)
	f := newTestFinder(t, reg, lookaside.registriesD("  "+testRegistryName+":\n    use-sigstore-attachments: true\n"), nil)

	all, err := signaturesOf(t, f, testRepo, img.Digest)
	if err != nil || len(all) != 4 {
		t.Fatalf("Signatures: %d, %v; want 4", len(all), err)
	}
	got, err := f.SimpleSignatures(context.Background(), admission.Target{Registry: testRegistryName, Repository: testRepo}, img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got[0]) != string(raw) || string(got[1]) != string(raw) {
		t.Fatalf("SimpleSignatures returned %d signatures, want the raw OpenPGP message twice", len(got))
	}
}

// TestSimpleSignaturesFailure: a lookup failure is an error (the handler answers 503),
// never an empty list.
func TestSimpleSignaturesFailure(t *testing.T) {
	reg := newTestRegistry(t, false)
	lookaside := newSigServer(t)
	d := digest.FromString("m")
	lookaside.answer(sigPath(testRepo, d, 1), func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	f := newTestFinder(t, reg, lookaside.registriesD(""), nil)
	if _, err := f.SimpleSignatures(context.Background(), admission.Target{Registry: testRegistryName, Repository: testRepo}, d); !errors.Is(err, ErrLookasideFetch) {
		t.Fatalf("err = %v, want ErrLookasideFetch", err)
	}
}

// TestSimpleSignaturesUnavailable: pullgate's signature API answers 503 when the
// signatures cannot be read, not the upstream's own answer to whatever failed (a 403 on
// the .sig tag is not a DENIED about the signatures asked for).
func TestSimpleSignaturesUnavailable(t *testing.T) {
	reg := newTestRegistry(t, false)
	img := reg.putImage(t, testRepo, "1")
	reg.override(http.MethodGet, "/v2/"+testRepo+"/manifests/"+sigTag(img.Digest), func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"errors":[{"code":"DENIED","message":"no"}]}`))
	})
	f := newTestFinder(t, reg, attachmentsOn, nil)
	_, err := f.SimpleSignatures(context.Background(), admission.Target{Registry: testRegistryName, Repository: testRepo}, img.Digest)
	pe := proxy.SignatureAnswer(err)
	if err == nil || pe.Code != errcode.ErrorCodeUnavailable || !errors.Is(err, ErrRegistryFetch) {
		t.Fatalf("err = %v, want UNAVAILABLE wrapping ErrRegistryFetch", err)
	}

	h, err := proxy.New(proxy.Options{Upstreams: []proxy.Upstream{{Registry: testRegistryName, Source: reg.client}},
		Gate: gatetest.AllowAll{}, Signatures: f})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/extensions/v2/" + testRegistryName + "/" + testRepo + "/signatures/" + img.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("pullgate's signature API answered %d, want 503", resp.StatusCode)
	}
}
