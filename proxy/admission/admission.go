// Package admission is the contract between pullgate's HTTP handler and the gate that
// admits what it serves (proxy/enforce): the requests the handler asks about and the
// decisions it gets back. It sits below both, so that neither imports the other.
package admission

import (
	"context"

	"github.com/opencontainers/go-digest"
)

// Gate is the enforcement seam: every manifest and blob pullgate is about to serve is
// admitted by it first. Implementations fail closed: a Decision whose Allow is false, or
// any error, means nothing is served.
//
// A returned error means the gate could not decide (a signature source was unreachable,
// an upstream failed while fetching signatures); the handler answers 503 UNAVAILABLE and
// the outcome must not be cached by the gate.
type Gate interface {
	// AdmitManifest decides on manifest bytes that were fetched and digest-checked; if it
	// allows, exactly these bytes are served.
	AdmitManifest(ctx context.Context, m *ManifestRequest) (Decision, error)
	// AdmitBlob decides before any byte of a blob is fetched from upstream.
	AdmitBlob(ctx context.Context, b *BlobRequest) (Decision, error)
}

// ListingGate is optionally implemented by a Gate that also decides on listings (tags/list
// and referrers) of a repository, before the upstream is asked: a repository whose every
// image the policy rejects must not disclose its tags and digests. The handler finds it
// by type assertion, so a Gate without it serves listings as before. A returned error
// means it could not decide (503).
type ListingGate interface {
	AdmitListing(ctx context.Context, t Target) (Decision, error)
}

// Decision is a gate's answer. The zero value denies.
type Decision struct {
	Allow bool
	// Reason is the human sentence put in the DENIED error message: which requirement
	// failed, for which identity, and why.
	Reason string
	// Detail is serialised as the "detail" member of the OCI error.
	Detail any
	// Unenforced is true when Allow is true only because the policy's denial falls in a
	// warn scope: the content is served but not vouched for, so it is never kept.
	Unenforced bool
}

// Target names the upstream object a request is about.
type Target struct {
	// Registry is the upstream's configured registry name (docker.io, 127.0.0.1:5001):
	// the name policy scopes and signature identities use.
	Registry string
	// Repository is the repository path on that registry (library/alpine).
	Repository string
	// ClientAddr is the remote address of the client, for logs.
	ClientAddr string
	// User is the name the client authenticated as (auth.htpasswd), for logs; empty
	// without client authentication.
	User string
}

// userKey is the context key of the authenticated user's name.
type userKey struct{}

// WithUser returns ctx carrying the name the client authenticated as. The handler
// copies it into every Target, so that access and decision lines name the user.
func WithUser(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, userKey{}, user)
}

// UserFrom returns the name WithUser put in ctx, or "".
func UserFrom(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}

// ManifestRequest describes a manifest about to be served.
type ManifestRequest struct {
	Target
	// Reference is what the client asked for: a tag, or a digest string.
	Reference string
	// Digest is the sha256 of Bytes (always computed by pullgate, never taken from a header).
	Digest digest.Digest
	// MediaType is the upstream's Content-Type without parameters.
	MediaType string
	// Bytes are the exact bytes that will be served if the gate allows.
	Bytes []byte
	// Head is true for HEAD requests (the bytes are still fetched and checked).
	Head bool
	// Stale is true when the tag was resolved from a content store's last confirmation
	// because the upstream could not be asked; the decision line says so.
	Stale bool
}

// BlobRequest describes a blob about to be served.
type BlobRequest struct {
	Target
	Digest digest.Digest
	Head   bool
}

// UnreadableError is a gate's or a signature lister's error when what it needed
// (signatures, an attachment's blobs) could not be read. The handler answers 503
// UNAVAILABLE whatever an upstream answered meanwhile: its 403 on a .sig tag or 404 on
// a listed referrer says nothing about the content the client asked for. Err is the
// cause, kept for logs and errors.As.
type UnreadableError struct {
	Err error
}

func (e *UnreadableError) Error() string { return e.Err.Error() }

func (e *UnreadableError) Unwrap() error { return e.Err }
