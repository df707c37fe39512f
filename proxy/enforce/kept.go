package enforce

import (
	"context"
	"errors"
	"fmt"

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
// is returned when no candidate was accepted, and an error when the kept manifests could
// not be looked up (the store failed, or the request ended while it waited for a scan):
// the caller answers 503, never a denial it could not make.
func (g *Gate) admitFromKept(ctx context.Context, b *admission.BlobRequest, key Key) (bool, error) {
	if g.kept == nil {
		return false, nil
	}
	listing, err := g.kept.Referencing(ctx, b.Registry, b.Repository, b.Digest)
	if err != nil {
		return false, fmt.Errorf("looking up the kept manifests of %s/%s that list %s: %w", b.Registry, b.Repository, b.Digest, err)
	}
	if len(listing) == 0 {
		return false, nil
	}
	ctx = context.WithValue(ctx, keptKey{}, true)
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
			undecided = errors.Join(undecided, err)
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

// keptKey marks a context whose decisions are made on behalf of admitFromKept or
// admitKeptParents, so that they do not look for kept parents again.
type keptKey struct{}

func fromKept(ctx context.Context) bool { return ctx.Value(keptKey{}) != nil }

func isDigestRef(ref string) bool {
	_, err := digest.Parse(ref)
	return err == nil
}

// admitKeptParents decides on the kept indexes that list manifest m (at most
// maxKeptCandidates) for m's client, and reports whether one was accepted: deciding on an
// index remembers it as that client's parent of its children.
func (g *Gate) admitKeptParents(ctx context.Context, m *admission.ManifestRequest) bool {
	ctx = context.WithValue(ctx, keptKey{}, true)
	parents, err := g.kept.Referencing(ctx, m.Registry, m.Repository, m.Digest)
	if err != nil {
		return false
	}
	for _, p := range parents[:min(len(parents), maxKeptCandidates)] {
		km, err := g.kept.KeptManifest(ctx, m.Registry, m.Repository, p)
		if err != nil {
			continue
		}
		dec, err := g.AdmitManifest(ctx, &admission.ManifestRequest{Target: m.Target, Reference: p.String(),
			Digest: km.Digest, MediaType: content.MediaType(km.ContentType), Bytes: km.Bytes, Head: true})
		if err == nil && dec.Allow {
			return true
		}
	}
	return false
}
