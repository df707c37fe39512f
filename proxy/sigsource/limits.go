package sigsource

import "time"

const (
	// maxSignatureSize bounds one signature (a lookaside file, a .sig layer, a bundle),
	// as containers/image does (iolimits.maxSignatureBodySize, 4 MiB).
	maxSignatureSize = 4 << 20
	// maxLookasideSignatures: containers/image stops with an error when signature-128
	// would be read, so at most 127 can be read (docker/docker_image_src.go).
	maxLookasideSignatures = 127
	// maxSignatureListSize bounds the registry signature API's JSON list, as
	// containers/image does (iolimits.maxSignatureListBodySize, 4 MiB).
	maxSignatureListSize = 4 << 20
	// maxSigstoreLayers bounds how many layers of one .sig manifest are fetched; cosign
	// appends one per signing, so real attachments have a handful.
	maxSigstoreLayers = 128
	// maxReferrerManifests bounds how many referrer manifests of one image are read when
	// looking for Sigstore bundles; each signing adds one.
	maxReferrerManifests = 64
	// maxCachedSignatureBytes: the signatures of one image are cached only up to this size
	// (real ones are a few KiB), so that the cache's memory stays bounded by its entry count
	// times this.
	maxCachedSignatureBytes = 64 << 10
	// defaultLookasideTimeout bounds each lookaside request, body included: signature
	// files are small, and a hanging server must become a prompt 503, not a hung pull.
	defaultLookasideTimeout = 15 * time.Second
)
