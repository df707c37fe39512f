package sigsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy/content"
	"github.com/pullgate/pullgate/proxy/upstream"
	"github.com/pullgate/pullgate/proxy/verify"
)

// Registry is the upstream access the in-registry sources need (*upstream.Client).
type Registry interface {
	content.ManifestSource
	content.BlobSource
	content.ListingSource
	// SupportsSignatureExtension reports whether the registry offers the signature API.
	SupportsSignatureExtension(ctx context.Context) (bool, error)
	// ExtensionSignatures returns the signature API's JSON list for a manifest digest.
	ExtensionSignatures(ctx context.Context, repo string, d digest.Digest) ([]byte, error)
}

// ErrRegistryFetch is wrapped by failures to read signatures stored in the registry.
var ErrRegistryFetch = errors.New("reading signatures from the registry failed")

// extensionSignatures reads the registry signature API (SPEC.md 4). The list (at most
// maxSignatureListSize, read by the upstream client) and its entries count against b.
func extensionSignatures(ctx context.Context, reg Registry, repo string, d digest.Digest, b *budget) ([]policy.Signature, error) {
	if err := b.room(1); err != nil {
		return nil, fmt.Errorf("%w: signature API: %w", ErrRegistryFetch, err)
	}
	body, err := reg.ExtensionSignatures(ctx, repo, d)
	if err != nil {
		return nil, fmt.Errorf("%w: signature API: %w", ErrRegistryFetch, err)
	}
	if err := b.charge(int64(len(body))); err != nil {
		return nil, fmt.Errorf("%w: signature API: %w", ErrRegistryFetch, err)
	}
	sigs, err := parseSignatureList(body)
	if err != nil {
		return nil, err
	}
	for range sigs {
		if err := b.signature(); err != nil {
			return nil, fmt.Errorf("%w: signature API: %w", ErrRegistryFetch, err)
		}
	}
	return sigs, nil
}

// parseSignatureList reads the signature API's JSON list (SPEC.md 4). Entries other than
// schemaVersion 2 "atomic" are skipped; the content is a raw OpenPGP message.
func parseSignatureList(body []byte) ([]policy.Signature, error) {
	var list struct {
		Signatures []struct {
			SchemaVersion int    `json:"schemaVersion"`
			Type          string `json:"type"`
			Content       []byte `json:"content"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("%w: signature API answered an unreadable list: %w", ErrRegistryFetch, err)
	}
	var out []policy.Signature
	for i, s := range list.Signatures {
		if s.SchemaVersion != 2 || s.Type != "atomic" {
			continue
		}
		out = append(out, policy.Signature{Format: policy.FormatSimpleSigning, Data: s.Content,
			Origin: fmt.Sprintf("signature API entry %d", i+1)})
	}
	return out, nil
}

// sigstoreAttachments reads the cosign attachment sha256-<hex>.sig (SPEC.md 5.1): every
// layer becomes a candidate signature. A missing tag means none; any other failure, or a
// manifest that is not an OCI image manifest, fails the lookup.
func sigstoreAttachments(ctx context.Context, reg Registry, repo string, d digest.Digest, b *budget) ([]policy.Signature, error) {
	tag := strings.Replace(d.String(), ":", "-", 1) + ".sig"
	if err := b.room(1); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRegistryFetch, tag, err)
	}
	m, err := reg.Manifest(ctx, repo, tag, content.ManifestAccept)
	if isSignatureNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRegistryFetch, tag, err)
	}
	if err := b.charge(int64(len(m.Bytes))); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRegistryFetch, tag, err)
	}
	layers, err := parseSigManifest(m.ContentType, m.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRegistryFetch, tag, err)
	}
	out := make([]policy.Signature, 0, len(layers))
	for i, l := range layers {
		if err := b.signature(); err != nil {
			return nil, fmt.Errorf("%w: %s layer %d: %w", ErrRegistryFetch, tag, i+1, err)
		}
		data, err := smallBlob(ctx, reg, repo, l, b)
		if err != nil {
			return nil, fmt.Errorf("%w: %s layer %d: %w", ErrRegistryFetch, tag, i+1, err)
		}
		out = append(out, policy.Signature{Format: policy.FormatCosign, Data: data, MIMEType: l.MediaType,
			Annotations: l.Annotations, Origin: fmt.Sprintf("%s layer %d", tag, i+1)})
	}
	return out, nil
}

// parseSigManifest returns the layers of a .sig manifest, each a candidate signature to
// fetch. The Content-Type must be the OCI image manifest type, as containers/image
// requires, and every layer must name a valid digest and a signature-sized blob.
func parseSigManifest(contentType string, data []byte) ([]ocispec.Descriptor, error) {
	if mt, _, _ := mime.ParseMediaType(contentType); mt != ocispec.MediaTypeImageManifest {
		return nil, fmt.Errorf("Content-Type %q is not an OCI image manifest", contentType)
	}
	var sm ocispec.Manifest
	if err := json.Unmarshal(data, &sm); err != nil {
		return nil, err
	}
	if len(sm.Layers) > maxSigstoreLayers {
		return nil, fmt.Errorf("%d layers, more than %d", len(sm.Layers), maxSigstoreLayers)
	}
	for i, l := range sm.Layers {
		if err := checkSignatureDescriptor(l); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i+1, err)
		}
	}
	return sm.Layers, nil
}

// referrerBundles reads the Sigstore bundles attached to d through the OCI referrers API,
// or the referrers tag schema where the registry has no such API (SPEC.md 5.5).
func referrerBundles(ctx context.Context, reg Registry, repo string, d digest.Digest, b *budget) ([]policy.Signature, error) {
	descs, err := referrers(ctx, reg, repo, d, b)
	if err != nil {
		return nil, fmt.Errorf("%w: referrers of %s: %w", ErrRegistryFetch, d, err)
	}
	var out []policy.Signature
	seen := 0
	for _, desc := range descs {
		// cosign v2 writes no artifactType, so the listing shows the empty config type;
		// other artifact types (SBOMs, attestations) are not bundles and are not read.
		if desc.ArtifactType != "" && desc.ArtifactType != ocispec.MediaTypeEmptyJSON && !content.IsSigstoreBundle(desc.ArtifactType) {
			continue
		}
		if seen++; seen > maxReferrerManifests {
			return nil, fmt.Errorf("%w: more than %d candidate referrers of %s", ErrRegistryFetch, maxReferrerManifests, d)
		}
		if err := desc.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("%w: referrer digest: %w", ErrRegistryFetch, err)
		}
		if err := b.room(1); err != nil {
			return nil, fmt.Errorf("%w: referrer %s: %w", ErrRegistryFetch, desc.Digest, err)
		}
		m, err := reg.Manifest(ctx, repo, desc.Digest.String(), content.ManifestAccept)
		if err != nil {
			return nil, fmt.Errorf("%w: referrer %s: %w", ErrRegistryFetch, desc.Digest, err)
		}
		if err := b.charge(int64(len(m.Bytes))); err != nil {
			return nil, fmt.Errorf("%w: referrer %s: %w", ErrRegistryFetch, desc.Digest, err)
		}
		var am ocispec.Manifest
		if err := json.Unmarshal(m.Bytes, &am); err != nil {
			continue // an index or something else that is not a bundle manifest
		}
		for _, l := range am.Layers {
			if !content.IsSigstoreBundle(l.MediaType) {
				continue
			}
			if err := b.signature(); err != nil {
				return nil, fmt.Errorf("%w: bundle %s of referrer %s: %w", ErrRegistryFetch, l.Digest, desc.Digest, err)
			}
			data, err := smallBlob(ctx, reg, repo, l, b)
			if err != nil {
				return nil, fmt.Errorf("%w: bundle %s of referrer %s: %w", ErrRegistryFetch, l.Digest, desc.Digest, err)
			}
			out = append(out, policy.Signature{Format: policy.FormatSigstoreBundle, Data: data, MIMEType: l.MediaType,
				Annotations: am.Annotations, Origin: "referrer " + desc.Digest.String()})
		}
	}
	return out, nil
}

// referrers lists the descriptors whose subject is d; the listing counts against b.
func referrers(ctx context.Context, reg Registry, repo string, d digest.Digest, b *budget) ([]ocispec.Descriptor, error) {
	if err := b.room(1); err != nil {
		return nil, err
	}
	l, err := reg.Referrers(ctx, repo, d, url.Values{})
	if errors.Is(err, content.ErrReferrersUnsupported) {
		if err := b.room(1); err != nil {
			return nil, err
		}
		listed, size, err := content.ReferrersFromTag(ctx, reg.Manifest, repo, d)
		if size > 0 {
			if cerr := b.charge(int64(size)); cerr != nil {
				return nil, cerr
			}
		}
		return listed, err
	}
	if err != nil {
		return nil, err
	}
	if err := b.charge(int64(len(l.Body))); err != nil {
		return nil, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(l.Body, &idx); err != nil {
		return nil, fmt.Errorf("unreadable referrers list: %w", err)
	}
	return idx.Manifests, nil
}

// checkSignatureDescriptor refuses a descriptor that cannot name a signature blob: an
// invalid digest, or a size outside 0..maxSignatureSize.
func checkSignatureDescriptor(desc ocispec.Descriptor) error {
	if err := desc.Digest.Validate(); err != nil {
		return err
	}
	if desc.Size < 0 || desc.Size > maxSignatureSize {
		return fmt.Errorf("blob %s: size %d is outside 0..%d", desc.Digest, desc.Size, maxSignatureSize)
	}
	return nil
}

// smallBlob reads a signature-sized blob, verifying its size and digest. Its declared
// size must fit what is left of bud before it is fetched, and no more than that size is
// read.
func smallBlob(ctx context.Context, reg Registry, repo string, desc ocispec.Descriptor, bud *budget) ([]byte, error) {
	if err := checkSignatureDescriptor(desc); err != nil {
		return nil, err
	}
	if err := bud.room(desc.Size); err != nil {
		return nil, fmt.Errorf("blob %s of %d bytes: %w", desc.Digest, desc.Size, err)
	}
	b, err := reg.Blob(ctx, repo, desc.Digest)
	if err != nil {
		return nil, err
	}
	vr, err := verify.NewReader(b.Body, desc.Digest, desc.Size)
	if err != nil {
		b.Body.Close()
		return nil, err
	}
	defer vr.Close()
	// Exactly the declared size is allocated (io.ReadAll would grow to twice that); the
	// read past it sees the digest checked and the body at its end.
	r := bud.reader(vr)
	data := make([]byte, desc.Size)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			err = errors.New("longer than its descriptor says")
		}
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return data, nil
}

// isSignatureNotFound recognises "no such signature manifest" the way containers/image
// does: MANIFEST_UNKNOWN or any 404, or UNKNOWN with a "not found" message (Harbor,
// registry.redhat.io).
func isSignatureNotFound(err error) bool {
	if err == nil {
		return false
	}
	if content.IsNotFound(err) {
		return true
	}
	var ue *upstream.Error
	return errors.As(err, &ue) && ue.ErrorCode() == errcode.ErrorCodeUnknown &&
		strings.Contains(strings.ToLower(ue.Message), "not found")
}
