package proxy

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/cache"
	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/content"
)

// serveManifest answers GET and HEAD on /v2/<name>/manifests/<reference>. The gate needs
// the verified bytes to decide, so a HEAD is answered from a GET upstream unless the
// bytes are already held (see manifestFetcher).
func (h *handler) serveManifest(w http.ResponseWriter, r *http.Request, rt route, info *accessInfo) error {
	ctx := r.Context()
	head := r.Method == http.MethodHead
	// Every Accept line, unchanged: the bytes a tag resolves to depend on them.
	accept := r.Header.Values("Accept")
	m, err := h.manifests.fetch(ctx, h.sources[rt.registry], rt, accept, head)
	if err != nil {
		return err
	}
	served := m.Digest
	if isDigest(rt.ref) {
		// Checked again here whatever the Source did: these are the bytes served.
		want := digest.Digest(rt.ref)
		if want.Algorithm().FromBytes(m.Bytes) != want {
			return badUpstream("the upstream sent a manifest that does not match the digest requested", content.ErrDigestMismatch)
		}
		served = want
	}
	info.digest = served

	dec, err := h.gate.AdmitManifest(ctx, &admission.ManifestRequest{
		Target:    target(r, rt),
		Reference: rt.ref,
		Digest:    m.Digest,
		MediaType: content.MediaType(m.ContentType),
		Bytes:     m.Bytes,
		Head:      head,
	})
	if err != nil {
		return gateError(err)
	}
	if !dec.Allow {
		return denied(dec)
	}

	hdr := w.Header()
	setContentType(hdr, m.ContentType)
	hdr.Set("Docker-Content-Digest", served.String())
	hdr.Set("Content-Length", strconv.Itoa(len(m.Bytes)))
	w.WriteHeader(http.StatusOK)
	if !head {
		_, _ = w.Write(m.Bytes)
	}
	return nil
}

// manifestFetcher gets verified manifest bytes: from its cache when the digest is known,
// else from the Source, with concurrent identical fetches going upstream once.
type manifestFetcher struct {
	cache *manifestCache
	group *cache.Group[*content.Manifest]
}

// fetch returns the manifest a request names.
//   - By digest: the cache, else a GET upstream.
//   - By tag, GET: always a GET upstream (tags move).
//   - By tag, HEAD: a HEAD upstream says which digest the tag names today; if those
//     bytes are cached they are used (they are verified; the HEAD answer only chose
//     them), else a GET upstream.
func (f *manifestFetcher) fetch(ctx context.Context, src content.ManifestSource, rt route, accept []string, head bool) (*content.Manifest, error) {
	if isDigest(rt.ref) {
		if m, ok := f.cache.get(manifestKey{registry: rt.registry, repo: rt.repo, digest: digest.Digest(rt.ref)}); ok {
			return m, nil
		}
		return f.get(ctx, src, rt.registry, rt.repo, rt.ref, accept)
	}
	if head {
		desc, err := src.HeadManifest(ctx, rt.repo, rt.ref, accept)
		switch {
		case err != nil && !headUnsupported(err):
			return nil, err
		case err == nil && desc.Digest != "":
			if m, ok := f.cache.get(manifestKey{registry: rt.registry, repo: rt.repo, digest: desc.Digest}); ok {
				return m, nil
			}
		}
	}
	return f.get(ctx, src, rt.registry, rt.repo, rt.ref, accept)
}

// headUnsupported reports whether a HEAD failed only because the upstream does not
// answer HEAD, so a GET is worth trying.
func headUnsupported(err error) bool {
	return asError(err).HTTPStatus() == http.StatusMethodNotAllowed
}

// get fetches a manifest with a GET upstream, once for concurrent identical requests
// (same upstream, repository, reference and Accept lines), and caches the result by
// digest.
func (f *manifestFetcher) get(ctx context.Context, src content.ManifestSource, registry, repo, ref string, accept []string) (*content.Manifest, error) {
	key := strings.Join(append([]string{registry, repo, ref}, accept...), "\x00")
	m, _, err := f.group.Do(ctx, key, func(ctx context.Context) (*content.Manifest, error) {
		m, err := src.Manifest(ctx, repo, ref, accept)
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
		f.cache.add(registry, repo, m)
		return m, nil
	})
	return m, err
}
