package content

import (
	"context"
	"io"
	"net/url"
	"time"

	"github.com/opencontainers/go-digest"
)

// Source is where the handlers read registry content for one upstream registry. The
// upstream client (proxy/upstream.Client) implements it.
//
// It is split into three small interfaces so that a decorator can take over one concern
// at a time. A read-through content cache (for sites that must keep working when the
// upstream is unreachable) is such a decorator: it implements Source around the
// upstream client, answers Manifest by digest and Blob/StatBlob from local storage when
// it holds the content, and otherwise calls the inner Source and keeps what passed
// through: manifest bytes as returned (they are already verified), blob bodies teed into
// a writer that commits only after the body reached a verified EOF (see STYLE.md b13).
// Tags, HeadManifest by tag and listings go to the upstream when it is reachable. The
// handlers do not change: they verify and gate whatever the Source returns.
//
// Errors say what failed (an upstream answer, a timeout, content that failed
// verification); the handler maps them to the OCI answer.
type Source interface {
	ManifestSource
	BlobSource
	ListingSource
}

// ManifestSource reads manifests.
type ManifestSource interface {
	// Manifest fetches (GET) a manifest by tag or digest, forwarding accept (the
	// client's Accept header lines) unchanged. The bytes are capped at
	// MaxManifestBytes and digest-checked: against the digest asked for, and against
	// the Docker-Content-Digest the upstream announced. Manifest.Digest is the sha256
	// of the bytes, computed, never copied from a header.
	Manifest(ctx context.Context, repo, reference string, accept []string) (*Manifest, error)
	// HeadManifest asks (HEAD) which manifest a reference names, without the bytes.
	// The answer is an unverified hint: it may only be used to find verified bytes that
	// are already held, by digest. Descriptor.Digest is empty when the upstream did not
	// say.
	HeadManifest(ctx context.Context, repo, reference string, accept []string) (Descriptor, error)
}

// ManifestHolder is an optional upgrade of a ManifestSource that holds verified manifest
// bytes by digest (the handler's in-memory cache, a content store). The handler answers
// a HEAD by tag with it: the upstream's HEAD picks the digest, the held bytes (which the
// gate needs) answer. A decorator around a Source forwards it to the inner Source.
type ManifestHolder interface {
	// HeldManifest returns the verified manifest dgst of repo when it is held, without
	// contacting an upstream: Bytes hash to dgst, and Digest is dgst.
	HeldManifest(ctx context.Context, repo string, dgst digest.Digest) (*Manifest, bool)
}

// ManifestKeeper is an optional upgrade of a ManifestSource that keeps what the gate
// admitted (a content store). The handler calls it after the gate allowed a manifest and
// before answering, so that another replica sharing the store can decide on the blobs at
// once. ref is what the client asked for (a tag is confirmed to name m). An error is the
// keeper's to log: the answer is served whether or not the manifest could be kept. A
// decorator around a Source forwards it to the inner Source.
type ManifestKeeper interface {
	KeepManifest(ctx context.Context, repo, ref string, m *Manifest)
}

// BlobSource reads blobs.
type BlobSource interface {
	// Blob opens the whole blob for streaming; never a part of it, which could not be
	// verified on its own. The body is NOT verified by the Source: the caller hashes it
	// while streaming (the proxy does, so every Source is checked the same way).
	Blob(ctx context.Context, repo string, dgst digest.Digest) (*Blob, error)
	// StatBlob answers a HEAD for a blob: its size and media type.
	StatBlob(ctx context.Context, repo string, dgst digest.Digest) (Descriptor, error)
}

// ListingSource reads the read-only listings: tags and referrers.
type ListingSource interface {
	// Tags lists a repository's tags. query carries only the pagination parameters n
	// and last.
	Tags(ctx context.Context, repo string, query url.Values) (*Listing, error)
	// Referrers lists the manifests whose subject is dgst. query carries only
	// artifactType. An upstream without the referrers API yields an error wrapping
	// ErrReferrersUnsupported.
	Referrers(ctx context.Context, repo string, dgst digest.Digest, query url.Values) (*Listing, error)
}

// Manifest is a verified manifest. Values are shared between concurrent requests and
// caches: never modify one.
type Manifest struct {
	// ContentType is the upstream's Content-Type header, exactly as sent.
	ContentType string
	// Digest is the sha256 of Bytes.
	Digest digest.Digest
	Bytes  []byte
	// Kept is true when the bytes were read back from a content store (re-hashed), not
	// from the upstream: there is nothing new to keep.
	Kept bool
	// Stale is true when a tag was resolved from a content store's last confirmation
	// because the upstream could not be asked: the decision line says so.
	Stale bool
}

// Descriptor describes content without its bytes (a HEAD answer).
type Descriptor struct {
	// ContentType is the upstream's Content-Type header, exactly as sent.
	ContentType string
	Digest      digest.Digest
	// Size is the Content-Length, or -1 when unknown.
	Size int64
	// Stale is true when a tag was resolved from a content store's last confirmation
	// because the upstream could not be asked.
	Stale bool
}

// Blob is an open whole blob, unverified. The caller closes Body.
type Blob struct {
	Body io.ReadCloser
	// ContentType is the media type the upstream labelled the blob with, as sent.
	ContentType string
	// Size is the announced length of Body, or -1 when the upstream did not say.
	Size int64
}

// VerifiedBlobSource is an optional upgrade of a BlobSource that holds blobs already
// verified against their digest (a content store on disk). The handler discovers it by
// type assertion and, after the gate admitted the blob, serves what it opens as it is,
// seeking for a range (http.ServeContent: ranges and sendfile without faking 206
// answers). A decorator around a Source forwards it to the inner Source.
type VerifiedBlobSource interface {
	// OpenVerified opens blob dgst of repo when it is held, without contacting an
	// upstream. A blob that is not held is an error wrapping ErrNotHeld: the caller
	// then streams it through Blob and verifies it itself. Any other error fails the
	// request.
	OpenVerified(ctx context.Context, repo string, dgst digest.Digest) (*VerifiedBlob, error)
}

// VerifiedBlob is an open held blob whose bytes hash to the digest it was opened by.
// The caller closes Body.
type VerifiedBlob struct {
	Body io.ReadSeekCloser
	// Size is the exact length of Body.
	Size int64
	// ContentType is the media type the blob was labelled with when it was stored;
	// empty when unknown.
	ContentType string
	// ModTime is when the blob was stored; the zero time when unknown (no
	// Last-Modified is then sent, and an If-Range never matches).
	ModTime time.Time
}

// Listing is a tags/list or referrers answer, read whole (capped at MaxListingBytes).
type Listing struct {
	ContentType string
	Body        []byte
	// Link is the upstream's Link header (pagination), as sent; the handler rewrites
	// it to point at pullgate.
	Link string
	// FiltersApplied is the upstream's OCI-Filters-Applied header (referrers).
	FiltersApplied string
}
