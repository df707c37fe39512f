package enforce

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/content"
)

// pushBlob stores data as a blob of repo and returns its descriptor with mediaType.
func (w *world) pushBlob(repo, mediaType string, data []byte) map[string]any {
	w.t.Helper()
	d := digest.FromBytes(data)
	resp, err := http.Post(w.registry.URL+"/v2/"+repo+"/blobs/uploads/?digest="+d.String(), "application/octet-stream", bytes.NewReader(data))
	if err != nil {
		w.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		w.t.Fatalf("pushing blob %s: status %d", d, resp.StatusCode)
	}
	return map[string]any{"mediaType": mediaType, "digest": d.String(), "size": len(data)}
}

// attachmentManifest is an OCI image manifest with config, layers and optionally a subject.
func attachmentManifest(t *testing.T, config map[string]any, subject *manifest, layers ...map[string]any) manifest {
	t.Helper()
	m := map[string]any{"schemaVersion": 2, "mediaType": content.MediaTypeOCIManifest, "config": config, "layers": layers}
	if subject != nil {
		m["subject"] = map[string]any{"mediaType": subject.mediaType, "digest": subject.digest.String(), "size": len(subject.bytes)}
	}
	out := newManifest(t, content.MediaTypeOCIManifest, m)
	for _, d := range append([]map[string]any{config}, layers...) {
		out.blobs = append(out.blobs, digest.Digest(d["digest"].(string)))
	}
	return out
}

func simpleSigningPayload(d digest.Digest) []byte {
	return []byte(`{"critical":{"identity":{"docker-reference":"registry.test/org/app"},"image":{"docker-manifest-digest":"` +
		d.String() + `"},"type":"cosign container image signature"},"optional":null}`)
}

// cosignConfig is the image config cosign writes for a .sig: no platform.
func cosignConfig(layers ...map[string]any) []byte {
	var ids []string
	for _, l := range layers {
		ids = append(ids, `"`+l["digest"].(string)+`"`)
	}
	return []byte(`{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":[` +
		strings.Join(ids, ",") + `]},"config":{}}`)
}

func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	zw.Close()
	return b.Bytes()
}

var emptyConfig = map[string]any{"mediaType": content.MediaTypeEmpty, "digest": emptyDescriptorDigest.String(), "size": 2}

// TestGateAttachments (issue 8.2): a manifest is served without a policy check only as a
// real signature attachment of a manifest the policy accepted in the same repository;
// everything else is an image, evaluated by the policy, and an attachment's blobs are
// admitted only when their bytes are the signatures they claim to be.
func TestGateAttachments(t *testing.T) {
	w := newWorld(t)
	subject := image(t, "signed")
	w.sign(w.trusted, testRepo, subject.digest, tagIdentity)
	unsigned := image(t, "unsigned")
	w.push(testRepo, unsigned.digest.String(), unsigned)
	sigTag := func(m manifest) string { return "sha256-" + m.digest.Encoded() + ".sig" }
	attTag := func(m manifest) string { return "sha256-" + m.digest.Encoded() + ".att" }

	sigLayer := w.pushBlob(testRepo, content.MediaTypeSimpleSigning, simpleSigningPayload(subject.digest))
	realSig := attachmentManifest(t, w.pushBlob(testRepo, content.MediaTypeOCIConfig, cosignConfig(sigLayer)), nil, sigLayer)
	emptySig := attachmentManifest(t, emptyConfig, nil, sigLayer)
	dsse := w.pushBlob(testRepo, content.MediaTypeDSSE, []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"x"}]}`))
	realAtt := attachmentManifest(t, w.pushBlob(testRepo, content.MediaTypeOCIConfig, cosignConfig(dsse)), nil, dsse)
	bundleType := "application/vnd.dev.sigstore.bundle.v0.3+json"
	bundle := w.pushBlob(testRepo, bundleType, []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{}},"messageSignature":{}}`))
	referrer := attachmentManifest(t, emptyConfig, &subject, bundle)
	referrerOfUnsigned := attachmentManifest(t, emptyConfig, &unsigned, bundle)
	referrersIndex := newManifest(t, content.MediaTypeOCIIndex, map[string]any{"schemaVersion": 2, "mediaType": content.MediaTypeOCIIndex,
		"manifests": []any{map[string]any{"mediaType": content.MediaTypeOCIManifest, "digest": referrer.digest.String(), "size": len(referrer.bytes), "artifactType": bundleType}}})

	// Runnable content labelled as signatures.
	rootfs := w.pushBlob(testRepo, content.MediaTypeSimpleSigning, gzipped(t, []byte("a root file system")))
	linuxConfig := w.pushBlob(testRepo, content.MediaTypeOCIConfig, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Entrypoint":["/evil"]}}`))
	disguised := attachmentManifest(t, w.pushBlob(testRepo, content.MediaTypeOCIConfig, cosignConfig(rootfs)), nil, rootfs)
	runnableConfig := attachmentManifest(t, linuxConfig, nil, sigLayer)
	unknownConfig := attachmentManifest(t, map[string]any{"mediaType": "application/vnd.example.config+json", "digest": digest.FromString("x").String(), "size": 1}, nil, sigLayer)
	fakeEmpty := attachmentManifest(t, map[string]any{"mediaType": content.MediaTypeEmpty, "digest": linuxConfig["digest"], "size": linuxConfig["size"]}, nil, sigLayer)
	tooBig := attachmentManifest(t, emptyConfig, nil, map[string]any{"mediaType": content.MediaTypeSimpleSigning, "digest": sigLayer["digest"], "size": maxAttachmentBlobSize + 1})
	wrongKind := attachmentManifest(t, emptyConfig, nil, dsse) // a DSSE envelope under .sig
	var many []map[string]any
	for range maxAttachmentLayers + 1 {
		many = append(many, sigLayer)
	}
	tooMany := attachmentManifest(t, emptyConfig, nil, many...)
	// A .sig listing the unsigned image's manifest as a "signature".
	asBlob := w.pushBlob(testRepo, content.MediaTypeSimpleSigning, unsigned.bytes)
	manifestAsLayer := attachmentManifest(t, emptyConfig, nil, asBlob)

	tests := []struct {
		name     string
		ref      string
		m        manifest
		allow    bool
		reason   string // in the decision's reason
		servable []digest.Digest
		refused  []digest.Digest
	}{
		{name: "cosign .sig", ref: sigTag(subject), m: realSig, allow: true, reason: "cosign signature (.sig) of " + subject.digest.String(), servable: realSig.blobs},
		{name: "cosign .sig with the empty config", ref: sigTag(subject), m: emptySig, allow: true, servable: emptySig.blobs[1:]},
		{name: "cosign .att", ref: attTag(subject), m: realAtt, allow: true, servable: realAtt.blobs},
		{name: "referrer by digest", ref: referrer.digest.String(), m: referrer, allow: true, reason: "referrer of"},
		{name: "referrers tag index", ref: "sha256-" + subject.digest.Encoded(), m: referrersIndex, allow: true},
		{name: ".sig of an unaccepted image", ref: sigTag(unsigned), m: realSig, reason: "its subject " + unsigned.digest.String() + " is not a manifest pullgate accepted"},
		{name: "referrer of an unaccepted image", ref: referrerOfUnsigned.digest.String(), m: referrerOfUnsigned, reason: "not a manifest pullgate accepted"},
		{name: "referrers tag index of an unaccepted image", ref: "sha256-" + unsigned.digest.Encoded(), m: referrersIndex, reason: "not a manifest pullgate accepted"},
		{name: "referrer fetched by tag", ref: "bundle", m: referrer, reason: "no signature exists"},
		{name: ".sig of a plain tag", ref: "v1", m: realSig, reason: "no signature exists"},
		{name: "a runnable layer labelled a signature", ref: sigTag(subject), m: disguised, reason: "not a JSON object", refused: disguised.blobs},
		{name: "a runnable config", ref: sigTag(subject), m: runnableConfig, reason: "names a platform (linux/amd64)", refused: runnableConfig.blobs[:1]},
		{name: "a config of another type", ref: sigTag(subject), m: unknownConfig, reason: `config has media type "application/vnd.example.config+json"`},
		{name: "an empty config that is not {}", ref: sigTag(subject), m: fakeEmpty, reason: "config claims the empty type", refused: fakeEmpty.blobs[:1]},
		{name: "a layer beyond the signature size", ref: sigTag(subject), m: tooBig, reason: "is 4194305 bytes"},
		{name: "a layer of another attachment kind", ref: sigTag(subject), m: wrongKind, reason: "which a cosign signature (.sig) does not hold", refused: wrongKind.blobs[1:]},
		{name: "too many layers", ref: sigTag(subject), m: tooMany, reason: "129 layers"},
		{name: "a manifest listed as a signature", ref: sigTag(subject), m: manifestAsLayer, reason: "not a simple signing payload", refused: []digest.Digest{unsigned.digest}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := w.policy(signedByTrusted)
			g := w.gate(p, nil)
			mustAdmit(t, g, testRepo, "1", subject, true)
			mustAdmit(t, g, testRepo, unsigned.digest.String(), unsigned, false)
			before := p.calls.Load()
			d := mustAdmit(t, g, testRepo, tt.ref, tt.m, tt.allow)
			evaluated := p.calls.Load() != before
			if tt.allow == evaluated {
				t.Fatalf("evaluated by the policy = %v, allowed = %v", evaluated, tt.allow)
			}
			if !strings.Contains(d.Detail.(Detail).Reason, tt.reason) {
				t.Fatalf("reason %q, want %q in it", d.Detail.(Detail).Reason, tt.reason)
			}
			for _, b := range tt.servable {
				if !blobAllowed(t, g, testRegistry, testRepo, b) {
					t.Fatalf("blob %s of the attachment refused", b)
				}
			}
			for _, b := range tt.refused {
				if blobAllowed(t, g, testRegistry, testRepo, b) {
					t.Fatalf("blob %s served", b)
				}
			}
		})
	}

	// cosign verify names the image by digest and reads only its .sig: the subject is
	// then evaluated by its digest identity.
	t.Run("subject not fetched, accepted by its digest", func(t *testing.T) {
		g := w.gate(w.policy(signedByTrusted), nil)
		mustAdmit(t, g, testRepo, sigTag(subject), realSig, true)
	})
	t.Run("an attachment's blobs are checked once", func(t *testing.T) {
		g := w.gate(w.policy(signedByTrusted), nil)
		mustAdmit(t, g, testRepo, "1", subject, true)
		var fetched int
		w.override(http.MethodGet, "/v2/"+testRepo+"/blobs/"+sigLayer["digest"].(string), func(rw http.ResponseWriter, r *http.Request) {
			fetched++
			rw.Write(simpleSigningPayload(subject.digest))
		})
		defer w.override(http.MethodGet, "/v2/"+testRepo+"/blobs/"+sigLayer["digest"].(string), nil)
		for range 3 {
			mustAdmit(t, g, testRepo, sigTag(subject), emptySig, true)
		}
		if fetched != 1 {
			t.Fatalf("the signature layer was read %d times, want 1", fetched)
		}
	})
	t.Run("a blob that cannot be read is undecided, not cached", func(t *testing.T) {
		g := w.gate(w.policy(signedByTrusted), nil)
		mustAdmit(t, g, testRepo, "1", subject, true)
		w.override(http.MethodGet, "/v2/"+testRepo+"/blobs/"+sigLayer["digest"].(string), func(rw http.ResponseWriter, r *http.Request) {
			rw.WriteHeader(http.StatusInternalServerError)
		})
		_, err := admit(t, g, testRepo, sigTag(subject), emptySig)
		w.override(http.MethodGet, "/v2/"+testRepo+"/blobs/"+sigLayer["digest"].(string), nil)
		pe := proxy.GateAnswer(err)
		if err == nil || pe.Code != errcode.ErrorCodeUnavailable {
			t.Fatalf("err = %v, want 503 UNAVAILABLE", err)
		}
		mustAdmit(t, g, testRepo, sigTag(subject), emptySig, true)
	})
	t.Run("without a blob reader nothing is an attachment", func(t *testing.T) {
		g := w.gate(w.policy(signedByTrusted), func(o *Options) { o.Blobs = nil })
		mustAdmit(t, g, testRepo, "1", subject, true)
		mustAdmit(t, g, testRepo, sigTag(subject), realSig, false)
	})
}

// TestAttachmentLayerChecks: each layer check takes the documents of its kind and refuses
// anything else, whatever it is.
func TestAttachmentLayerChecks(t *testing.T) {
	good := map[string][]byte{
		content.MediaTypeSimpleSigning:                  simpleSigningPayload(digest.FromString("x")),
		content.MediaTypeDSSE:                           []byte(`{"payloadType":"t","payload":"","signatures":[]}`),
		content.MediaTypeInToto:                         []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[]}`),
		"application/vnd.dev.sigstore.bundle.v0.3+json": []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{}}`),
	}
	bad := [][]byte{nil, []byte(""), []byte("null"), []byte("[]"), []byte(`"x"`), []byte("{"), []byte(`{}`), []byte(`{"a":1} {}`),
		gzipped(t, []byte("x")), []byte("\x28\xb5\x2f\xfd"), []byte("./\x00\x00\x00")}
	for mt, check := range attachmentLayers[attachmentReferrer] {
		for _, b := range bad {
			if check(b) == nil {
				t.Errorf("%s: %q accepted", mt, b)
			}
		}
	}
	docOf := func(mt string) []byte {
		if strings.Contains(mt, "sigstore.bundle") {
			return good["application/vnd.dev.sigstore.bundle.v0.3+json"]
		}
		return good[mt]
	}
	for _, kind := range []attachmentKind{attachmentSig, attachmentAtt, attachmentReferrer} {
		for mt, check := range attachmentLayers[kind] {
			if err := check(docOf(mt)); err != nil {
				t.Errorf("%s %s: %v", kind, mt, err)
			}
			for other, doc := range good {
				if docOf(mt) != nil && !bytes.Equal(doc, docOf(mt)) && check(doc) == nil {
					t.Errorf("%s accepts a %s document", mt, other)
				}
			}
		}
	}
	if checkPlatformlessConfig(cosignConfig()) != nil || checkPlatformlessConfig([]byte(`{"os":"linux"}`)) == nil {
		t.Error("config check")
	}
}

// FuzzAttachmentChecks: no input panics a check, and nothing that is not a JSON object
// (a tar, a gzip or zstd stream) passes one.
func FuzzAttachmentChecks(f *testing.F) {
	f.Add(simpleSigningPayload(digest.FromString("x")))
	f.Add([]byte(`{"payloadType":"t","payload":"","signatures":[]}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{}}`))
	f.Add([]byte("\x1f\x8b\x08\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checks := []layerCheck{checkSimpleSigning, checkDSSE, checkInToto, checkSigstoreBundle, checkPlatformlessConfig}
		for _, c := range checks {
			if c(data) == nil {
				var v map[string]json.RawMessage
				if json.Unmarshal(data, &v) != nil || v == nil {
					t.Fatalf("%q passed a check but is not a JSON object", data)
				}
			}
		}
	})
}

// FuzzClaimedAttachment: whatever the reference and manifest, a claimed attachment names
// a valid sha256 subject.
func FuzzClaimedAttachment(f *testing.F) {
	f.Add("sha256-"+strings.Repeat("a", 64)+".sig", []byte(`{"schemaVersion":2,"mediaType":"`+content.MediaTypeOCIManifest+`","config":{"digest":"`+emptyDescriptorDigest.String()+`"},"layers":[]}`))
	f.Add(digest.FromString("x").String(), []byte(`{"schemaVersion":2,"config":{"digest":"`+emptyDescriptorDigest.String()+`"},"subject":{"digest":"`+digest.FromString("y").String()+`"}}`))
	f.Fuzz(func(t *testing.T, ref string, data []byte) {
		p, err := parseManifest(content.MediaTypeOCIManifest, data)
		if err != nil {
			return
		}
		if a, ok := claimedAttachment(ref, p); ok {
			if a.subject.Validate() != nil {
				t.Fatalf("subject %q", a.subject)
			}
			if _, err := checkAttachmentShape(a, p); err == nil && a.kind != attachmentReferrers && len(p.layers) == 0 {
				t.Fatal("an attachment without layers")
			}
		}
	})
}

// blockingBlobs is a BlobReader that holds every read until released and records how
// many were in progress at once.
type blockingBlobs struct {
	inner     BlobReader
	release   chan struct{}
	mu        sync.Mutex
	now, most int
	started   chan struct{}
}

func (b *blockingBlobs) SmallBlob(ctx context.Context, registry, repository string, d digest.Digest, size int64) ([]byte, error) {
	b.mu.Lock()
	b.now++
	b.most = max(b.most, b.now)
	b.mu.Unlock()
	b.started <- struct{}{}
	<-b.release
	b.mu.Lock()
	b.now--
	b.mu.Unlock()
	return b.inner.SmallBlob(ctx, registry, repository, d, size)
}

// TestAttachmentReadsAreBounded: however many clients ask for different attachments at
// once, at most maxConcurrentAttachmentReads checks read blobs (each holds up to 4 MiB).
func TestAttachmentReadsAreBounded(t *testing.T) {
	w := newWorld(t)
	subject := image(t, "signed")
	w.sign(w.trusted, testRepo, subject.digest, tagIdentity)
	sigLayer := w.pushBlob(testRepo, content.MediaTypeSimpleSigning, simpleSigningPayload(subject.digest))
	const n = 3 * maxConcurrentAttachmentReads
	var sigs []manifest
	for i := range n {
		// Distinct attachments: the same layer, configs that differ in trailing space.
		config := append(cosignConfig(sigLayer), bytes.Repeat([]byte(" "), i)...)
		sigs = append(sigs, attachmentManifest(t, w.pushBlob(testRepo, content.MediaTypeOCIConfig, config), nil, sigLayer))
	}
	bb := &blockingBlobs{release: make(chan struct{}), started: make(chan struct{}, n*2)}
	g := w.gate(w.policy(signedByTrusted), func(o *Options) {
		bb.inner = o.Blobs
		o.Blobs = bb
	})
	mustAdmit(t, g, testRepo, "1", subject, true)
	tag := "sha256-" + subject.digest.Encoded() + ".sig"
	var wg sync.WaitGroup
	for _, m := range sigs {
		wg.Go(func() { mustAdmit(t, g, testRepo, tag, m, true) })
	}
	for range maxConcurrentAttachmentReads {
		<-bb.started // the bound is reached...
	}
	// ...and stays so while the others have every chance to start a read (this wait only
	// gives an unbounded gate room to show itself; nothing is asserted about time).
	for range 100 {
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	close(bb.release) // then every read may go on
	wg.Wait()
	if bb.most > maxConcurrentAttachmentReads {
		t.Fatalf("%d attachment checks read blobs at once, want at most %d", bb.most, maxConcurrentAttachmentReads)
	}
}
