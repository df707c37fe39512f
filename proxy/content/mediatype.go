package content

import "strings"

// Media types pullgate tells apart. One table for the handler, enforcement, the
// signature sources and pullgate verify.
const (
	MediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex       = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeSchema1        = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeSchema1Signed  = "application/vnd.docker.distribution.manifest.v1+prettyjws"

	MediaTypeOCIConfig    = "application/vnd.oci.image.config.v1+json"
	MediaTypeDockerConfig = "application/vnd.docker.container.image.v1+json"
	MediaTypeEmpty        = "application/vnd.oci.empty.v1+json"

	MediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	MediaTypeDSSE          = "application/vnd.dsse.envelope.v1+json"
	MediaTypeInToto        = "application/vnd.in-toto+json"

	// Sigstore bundles, in the normalised form (see Normalise); cosign v3 writes v0.3.
	MediaTypeSigstoreBundle01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"
	MediaTypeSigstoreBundle02 = "application/vnd.dev.sigstore.bundle+json;version=0.2"
	MediaTypeSigstoreBundle03 = "application/vnd.dev.sigstore.bundle+json;version=0.3"
	MediaTypeSigstoreBundleV3 = "application/vnd.dev.sigstore.bundle.v0.3+json"
)

// ManifestAccept is the Accept list for manifests pullgate fetches for itself (signature
// manifests, referrers): every manifest type, as containers/image sends; the Content-Type
// is checked afterwards.
var ManifestAccept = []string{MediaTypeOCIManifest, MediaTypeDockerManifest, MediaTypeOCIIndex, MediaTypeDockerList}

// MediaType is a Content-Type header without its parameters: what the gate is told a
// manifest's type is.
func MediaType(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.TrimSpace(mt)
}

// Normalise lower-cases a media type and drops the spaces before its parameters, so
// that "application/vnd.dev.sigstore.bundle+json; version=0.3" matches a table key.
func Normalise(mt string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(mt)), "; ", ";")
}

// IsSigstoreBundle reports whether mt (in any spelling Normalise folds) is a Sigstore
// bundle's media type.
func IsSigstoreBundle(mt string) bool {
	switch Normalise(mt) {
	case MediaTypeSigstoreBundle01, MediaTypeSigstoreBundle02, MediaTypeSigstoreBundle03, MediaTypeSigstoreBundleV3:
		return true
	}
	return false
}
