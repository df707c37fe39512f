package content

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ReferrersTag is the referrers tag schema's tag for d: the algorithm truncated to 32
// characters, "-", the encoded part truncated to 64 characters.
func ReferrersTag(d digest.Digest) string {
	alg, enc := d.Algorithm().String(), d.Encoded()
	if len(alg) > 32 {
		alg = alg[:32]
	}
	if len(enc) > 64 {
		enc = enc[:64]
	}
	return alg + "-" + enc
}

// ManifestGetter fetches a manifest (Source.Manifest, or the handler's cached fetch).
type ManifestGetter func(ctx context.Context, repo, reference string, accept []string) (*Manifest, error)

// ReferrersFromTag is the referrers tag schema fallback (dist-spec 1.1) for an upstream
// without the referrers API: the descriptors of the index tagged ReferrersTag(d), as
// listed (the caller checks them), and the size of that index. No such tag means no
// referrers: an empty list, never nil. An index that does not parse is an error wrapping
// ErrReferrersTagNotIndex.
func ReferrersFromTag(ctx context.Context, get ManifestGetter, repo string, d digest.Digest) ([]ocispec.Descriptor, int, error) {
	m, err := get(ctx, repo, ReferrersTag(d), []string{ocispec.MediaTypeImageIndex})
	if IsNotFound(err) {
		return []ocispec.Descriptor{}, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(m.Bytes, &idx); err != nil {
		return nil, len(m.Bytes), fmt.Errorf("%w: %w", ErrReferrersTagNotIndex, err)
	}
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{}
	}
	return idx.Manifests, len(m.Bytes), nil
}
