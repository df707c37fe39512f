package proxy

import (
	"context"
	"net/http"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/content"
)

// serveManifest answers GET and HEAD on /v2/<name>/manifests/<reference>. The gate needs
// the verified bytes to decide, so a HEAD is answered from a GET upstream unless the
// bytes are already held (see manifest).
func (h *handler) serveManifest(w http.ResponseWriter, r *http.Request, rt route, info *accessInfo) error {
	ctx := r.Context()
	head := r.Method == http.MethodHead
	// Every Accept line, unchanged: the bytes a tag resolves to depend on them.
	accept := r.Header.Values("Accept")
	m, err := manifest(ctx, h.sources[rt.registry], rt, accept, head)
	if err != nil {
		// A repository whose scope rejects every image is refused whether or not the
		// upstream answered: rejected is 403, never 5xx (DESIGN.md, content store 10).
		if lerr := h.admitListing(r, rt); lerr != nil && asError(lerr).Code == errcode.ErrorCodeDenied {
			return lerr
		}
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
		Stale:     m.Stale,
	})
	if err != nil {
		return gateError(err)
	}
	if !dec.Allow {
		return denied(dec)
	}
	if k, ok := h.sources[rt.registry].(content.ManifestKeeper); ok && !dec.Unenforced {
		k.KeepManifest(ctx, rt.repo, rt.ref, m)
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

// manifest returns the verified manifest a request names, from src (a manifestSource,
// which holds and joins). A HEAD by tag asks the upstream (HEAD) which digest the tag
// names today; if those bytes are held they are used (they are verified; the HEAD
// answer only chose them), else a GET by tag.
func manifest(ctx context.Context, src content.Source, rt route, accept []string, head bool) (*content.Manifest, error) {
	if held, ok := src.(content.ManifestHolder); ok && head && !isDigest(rt.ref) {
		desc, err := src.HeadManifest(ctx, rt.repo, rt.ref, accept)
		switch {
		case err != nil && !headUnsupported(err):
			return nil, err
		case err == nil && desc.Digest != "":
			if m, ok := held.HeldManifest(ctx, rt.repo, desc.Digest); ok {
				if desc.Stale && !m.Stale {
					stale := *m // held values are shared: mark a copy
					stale.Stale = true
					return &stale, nil
				}
				return m, nil
			}
		}
	}
	return src.Manifest(ctx, rt.repo, rt.ref, accept)
}

// headUnsupported reports whether a HEAD failed only because the upstream does not
// answer HEAD, so a GET is worth trying.
func headUnsupported(err error) bool {
	return asError(err).HTTPStatus() == http.StatusMethodNotAllowed
}
