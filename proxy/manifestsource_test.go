package proxy

import (
	"context"
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/cache"
	"github.com/pullgate/pullgate/proxy/content"
)

// holdingSource is a content.Source that holds one manifest (content.ManifestHolder) and
// answers nothing else.
type holdingSource struct {
	content.Source // nil: any other call panics
	held           *content.Manifest
}

func (s holdingSource) HeldManifest(_ context.Context, _ string, d digest.Digest) (*content.Manifest, bool) {
	return s.held, s.held != nil && s.held.Digest == d
}

// TestManifestSourceForwardsHolders: what the inner Source holds stays reachable through
// the decorator, which itself holds only what it fetched.
func TestManifestSourceForwardsHolders(t *testing.T) {
	inner := cachedManifest(`{"inner":true}`)
	s := &manifestSource{Source: holdingSource{held: inner}, registry: "r",
		cache: newManifestCache(DefaultManifestCacheBytes), group: &cache.Group[*content.Manifest]{}}
	if m, ok := s.HeldManifest(context.Background(), "repo", inner.Digest); !ok || m != inner {
		t.Fatal("the inner Source's manifest is not reachable through the decorator")
	}
	if _, ok := s.HeldManifest(context.Background(), "repo", digest.FromString("other")); ok {
		t.Fatal("a manifest held nowhere was returned")
	}
	own := cachedManifest(`{"own":true}`)
	s.cache.add("r", "repo", own)
	if m, ok := s.HeldManifest(context.Background(), "repo", own.Digest); !ok || m != own {
		t.Fatal("the decorator's own manifest is not held")
	}
	if m, err := s.Manifest(context.Background(), "repo", own.Digest.String(), nil); err != nil || m != own {
		t.Fatalf("Manifest by a held digest: %v", err)
	}
	// The inner Source offers no held blobs: the decorator says so.
	if _, err := s.OpenVerified(context.Background(), "repo", own.Digest); !errors.Is(err, content.ErrNotHeld) {
		t.Fatalf("OpenVerified = %v, want ErrNotHeld", err)
	}
}
