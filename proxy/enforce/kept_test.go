package enforce

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/content"
)

// keptManifests is a content store's view of kept manifests, in memory.
type keptManifests struct {
	manifests map[digest.Digest]manifest
	refs      map[digest.Digest][]digest.Digest // blob or child → manifests that list it
	err       error                             // when set, Referencing fails with it
}

func newKept(ms ...manifest) *keptManifests {
	k := &keptManifests{manifests: map[digest.Digest]manifest{}, refs: map[digest.Digest][]digest.Digest{}}
	for _, m := range ms {
		k.manifests[m.digest] = m
		for _, b := range m.blobs {
			k.refs[b] = append(k.refs[b], m.digest)
		}
	}
	return k
}

func (k *keptManifests) child(index manifest, children ...manifest) {
	k.manifests[index.digest] = index
	for _, c := range children {
		k.refs[c.digest] = append(k.refs[c.digest], index.digest)
	}
}

func (k *keptManifests) Referencing(ctx context.Context, registry, repo string, d digest.Digest) ([]digest.Digest, error) {
	if k.err != nil {
		return nil, k.err
	}
	return k.refs[d], nil
}

func (k *keptManifests) KeptManifest(ctx context.Context, registry, repo string, d digest.Digest) (*content.Manifest, error) {
	m, ok := k.manifests[d]
	if !ok {
		return nil, errors.New("not kept")
	}
	return &content.Manifest{ContentType: m.mediaType, Digest: m.digest, Bytes: m.bytes, Kept: true}, nil
}

// A replica (or a restarted process) that served none of an image's manifests decides on
// its blobs from the kept manifests, under its own policy.
func TestGateDecidesBlobsFromKeptManifests(t *testing.T) {
	w := newWorld(t)
	signed := image(t, "signed")
	w.sign(w.trusted, testRepo, signed.digest, tagIdentity)
	unsigned := image(t, "unsigned")
	child := image(t, "child of a signed index")
	idx := index(t, child)
	w.sign(w.trusted, testRepo, idx.digest, tagIdentity)
	kept := newKept(signed, unsigned, child)
	kept.child(idx, child)

	tests := []struct {
		name  string
		blob  digest.Digest
		allow bool
	}{
		{"a blob of a kept signed image", signed.blobs[1], true},
		{"a blob of a kept unsigned image", unsigned.blobs[0], false},
		{"a blob of a child whose kept index is signed", child.blobs[1], true},
		{"a blob no kept manifest lists", digest.FromString("stranger"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := w.gate(w.policy(signedByTrusted), func(o *Options) { o.Kept = kept })
			if got := blobAllowed(t, g, testRegistry, testRepo, tc.blob); got != tc.allow {
				t.Fatalf("allow = %v, want %v", got, tc.allow)
			}
		})
	}

	t.Run("a stricter policy refuses what it kept", func(t *testing.T) {
		g := w.gate(w.policy(`{"default":[{"type":"reject"}]}`), func(o *Options) { o.Kept = kept })
		if blobAllowed(t, g, testRegistry, testRepo, signed.blobs[1]) {
			t.Fatal("a kept image the policy now rejects must not have its blobs served")
		}
	})
	t.Run("without kept manifests nothing changes", func(t *testing.T) {
		g := w.gate(w.policy(signedByTrusted), nil)
		if blobAllowed(t, g, testRegistry, testRepo, signed.blobs[1]) {
			t.Fatal("a blob whose manifest was never served is refused")
		}
	})
}

// A child asked for by digest on a replica that never served its index to the client is
// decided through the kept index.
func TestGateDecidesChildrenThroughKeptIndexes(t *testing.T) {
	w := newWorld(t)
	child := image(t, "child")
	idx := index(t, child)
	w.sign(w.trusted, testRepo, idx.digest, tagIdentity)
	kept := newKept(child)
	kept.child(idx, child)

	with := w.gate(w.policy(signedByTrusted), func(o *Options) { o.Kept = kept })
	mustAdmit(t, with, testRepo, child.digest.String(), child, true)
	without := w.gate(w.policy(signedByTrusted), nil)
	mustAdmit(t, without, testRepo, child.digest.String(), child, false)
	// An unsigned index kept beside it vouches for nothing.
	other := image(t, "other child")
	unsignedIdx := index(t, other)
	kept.child(unsignedIdx, other)
	mustAdmit(t, with, testRepo, other.digest.String(), other, false)
}

// A lookup of kept manifests that fails (the store is down, or the request ended while it
// waited for a scan) is a 503, never a denial: the manifest listing the blob may be kept.
func TestGateKeptLookupFailureIsUnavailable(t *testing.T) {
	w := newWorld(t)
	signed := image(t, "signed")
	kept := newKept(signed)
	kept.err = errors.New("content store unavailable")
	g := w.gate(w.policy(signedByTrusted), func(o *Options) { o.Kept = kept })
	d, err := g.AdmitBlob(context.Background(), &admission.BlobRequest{
		Target: admission.Target{Registry: testRegistry, Repository: testRepo, ClientAddr: testClient}, Digest: signed.blobs[1]})
	if pe := proxy.GateAnswer(err); err == nil || d.Allow || pe.HTTPStatus() != http.StatusServiceUnavailable || !errors.Is(err, kept.err) {
		t.Fatalf("AdmitBlob = %+v, %v; want a 503 wrapping the store's error", d, err)
	}
}
