package proxy

import (
	"log/slog"
	"time"

	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/content"
)

// Options configures the HTTP handler. Required inputs: at least one upstream and a gate.
type Options struct {
	// Upstreams are the registries pullgate forwards to, in configuration order.
	Upstreams []Upstream
	// DefaultUpstream is the Registry name used for paths that name no configured registry
	// (docker's registry-mirrors). Empty means such paths are 404 NAME_UNKNOWN.
	DefaultUpstream string
	// Gate admits every manifest and blob before it is served. Required.
	Gate admission.Gate
	// Signatures, when set, serves the registry signature API extension
	// (/extensions/v2/<name>/signatures/<digest>) and advertises it on /v2/ with
	// X-Registry-Supports-Signatures: 1, so that podman and skopeo pointed at pullgate
	// verify with the signatures pullgate found (SPEC.md 4).
	Signatures SignatureLister
	// Logger receives the handler's log lines (and the access lines of the default
	// Observer); nil discards.
	Logger *slog.Logger
	// Observer is handed one record per request when its answer has ended. Nil means
	// AccessLog(Logger), one access line per request; to keep that line beside another
	// observer, pass Observers(AccessLog(logger), other).
	Observer Observer
	// ManifestCacheBytes bounds the in-memory cache of verified manifest bytes (by
	// digest, per repository). Zero means DefaultManifestCacheBytes; negative disables
	// the cache.
	ManifestCacheBytes int64
	// WriteStallTimeout ends a response when the client takes none of it for this long
	// (at most writeChunkBytes are written under one deadline). Zero means
	// DefaultWriteStallTimeout; negative disables it.
	WriteStallTimeout time.Duration
	// MaxBlobStreams bounds the blob bodies relayed from upstreams at once. Zero means
	// DefaultMaxBlobStreams; negative means no bound.
	MaxBlobStreams int
	// BlobStreamWait is how long a blob request waits for one of MaxBlobStreams before
	// it is answered 503 UNAVAILABLE. Zero means DefaultBlobStreamWait.
	BlobStreamWait time.Duration
}

// Upstream binds a registry name to the client that reaches it.
type Upstream struct {
	// Registry is the name clients and signatures use (docker.io, 127.0.0.1:5001).
	Registry string
	// Source reads manifests and blobs from that registry (an *upstream.Client, or a cache
	// decorating one). New puts the in-memory manifest cache (ManifestCacheBytes) around
	// it; what the Source offers beyond content.Source (content.VerifiedBlobSource,
	// content.ManifestHolder) is forwarded.
	Source content.Source
}
