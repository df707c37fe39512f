package enforce

import (
	"time"
)

// Bounds and lifetimes of the gate's memories. Every memory the gate keeps is bounded in
// entries; the sizes derive from Options.CacheSize where a site may need more.
const (
	defaultAcceptTTL = 10 * time.Minute
	defaultDenyTTL   = time.Minute
	defaultCacheSize = 10000

	// admissionTTL is how long a blob stays servable after an accepted manifest referenced
	// it, and how long a served index's children remember it: long enough for a slow pull
	// of big layers, short enough to be re-checked. After a reload to a different policy
	// neither is used again (their keys name the old policy).
	admissionTTL = time.Hour
	// admissionsPerVerdict sizes the admission memory's total blob references relative to
	// the verdict cache: an image has a config and a handful of layers.
	admissionsPerVerdict = 16
	// maxManifestBlobs bounds the blobs (config and layers) of one image manifest that
	// pullgate serves: a manifest listing more is refused before any policy work. Real
	// images stay far below (docker and overlayfs stop at about 128 layers), and the bound
	// keeps one accepted manifest from filling the admission memory.
	maxManifestBlobs = 1024
	// minAdmittedBlobs is the least total of blob references the admission memory holds,
	// whatever the cache size: a few manifests at maxManifestBlobs each.
	minAdmittedBlobs = 8 * maxManifestBlobs

	// maxKeptCandidates bounds the kept manifests a blob is decided through when this
	// process served none that lists it, and the kept indexes tried for each (admitFromKept):
	// each is a policy decision.
	maxKeptCandidates = 4

	// maxParentsPerChild bounds the indexes a client's by-digest child fetch is judged
	// under (the newest are kept): a child is listed by a handful of tags' indexes.
	maxParentsPerChild = 8
	// maxParentChildrenPerClient bounds the children one client's served indexes are
	// remembered for; a client's own traffic evicts only its own entries.
	maxParentChildrenPerClient = 1024
	// maxParentClients bounds the clients whose served indexes are remembered (least
	// recently active forgotten first).
	maxParentClients = 256

	// maxChildrenEvaluated bounds how many children of an unaccepted index are evaluated
	// to decide whether to serve it (real indexes list a handful of platforms); the rest
	// are still gated one by one when fetched.
	maxChildrenEvaluated = 64
	// evaluationTimeout bounds one shared evaluation (signature fetches included); callers
	// stop waiting earlier when their own request ends.
	evaluationTimeout = 2 * time.Minute
	// parseCacheTTL is how long a manifest's classification is remembered (it depends on
	// its bytes alone, so only memory is at stake; the cache holds CacheSize entries).
	parseCacheTTL = time.Hour
	// maxParseCachedBytes and maxParseCacheEntries bound the classification cache: real
	// manifests are 0.5 to 8 KiB, and what a parsed one holds is about its size, so the
	// cache holds at most about 2048 × 2 × 16 KiB = 64 MiB.
	maxParseCachedBytes  = 16 << 10
	maxParseCacheEntries = 2048
	// maxDecideAttempts bounds how often a manifest is decided again because the policy
	// was reloaded while it was being decided; then the answer is 503.
	maxDecideAttempts = 3

	// maxAttachmentLayers bounds the layers of a signature attachment: cosign appends one
	// per signing (as sigsource's maxSigstoreLayers).
	maxAttachmentLayers = 128
	// maxAttachmentBlobSize bounds each layer of a signature attachment, as one signature
	// is bounded (sigsource's maxSignatureSize, containers/image's 4 MiB).
	maxAttachmentBlobSize = 4 << 20
	// maxAttachmentBytes bounds the blobs of one attachment read to check it, all layers
	// and the config together: real ones hold a few KiB per signature.
	maxAttachmentBytes = 16 << 20
	// maxConcurrentAttachmentReads bounds the attachment checks reading blobs at once, each
	// holding at most one maxAttachmentBlobSize blob: 32 MiB in all, whatever the number of
	// clients asking for attachments. Checks beyond it wait (for their own request's time).
	maxConcurrentAttachmentReads = 8
	// maxAttachmentConfigSize bounds an image-config-typed config of an attachment
	// (cosign's lists the layers' digests: well under 1 KiB per layer).
	maxAttachmentConfigSize = 64 << 10
)
