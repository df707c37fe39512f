package content

// Bounds on what is read whole from an upstream. Blobs are never buffered: they stream.
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
)
