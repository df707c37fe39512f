package enforce

import (
	"context"
	"errors"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/content"
)

// KeptManifests reads the manifests a content store kept, so that a blob is decided on
// even when this process served none of the manifests that list it: another replica on
// the same store served them, or this process restarted while a client (containerd, which
// keeps manifests it already has) went on with the blobs. The manifests are decided
// afresh under the current policy, as if the client had asked for them by digest.
type KeptManifests interface {
	// Referencing lists the kept manifests of registry/repo that refer to d, as a blob or
	// as a child manifest.
	Referencing(ctx context.Context, registry, repo string, d digest.Digest) ([]digest.Digest, error)
	// KeptManifest reads kept manifest d of registry/repo, re-hashed: its bytes hash to d.
	KeptManifest(ctx context.Context, registry, repo string, d digest.Digest) (*content.Manifest, error)
}

// admitFromKept decides on blob b from the kept manifests that list it: a manifest
// accepted under the current policy admits its blobs as a served one does. A manifest
// the policy does not accept on its own (a child whose index carries the signatures) is
// tried through the kept indexes that list it, as a client would have fetched them.
// Candidates and parents are bounded (maxKeptCandidates each). An indeterminate decision
// is returned when no candidate was accepted: the caller answers 503, never a denial it
// could not make.
func (g *Gate) admitFromKept(ctx context.Context, b *admission.BlobRequest, key Key) (bool, error) {
	if g.kept == nil {
		return false, nil
	}
	listing, err := g.kept.Referencing(ctx, b.Registry, b.Repository, b.Digest)
	if err != nil || len(listing) == 0 {
		return false, nil
	}
	var undecided error
	try := func(d digest.Digest) bool {
		m, err := g.kept.KeptManifest(ctx, b.Registry, b.Repository, d)
		if err != nil {
			return false
		}
		dec, err := g.AdmitManifest(ctx, &admission.ManifestRequest{Target: b.Target, Reference: d.String(),
			Digest: m.Digest, MediaType: content.MediaType(m.ContentType), Bytes: m.Bytes, Head: true})
		if err != nil {
			undecided = errors.Join(undecided, err)
			return false
		}
		return dec.Allow && g.admitted.HasBlob(key)
	}
	for _, d := range listing[:min(len(listing), maxKeptCandidates)] {
		if try(d) {
			return true, nil
		}
		parents, err := g.kept.Referencing(ctx, b.Registry, b.Repository, d)
		if err != nil {
			continue
		}
		for _, p := range parents[:min(len(parents), maxKeptCandidates)] {
			// Deciding on the index remembers it as this client's parent of d.
			if try(p) || try(d) {
				return true, nil
			}
		}
	}
	return false, undecided
}
