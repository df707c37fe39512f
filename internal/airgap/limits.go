package airgap

import (
	"time"

	"github.com/pullgate/pullgate/proxy/content"
	"github.com/pullgate/pullgate/proxy/sigsource"
)

// Bounds on what mirror, export and import read from an upstream or from a layout DIR that
// an outsider may have written.
const (
	// maxManifestBytes bounds a manifest read, as for one from an upstream (distribution
	// refuses larger ones, and so does the store).
	maxManifestBytes = content.MaxManifestBytes

	// maxChildren bounds the manifests one index lists (real indexes list tens).
	maxChildren = 1024

	// maxDepth bounds index nesting (an index of indexes is rare; deeper is an attack).
	maxDepth = 3

	// maxManifestsPerImage bounds the manifests one image brings (index, children, .sig
	// attachments, referrers).
	maxManifestsPerImage = 4096

	// maxReferrers bounds the referrer manifests kept per manifest: as many candidate
	// referrers as sigsource reads.
	maxReferrers = sigsource.MaxReferrerManifests

	// maxErrorBody bounds an error answer read for its message.
	maxErrorBody = 64 << 10

	// maxIndexJSON bounds DIR/index.json read by import and export.
	maxIndexJSON = 64 << 20

	// maxListLines bounds an --images LIST file.
	maxListLines = 100000

	// maxSignatureFile bounds one simple signature file in DIR/signatures (the finder
	// reads at most 4 MiB per signature).
	maxSignatureFile = 4 << 20

	// maxSignatureFiles bounds the simple signature files checked per manifest in DIR
	// (the lookaside reader reads at most 127).
	maxSignatureFiles = 128

	// keptWait bounds the wait for a blob read whole to be committed by the store (the
	// commit, an upload for s3, follows the last byte).
	keptWait = 5 * time.Minute

	// keptPoll is the longest pause between two looks for a blob's commit (a rename with
	// the filesystem driver: it is usually there at the first look).
	keptPoll = 5 * time.Millisecond

	// parallelBlobs is how many blobs of an image are read, or re-hashed in DIR, at once.
	parallelBlobs = 4

	// progressInterval is how often the progress bar is redrawn on a terminal.
	progressInterval = 500 * time.Millisecond
)
