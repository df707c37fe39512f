package proxy

// Bounds on everything the proxy buffers. Blobs are never buffered: they stream.
const (
	// MaxManifestBytes is the largest manifest pullgate accepts from an upstream. A
	// manifest must be held in memory to be digest-checked and admitted before a single
	// byte is served, so it needs a hard cap. 4 MiB is the limit distribution and
	// containerd apply to manifests; anything larger is refused, never truncated.
	MaxManifestBytes = 4 << 20

	// MaxListingBytes caps a tags/list or referrers answer read from an upstream. Both
	// are paginated, so a real page is small (Docker Hub pages 100 tags); 8 MiB leaves
	// room for an unpaginated list of tens of thousands of tags.
	MaxListingBytes = 8 << 20

	// DefaultManifestCacheBytes bounds the in-memory cache of verified manifest bytes
	// (content-addressed, so entries never go stale). A typical manifest is 0.5 to 8
	// KiB, so 32 MiB holds thousands of them.
	DefaultManifestCacheBytes = 32 << 20

	// blobCopyBufferBytes is the buffer each blob transfer is relayed through, so the
	// most pullgate holds of a blob at a time: 512 KiB per transfer in flight, whatever
	// the blob's size. Against net/http's 32 KiB it cuts pullgate's CPU per GiB relayed
	// by about a fifth and the client's by half (fewer, fuller system calls on both
	// sides); larger buffers gained nothing more (docs/benchmarks.md).
	blobCopyBufferBytes = 512 << 10
)
