package enforce

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy/content"
)

// Bounds and kinds of manifests (the media types are content's).
const (
	maxManifestReferences      = 10000 // children or blobs of one manifest; real ones have dozens
	kindImage             kind = "image"
	kindIndex             kind = "index"
)

// kind is what a manifest is, as far as enforcement is concerned.
type kind string

// referrerArtifactTypes are the artifact types of signatures, attestations and SBOMs. An
// index whose every entry declares one of them may be the referrers tag schema's index
// (claimedAttachment); whether a layer may be served unchecked is attachmentLayers' matter.
var referrerArtifactTypes = map[string]bool{
	content.MediaTypeSimpleSigning:                     true, // cosign .sig
	content.MediaTypeDSSE:                              true, // cosign .att
	content.MediaTypeInToto:                            true,
	content.MediaTypeSigstoreBundle01:                  true,
	content.MediaTypeSigstoreBundle02:                  true,
	content.MediaTypeSigstoreBundle03:                  true,
	content.MediaTypeSigstoreBundleV3:                  true,
	"application/vnd.cncf.notary.signature":            true,
	"application/jose+json":                            true, // notation JWS envelope
	"application/cose":                                 true, // notation COSE envelope
	"application/vnd.dev.cosign.artifact.sbom.v1+json": true,
	"text/spdx":                      true,
	"text/spdx+json":                 true,
	"text/spdx+xml":                  true,
	"application/spdx+json":          true,
	"application/vnd.cyclonedx+json": true,
	"application/vnd.cyclonedx+xml":  true,
	"application/vnd.syft+json":      true,
}

// parsedManifest is what enforcement reads from a manifest. It is parsed from bytes whose
// digest was checked but whose trust is not yet decided.
type parsedManifest struct {
	kind kind
	// children are the manifests an index lists.
	children []digest.Digest
	// childrenAreArtifacts is true for an index whose every entry declares a signature
	// artifactType (the referrers tag schema's sha256-<hex> index).
	childrenAreArtifacts bool
	// blobs are the config and layers of an image manifest.
	blobs []digest.Digest
	// config and layers are the descriptors of an image manifest, as listed (media types
	// and sizes are the upstream's claims), for the signature-attachment check.
	config *descriptor
	layers []descriptor
	// subject is the digest an OCI image manifest names in its subject field (a
	// referrer's), empty when there is none.
	subject digest.Digest
}

type descriptor struct {
	MediaType    string        `json:"mediaType"`
	Digest       digest.Digest `json:"digest"`
	Size         int64         `json:"size"`
	ArtifactType string        `json:"artifactType"`
}

type anyManifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        *descriptor  `json:"config"`
	Layers        []descriptor `json:"layers"`
	Manifests     []descriptor `json:"manifests"`
	Subject       *descriptor  `json:"subject"`
}

var errUnknownManifest = errors.New("unrecognised manifest")

// parseManifest classifies manifest bytes. contentType is the upstream's Content-Type;
// checkShape decides the media type (the body's own mediaType when the header is generic)
// and refuses schema1 and bodies that disagree with it. A manifest that cannot be
// classified is an error: it is not served.
func parseManifest(contentType string, data []byte) (parsedManifest, error) {
	mt, err := checkShape(contentType, data)
	if err != nil {
		return parsedManifest{}, err
	}
	var m anyManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return parsedManifest{}, fmt.Errorf("%w: %w", errUnknownManifest, err)
	}
	var p parsedManifest
	switch mt {
	case content.MediaTypeOCIIndex, content.MediaTypeDockerList:
		p.kind = kindIndex
		if len(m.Manifests) > maxManifestReferences {
			return p, fmt.Errorf("%w: index lists %d manifests", errUnknownManifest, len(m.Manifests))
		}
		p.childrenAreArtifacts = len(m.Manifests) > 0
		for _, d := range m.Manifests {
			if err := d.Digest.Validate(); err != nil {
				return p, fmt.Errorf("%w: child digest: %w", errUnknownManifest, err)
			}
			p.children = append(p.children, d.Digest)
			if !isArtifactType(d.ArtifactType) {
				p.childrenAreArtifacts = false
			}
		}
	case content.MediaTypeOCIManifest, content.MediaTypeDockerManifest:
		p.kind = kindImage
		if m.Config == nil {
			return p, fmt.Errorf("%w: no config", errUnknownManifest)
		}
		if len(m.Layers) > maxManifestReferences {
			return p, fmt.Errorf("%w: %d layers", errUnknownManifest, len(m.Layers))
		}
		for _, d := range append([]descriptor{*m.Config}, m.Layers...) {
			if err := d.Digest.Validate(); err != nil {
				return p, fmt.Errorf("%w: blob digest: %w", errUnknownManifest, err)
			}
			p.blobs = append(p.blobs, d.Digest)
		}
		cfg := *m.Config
		p.config, p.layers = &cfg, m.Layers
		if m.Subject != nil {
			if err := m.Subject.Digest.Validate(); err != nil {
				return p, fmt.Errorf("%w: subject digest: %w", errUnknownManifest, err)
			}
			p.subject = m.Subject.Digest
		}
	default:
		return p, fmt.Errorf("%w: media type %q", errUnknownManifest, mt)
	}
	return p, nil
}

func isArtifactType(t string) bool {
	return t != "" && referrerArtifactTypes[content.Normalise(t)]
}
