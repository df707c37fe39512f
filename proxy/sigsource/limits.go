package sigsource

import (
	"time"
)

const (
	// maxSignatureSize bounds one signature (a lookaside file, a .sig layer, a bundle),
	// as containers/image does (iolimits.maxSignatureBodySize, 4 MiB).
	maxSignatureSize = 4 << 20
	// maxLookasideSignatures: containers/image stops with an error when signature-128
	// would be read, so at most 127 can be read (docker/docker_image_src.go).
	maxLookasideSignatures = 127
	// maxSigstoreLayers bounds how many layers of one .sig manifest are fetched; cosign
	// appends one per signing, so real attachments have a handful.
	maxSigstoreLayers = 128
	// MaxReferrerManifests bounds how many referrer manifests of one image are read when
	// looking for Sigstore bundles; each signing adds one. It is exported for what keeps
	// referrers for a lookup to read (airgap keeps no more per manifest).
	MaxReferrerManifests = 64
	maxReferrerManifests = MaxReferrerManifests

	// maxSignaturesPerImage bounds the signatures one lookup collects from all its
	// sources together (lookaside files, signature API entries, .sig layers, referrer
	// bundles). Real images have one to a few per source; 128 is the most one source
	// may hold on its own (a .sig manifest), so no single source that works today is cut.
	// Beyond it the lookup fails: a partial list could change a verdict.
	maxSignaturesPerImage = maxSigstoreLayers
	// maxSignatureBytesPerImage bounds the bytes one lookup reads from all its sources
	// together: signature bodies, and the manifests and lists that name them. Real
	// signatures are a few KiB (a bundle with its certificate chain about 10 KiB), so
	// 8 MiB is three orders of magnitude above need, yet two of the largest single
	// signatures (maxSignatureSize) still fit. Each read is limited to what is left, so
	// an upstream is never read past it; beyond it the lookup fails.
	maxSignatureBytesPerImage = 8 << 20
	// maxInFlightSignatureBytes bounds the bytes held by all lookups in progress in the
	// process (lookups run detached from their clients and are shared, so the number in
	// flight is not bounded by anything else). It is eight lookups at the full budget,
	// or thousands of real ones; a lookup that would pass it fails at once (503) rather
	// than wait, so that lookups never wait on each other.
	maxInFlightSignatureBytes = 8 * maxSignatureBytesPerImage

	// maxVerdictSettingsPerImage bounds the distinct registries.d settings remembered per
	// manifest for pullgate's signature API: one per section that served a successful
	// verdict lookup of it (tags of one digest scoped to different sections). Real
	// configurations give one or two; past the bound the oldest is forgotten, and a
	// signature API request reads each remembered one, so it also bounds that request's
	// lookups.
	maxVerdictSettingsPerImage = 4

	// maxCachedSignatureBytes: the signatures of one image are cached only up to this size
	// (real ones are a few KiB), so that the cache's memory stays bounded by its entry count
	// times this.
	maxCachedSignatureBytes = 64 << 10
	// defaultLookasideTimeout bounds each lookaside request, body included: signature
	// files are small, and a hanging server must become a prompt 503, not a hung pull.
	defaultLookasideTimeout = 15 * time.Second
	// maxLookasideRedirects bounds the same-host redirects followed for one lookaside
	// file (net/http's default).
	maxLookasideRedirects = 10
)
