package enforce

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
	"github.com/pullgate/pullgate/proxy/content"
)

// matchExactTrusted accepts only signatures whose identity is exactly the one requested.
const matchExactTrusted = `{"default":[{"type":"reject"}],"transports":{"docker":{"registry.test":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"$TRUSTED","signedIdentity":{"type":"matchExact"}}]}}}`

// matchRepositoryTrusted accepts signatures for any tag or digest of the repository.
const matchRepositoryTrusted = `{"default":[{"type":"reject"}],"transports":{"docker":{"registry.test":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"$TRUSTED","signedIdentity":{"type":"matchRepository"}}]}}}`

// step is one request of a multi-arch scenario.
type step struct {
	what  string // "index", "a", "b" (the children)
	repo  string // "" is testRepo
	ref   string // a tag, or "digest" for the manifest's own digest
	allow bool
	// reason, when set, must appear in the DENIED message or the accept reason.
	reason string
	// identity, when set, is the identity the decision must name.
	identity string
}

// TestGateMultiArch: DESIGN.md's differences 1-3 and SPEC.md 10.6 (#46-#50). Each case
// starts a fresh gate; its steps are requests made in order.
// signAll signs the index and both children with the trusted key for identity.
func signAll(identity string) func(w *world, idx, a, b manifest) {
	return func(w *world, idx, a, b manifest) {
		for _, m := range []manifest{idx, a, b} {
			w.sign(w.trusted, testRepo, m.digest, identity)
		}
	}
}

func TestGateMultiArch(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		// sign stores the signatures of the scenario: w, and the digests of the index
		// and its children a and b.
		sign  func(w *world, idx, a, b manifest)
		steps []step
	}{
		{
			// Difference 1 / #46: cosign without --recursive signs the index only.
			name: "signed index, children fetched after it", policy: matchRepositoryTrusted,
			sign: func(w *world, idx, a, b manifest) { w.sign(w.trusted, testRepo, idx.digest, testRegistry+"/"+testRepo) },
			steps: []step{
				{what: "index", ref: "1", allow: true},
				{what: "a", ref: "digest", allow: true, reason: "listed by index", identity: tagIdentity},
				{what: "b", ref: "digest", allow: true, reason: "listed by index"},
			},
		},
		{
			name: "signed index not seen: its children are refused", policy: matchRepositoryTrusted,
			sign: func(w *world, idx, a, b manifest) { w.sign(w.trusted, testRepo, idx.digest, testRegistry+"/"+testRepo) },
			steps: []step{
				{what: "a", ref: "digest", allow: false, reason: "no signature exists"},
			},
		},
		{
			name: "signed index in another repository does not vouch here", policy: matchRepositoryTrusted,
			sign: func(w *world, idx, a, b manifest) { w.sign(w.trusted, testRepo, idx.digest, testRegistry+"/"+testRepo) },
			steps: []step{
				{what: "index", ref: "1", allow: true},
				{what: "a", repo: "org/other", ref: "digest", allow: false},
			},
		},
		{
			// Difference 2: served because one child is accepted; each child still gated.
			name: "unsigned index, one signed child", policy: signedByTrusted,
			sign: func(w *world, idx, a, b manifest) { w.sign(w.trusted, testRepo, a.digest, tagIdentity) },
			steps: []step{
				{what: "index", ref: "1", allow: true, reason: "is accepted"},
				{what: "a", ref: "digest", allow: true, identity: tagIdentity},
				{what: "b", ref: "digest", allow: false, reason: "no signature exists", identity: tagIdentity},
			},
		},
		{
			name: "nothing signed", policy: signedByTrusted,
			sign: func(w *world, idx, a, b manifest) {},
			steps: []step{
				{what: "index", ref: "1", allow: false, reason: "no child is accepted either"},
				{what: "a", ref: "digest", allow: false},
			},
		},
		{
			// Difference 3 / #49: the child is evaluated with the tag it was reached by.
			name: "matchExact: child by digest after the index by tag", policy: matchExactTrusted,
			sign: func(w *world, idx, a, b manifest) { w.sign(w.trusted, testRepo, a.digest, tagIdentity) },
			steps: []step{
				{what: "index", ref: "1", allow: true},
				{what: "a", ref: "digest", allow: true, identity: tagIdentity},
			},
		},
		{
			name: "matchExact: child by digest alone", policy: matchExactTrusted,
			sign: func(w *world, idx, a, b manifest) { w.sign(w.trusted, testRepo, a.digest, tagIdentity) },
			steps: []step{
				{what: "a", ref: "digest", allow: false, reason: "not accepted"},
			},
		},
		{
			// #47: cosign --recursive: everything signed with the repository identity.
			name: "recursive signing", policy: matchRepositoryTrusted,
			sign: signAll(testRegistry + "/" + testRepo),
			steps: []step{
				{what: "index", ref: "1", allow: true},
				{what: "a", ref: "digest", allow: true, reason: "signature"},
				{what: "b", ref: "digest", allow: true},
			},
		},
		{
			// #48: skopeo copy --all --sign-by: children (and index) signed with repo:tag.
			name: "skopeo --all, pulled by tag", policy: signedByTrusted,
			sign: signAll(tagIdentity),
			steps: []step{
				{what: "index", ref: "1", allow: true},
				{what: "a", ref: "digest", allow: true},
			},
		},
		{
			name: "skopeo --all, pulled by index digest and child digest", policy: signedByTrusted,
			sign: signAll(tagIdentity),
			steps: []step{
				{what: "b", ref: "digest", allow: true},
				{what: "index", ref: "digest", allow: true},
				{what: "a", ref: "digest", allow: true},
			},
		},
		{
			// #50: the child listed is not the one that was signed.
			name: "swapped child", policy: signedByTrusted,
			sign: func(w *world, idx, a, b manifest) {
				// What is stored for a is the signature of the manifest that was replaced.
				original := image(w.t, "the original child")
				w.lookaside.add(testRepo, a.digest, pgptest.SimpleSignature(w.t, w.trusted, original.digest.String(), tagIdentity))
			},
			steps: []step{
				{what: "index", ref: "1", allow: false, reason: "does not match"},
				{what: "a", ref: "digest", allow: false},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			a, b := image(t, "amd64"), image(t, "arm64")
			idx := index(t, a, b)
			tt.sign(w, idx, a, b)
			g := w.gate(w.policy(tt.policy), nil)
			for i, s := range tt.steps {
				m := map[string]manifest{"index": idx, "a": a, "b": b}[s.what]
				repo, ref := s.repo, s.ref
				if repo == "" {
					repo = testRepo
				}
				if ref == "digest" {
					ref = m.digest.String()
				}
				d, err := admit(t, g, repo, ref, m)
				if err != nil {
					t.Fatalf("step %d (%s %s): %v", i, s.what, ref, err)
				}
				if d.Allow != s.allow || !strings.Contains(d.Reason, s.reason) {
					t.Fatalf("step %d (%s %s): allow=%v reason %q; want allow=%v with %q", i, s.what, ref, d.Allow, d.Reason, s.allow, s.reason)
				}
				if detail := d.Detail.(Detail); s.identity != "" && detail.Identity != s.identity {
					t.Fatalf("step %d (%s %s): identity %q, want %q", i, s.what, ref, detail.Identity, s.identity)
				}
				if s.what != "index" {
					if got := blobAllowed(t, g, testRegistry, repo, m.blobs[1]); got != s.allow {
						t.Fatalf("step %d (%s %s): layer servable = %v, want %v", i, s.what, ref, got, s.allow)
					}
				}
			}
		})
	}
}

// TestGateParentDoesNotCrossScopes: a child is accepted on the strength of its index
// only under the identity the index was accepted for. The same manifest requested under
// another tag is judged by that tag's own policy scope, as podman would judge it.
func TestGateParentDoesNotCrossScopes(t *testing.T) {
	w := newWorld(t)
	a, b := image(t, "amd64"), image(t, "arm64")
	idx := index(t, a, b)
	// dev images need nothing; everything else of the repository must be signed.
	p := w.policy(`{"default":[{"type":"reject"}],"transports":{"docker":{
		"registry.test/org/app:dev":[{"type":"insecureAcceptAnything"}],
		"registry.test":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"$TRUSTED"}]}}}`)
	g := w.gate(p, nil)
	mustAdmit(t, g, testRepo, "dev", idx, true)
	mustAdmit(t, g, testRepo, a.digest.String(), a, true) // reached through :dev
	d := mustAdmit(t, g, testRepo, "prod", a, false)
	if !strings.Contains(d.Reason, "registry.test/org/app:prod") || !strings.Contains(d.Reason, "no signature exists") {
		t.Fatalf("reason %q", d.Reason)
	}
}

// TestGateIndexWithSHA512Child: a child named by a sha512 digest cannot be evaluated
// before its bytes are fetched (the engine needs sha256 without them). It is skipped
// when looking for an accepted child, not turned into an undecidable index: the index is
// served for its signed sha256 child, or refused, and the sha512 child is gated when
// fetched.
func TestGateIndexWithSHA512Child(t *testing.T) {
	w := newWorld(t)
	a := image(t, "amd64")
	other := image(t, "s390x")
	sha512Child := digest.SHA512.FromBytes(other.bytes)
	idx := newManifest(t, content.MediaTypeOCIIndex, map[string]any{"schemaVersion": 2, "mediaType": content.MediaTypeOCIIndex,
		"manifests": []any{
			map[string]any{"mediaType": content.MediaTypeOCIManifest, "digest": sha512Child.String(), "size": len(other.bytes)},
			map[string]any{"mediaType": content.MediaTypeOCIManifest, "digest": a.digest.String(), "size": len(a.bytes)},
		}})
	g := w.gate(w.policy(signedByTrusted), nil)
	d := mustAdmit(t, g, testRepo, "1", idx, false)
	if !strings.Contains(d.Reason, sha512Child.String()) {
		t.Fatalf("reason %q does not account for the sha512 child", d.Reason)
	}

	w.sign(w.trusted, testRepo, a.digest, tagIdentity)
	g = w.gate(w.policy(signedByTrusted), nil)
	mustAdmit(t, g, testRepo, "1", idx, true)
}
