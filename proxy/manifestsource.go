package proxy

import (
	"context"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/cache"
	"github.com/pullgate/pullgate/proxy/content"
)

// manifestFetchTimeout bounds one shared upstream manifest fetch. It runs detached from
// the requests waiting for it (each stops waiting when its own client goes away).
const manifestFetchTimeout = 2 * time.Minute

// manifestSource is the Source decorator New puts around every upstream Source: it holds
// verified manifest bytes by digest and joins concurrent identical manifest GETs into one
// upstream fetch. Everything else goes to the inner Source unchanged.
//   - Manifest by digest: the held bytes, else a GET upstream.
//   - Manifest by tag: always a GET upstream (tags move).
//   - HeldManifest (content.ManifestHolder): the held bytes only, here or in the inner
//     Source.
type manifestSource struct {
	content.Source
	registry string
	// cache and group are shared by all upstreams: one bound on the bytes held, one
	// key space (the registry is part of every key).
	cache *manifestCache
	group *cache.Group[*content.Manifest]
}

var (
	_ content.ManifestHolder     = (*manifestSource)(nil)
	_ content.VerifiedBlobSource = (*manifestSource)(nil)
	_ content.ManifestKeeper     = (*manifestSource)(nil)
)

// KeepManifest implements content.ManifestKeeper for an inner Source that does.
func (s *manifestSource) KeepManifest(ctx context.Context, repo, ref string, m *content.Manifest) {
	if k, ok := s.Source.(content.ManifestKeeper); ok {
		k.KeepManifest(ctx, repo, ref, m)
	}
}

// Manifest implements content.ManifestSource.
func (s *manifestSource) Manifest(ctx context.Context, repo, ref string, accept []string) (*content.Manifest, error) {
	if isDigest(ref) {
		if m, ok := s.cache.get(manifestKey{registry: s.registry, repo: repo, digest: digest.Digest(ref)}); ok {
			return m, nil
		}
	}
	return s.fetch(ctx, repo, ref, accept)
}

// fetch gets a manifest with a GET upstream, once for concurrent identical requests
// (same upstream, repository, reference and Accept lines), and holds the result by
// digest.
func (s *manifestSource) fetch(ctx context.Context, repo, ref string, accept []string) (*content.Manifest, error) {
	key := strings.Join(append([]string{s.registry, repo, ref}, accept...), "\x00")
	m, _, err := s.group.Do(ctx, key, func(ctx context.Context) (*content.Manifest, error) {
		m, err := s.Source.Manifest(ctx, repo, ref, accept)
		if err != nil {
			return nil, err
		}
		// The Source promised a computed sha256; hold it to that before caching.
		if len(m.Bytes) > content.MaxManifestBytes {
			return nil, badUpstream("the upstream sent a manifest larger than pullgate accepts", content.ErrManifestTooLarge)
		}
		if digest.SHA256.FromBytes(m.Bytes) != m.Digest {
			return nil, badUpstream("the upstream sent a manifest that failed verification", content.ErrDigestMismatch)
		}
		held := m
		if m.Stale { // staleness belongs to this tag lookup, not to the bytes
			c := *m
			c.Stale = false
			held = &c
		}
		s.cache.add(s.registry, repo, held)
		return m, nil
	})
	return m, err
}

// HeldManifest implements content.ManifestHolder.
func (s *manifestSource) HeldManifest(ctx context.Context, repo string, d digest.Digest) (*content.Manifest, bool) {
	if m, ok := s.cache.get(manifestKey{registry: s.registry, repo: repo, digest: d}); ok {
		return m, true
	}
	if h, ok := s.Source.(content.ManifestHolder); ok {
		return h.HeldManifest(ctx, repo, d)
	}
	return nil, false
}

// OpenVerified implements content.VerifiedBlobSource for an inner Source that does.
func (s *manifestSource) OpenVerified(ctx context.Context, repo string, d digest.Digest) (*content.VerifiedBlob, error) {
	if vs, ok := s.Source.(content.VerifiedBlobSource); ok {
		return vs.OpenVerified(ctx, repo, d)
	}
	return nil, content.ErrNotHeld
}
