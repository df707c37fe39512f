package proxy

import (
	"time"
)

// Bounds on everything the proxy buffers. Blobs are never buffered: they stream.
const (
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

	// DefaultWriteStallTimeout ends a response when the client has not taken a single
	// write of it for this long: a client that stops reading must not pin a relay buffer
	// and an upstream connection forever (issue 8.6). A minute covers a congested link;
	// a client slower than writeChunkBytes per minute is not pulling an image.
	DefaultWriteStallTimeout = 60 * time.Second

	// writeChunkBytes is the most written to a client under one write deadline, so that
	// the stall timeout measures progress, not the time to send a whole 512 KiB buffer
	// or a 4 MiB manifest: a client must take at least this much per stall timeout.
	writeChunkBytes = 128 << 10

	// DefaultMaxBlobStreams bounds the blob bodies relayed from upstreams at once. Each
	// holds a blobCopyBufferBytes buffer and an upstream connection, so this caps both
	// at 128 MiB and 256 connections whatever clients do.
	DefaultMaxBlobStreams = 256

	// DefaultBlobStreamWait is how long a blob request waits for a free stream before it
	// is answered 503 UNAVAILABLE with Retry-After: long enough to absorb a burst of
	// layer downloads, short enough that waiting requests do not pile up.
	DefaultBlobStreamWait = 5 * time.Second

	// blobStreamRetryAfter is the Retry-After (seconds) of that 503.
	blobStreamRetryAfter = "5"

	// maxReferrers bounds the descriptors of one referrers answer (a page). Real
	// subjects have a handful of signatures and attestations; beyond this the answer is
	// refused rather than truncated, so no listing is silently partial.
	maxReferrers = 4096
)
