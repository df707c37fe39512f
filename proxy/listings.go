package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/content"
)

// Tags and referrers are read-only listings of names and descriptors. Nothing they list
// is served by listing it; every manifest and blob they point to is gated when a client
// fetches it. A gate that is also a ListingGate may refuse them (a reject scope does not
// disclose its tags and digests). What an upstream sends is parsed, checked and
// re-encoded: its bytes and its Content-Type never reach the client (issue 8.8).

// tagList is the tags/list answer.
type tagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// serveTags answers GET /v2/<name>/tags/list, passing n and last through. The answer
// names the repository as the client did, and its Link points back at pullgate.
func (h *handler) serveTags(w http.ResponseWriter, r *http.Request, rt route) error {
	if err := h.admitListing(r, rt); err != nil {
		return err
	}
	q := url.Values{}
	for _, k := range []string{"n", "last"} {
		if v := r.URL.Query()[k]; len(v) > 0 {
			q.Set(k, v[0])
		}
	}
	l, err := h.sources[rt.registry].Tags(r.Context(), rt.repo, q)
	if err != nil {
		return err
	}
	var tl tagList
	if err := json.Unmarshal(l.Body, &tl); err != nil {
		return badUpstream("the upstream sent an unreadable tag list", err)
	}
	tl.Name = rt.name
	if tl.Tags == nil {
		tl.Tags = []string{}
	}
	for _, tag := range tl.Tags {
		if !tagRE.MatchString(tag) {
			return badUpstream("the upstream sent a tag list with an invalid tag", nil)
		}
	}
	body, err := json.Marshal(tl)
	if err != nil {
		return fmt.Errorf("encode tag list: %w", err)
	}
	if err := setLink(w, l, "/v2/"+rt.name+"/tags/list", rt); err != nil {
		return err
	}
	writeJSON(w, r, "application/json", body)
	return nil
}

// serveReferrers answers GET /v2/<name>/referrers/<digest>: the upstream's answer, or,
// when the upstream has no referrers API, one built from the referrers tag schema.
func (h *handler) serveReferrers(w http.ResponseWriter, r *http.Request, rt route, info *accessInfo) error {
	d := digest.Digest(rt.ref)
	info.digest = d
	if err := h.admitListing(r, rt); err != nil {
		return err
	}
	q := url.Values{}
	artifactType := r.URL.Query().Get("artifactType")
	if artifactType != "" {
		q.Set("artifactType", artifactType)
	}
	src := h.sources[rt.registry]
	l, err := src.Referrers(r.Context(), rt.repo, d, q)
	if errors.Is(err, content.ErrReferrersUnsupported) {
		return h.serveReferrersFromTag(w, r, rt, d, artifactType)
	}
	if err != nil {
		return err
	}
	var idx referrersIndex
	if err := json.Unmarshal(l.Body, &idx); err != nil {
		return badUpstream("the upstream sent an unreadable referrers list", err)
	}
	if idx.SchemaVersion != 2 || (idx.MediaType != "" && idx.MediaType != ocispec.MediaTypeImageIndex) {
		return badUpstream("the upstream's referrers answer is not an OCI image index", nil)
	}
	manifests, err := cleanReferrers(idx.Manifests)
	if err != nil {
		return badUpstream("the upstream sent an invalid referrers list", err)
	}
	if err := setLink(w, l, "/v2/"+rt.name+"/referrers/"+d.String(), rt); err != nil {
		return err
	}
	return writeReferrers(w, r, manifests, artifactType)
}

// setLink relays a listing's pagination Link header, rewritten to point at path on
// pullgate (see rewriteLink).
func setLink(w http.ResponseWriter, l *content.Listing, path string, rt route) error {
	if l.Link == "" {
		return nil
	}
	link, err := rewriteLink(l.Link, path, rt.clientNS)
	if err != nil {
		return badUpstream("the upstream sent an unreadable Link header", err)
	}
	w.Header().Set("Link", link)
	return nil
}

// referrersIndex is what is read of an upstream's referrers answer; everything else in
// it is dropped.
type referrersIndex struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
}

// errInvalidReferrer is wrapped by cleanReferrers' errors.
var errInvalidReferrer = errors.New("invalid referrer descriptor")

// cleanReferrers checks the descriptors of a referrers list and keeps only the members
// the referrers API defines (mediaType, digest, size, artifactType, annotations); never
// nil. An invalid descriptor refuses the whole list: it is not silently shortened.
func cleanReferrers(in []ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if len(in) > maxReferrers {
		return nil, fmt.Errorf("%d descriptors, more than %d: %w", len(in), maxReferrers, errInvalidReferrer)
	}
	out := make([]ocispec.Descriptor, 0, len(in))
	for i, desc := range in {
		if err := desc.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("descriptor %d: %w: %w", i, errInvalidReferrer, err)
		}
		if !isMediaType(desc.MediaType) || (desc.ArtifactType != "" && !isMediaType(desc.ArtifactType)) {
			return nil, fmt.Errorf("descriptor %d: bad media or artifact type: %w", i, errInvalidReferrer)
		}
		if desc.Size < 0 {
			return nil, fmt.Errorf("descriptor %d: negative size: %w", i, errInvalidReferrer)
		}
		out = append(out, ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size,
			ArtifactType: desc.ArtifactType, Annotations: desc.Annotations})
	}
	return out, nil
}

// mediaTypeRE is the media type grammar of the OCI image spec (RFC 6838 names, no
// parameters).
var mediaTypeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`)

func isMediaType(s string) bool { return mediaTypeRE.MatchString(s) }

// writeReferrers answers a referrers list, re-encoded as the one type the spec defines,
// filtered by artifactType when one was asked for.
func writeReferrers(w http.ResponseWriter, r *http.Request, manifests []ocispec.Descriptor, artifactType string) error {
	if artifactType != "" {
		kept := manifests[:0]
		for _, m := range manifests {
			if m.ArtifactType == artifactType {
				kept = append(kept, m)
			}
		}
		manifests = kept
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	body, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: manifests,
	})
	if err != nil {
		return fmt.Errorf("encode referrers index: %w", err)
	}
	writeJSON(w, r, ocispec.MediaTypeImageIndex, body)
	return nil
}

// admitListing asks a gate that is a ListingGate whether the repository's listings may
// be served; other gates allow them.
func (h *handler) admitListing(r *http.Request, rt route) error {
	lg, ok := h.gate.(admission.ListingGate)
	if !ok {
		return nil
	}
	dec, err := lg.AdmitListing(r.Context(), target(r, rt))
	if err != nil {
		return gateError(err)
	}
	if !dec.Allow {
		return denied(dec)
	}
	return nil
}

// serveReferrersFromTag builds the referrers answer from the referrers tag schema
// (dist-spec 1.1): the index tagged <alg>-<hex>, filtered by artifactType. No such tag
// means no referrers: an empty index, 200.
func (h *handler) serveReferrersFromTag(w http.ResponseWriter, r *http.Request, rt route, d digest.Digest, artifactType string) error {
	manifests, err := h.referrersFromTag(r.Context(), rt, d)
	if err != nil {
		return err
	}
	return writeReferrers(w, r, manifests, artifactType)
}

// referrersFromTag reads the descriptors of the referrers tag index for d through the
// Source (its manifestSource joins and holds); never nil.
func (h *handler) referrersFromTag(ctx context.Context, rt route, d digest.Digest) ([]ocispec.Descriptor, error) {
	listed, _, err := content.ReferrersFromTag(ctx, h.sources[rt.registry].Manifest, rt.repo, d)
	if errors.Is(err, content.ErrReferrersTagNotIndex) {
		return nil, badUpstream("the referrers tag does not hold an image index", err)
	}
	if err != nil {
		return nil, err
	}
	manifests, err := cleanReferrers(listed)
	if err != nil {
		return nil, badUpstream("the referrers tag lists an invalid descriptor", err)
	}
	return manifests, nil
}

// writeJSON writes a 200 answer with a known body.
func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, body []byte) {
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
