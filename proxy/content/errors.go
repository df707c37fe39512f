package content

import (
	"errors"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/pullgate/pullgate/proxy/verify"
)

// Sentinel causes, for errors.Is. Sources wrap them; the handler picks the answer.
var (
	// ErrDigestMismatch: bytes from an upstream do not hash to the digest they were
	// requested or announced by.
	ErrDigestMismatch = verify.ErrDigestMismatch
	// ErrSizeMismatch: an upstream sent more or fewer bytes than it announced.
	ErrSizeMismatch = verify.ErrSizeMismatch
	// ErrManifestTooLarge: a manifest is larger than MaxManifestBytes.
	ErrManifestTooLarge = errors.New("manifest too large")
	// ErrReferrersUnsupported: the upstream has no referrers API (it answered 404), so
	// the referrers tag schema must be used instead.
	ErrReferrersUnsupported = errors.New("upstream has no referrers API")
	// ErrNotHeld: a VerifiedBlobSource does not hold the blob asked for; it is to be
	// read through Blob and verified while streaming.
	ErrNotHeld = errors.New("content not held")
	// ErrReferrersTagNotIndex: the manifest under a referrers tag is not an image index.
	ErrReferrersTagNotIndex = errors.New("the referrers tag does not hold an image index")
)

// OfflineError says that a content store does not hold what was asked for and the
// upstream, marked offline, is not contacted. Code is the not-found code of what was asked
// for (MANIFEST_UNKNOWN, BLOB_UNKNOWN, NAME_UNKNOWN); the handler answers it, with this
// error's text, as a 404.
type OfflineError struct {
	Registry string
	// Object is the repository, with ":ref" when a reference was asked for.
	Object string
	Code   errcode.ErrorCode
}

func (e *OfflineError) Error() string {
	return e.Registry + "/" + e.Object + " is not kept in the content store, and upstream " + e.Registry + " is not contacted"
}

// ErrorCode names the OCI code, so that IsNotFound holds.
func (e *OfflineError) ErrorCode() errcode.ErrorCode { return e.Code }

// coded is an error that names an OCI error code: an upstream's answer, or the
// handler's. Reading the code through this interface keeps this package free of both.
type coded interface {
	error
	ErrorCode() errcode.ErrorCode
}

// Code is the OCI error code err carries (the first in its chain that has one), or
// errcode.ErrorCodeUnknown.
func Code(err error) errcode.ErrorCode {
	var c coded
	if errors.As(err, &c) {
		return c.ErrorCode()
	}
	return errcode.ErrorCodeUnknown
}

// IsNotFound reports whether err says the object (or its repository) does not exist.
func IsNotFound(err error) bool {
	if err == nil {
		return false
	}
	switch Code(err) {
	case errcode.ErrorCodeManifestUnknown, errcode.ErrorCodeBlobUnknown, errcode.ErrorCodeNameUnknown:
		return true
	}
	return false
}

// unreachable is an error that says whether the upstream gave no usable answer at all
// (refused connection, timeout, a 5xx): a content store may then answer from what it
// kept. Reading it through this interface keeps this package free of the upstream client.
type unreachable interface {
	error
	Unreachable() bool
}

// IsUnreachable reports whether err says the upstream could not be asked: no answer, a
// deadline, or a server error. A 4xx answer (not found, denied) is an answer.
func IsUnreachable(err error) bool {
	var u unreachable
	if errors.As(err, &u) {
		return u.Unreachable()
	}
	return false
}
