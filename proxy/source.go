package proxy

import (
	"context"
	"io"

	"github.com/opencontainers/go-digest"
)

// Source is where the handlers read registry content. The upstream client implements it;
// a content cache (for sites that must keep working when the upstream is unreachable) can
// later decorate it read-through without the handlers changing.
//
// Errors that carry an OCI error code implement interface{ ErrorCode() errcode.ErrorCode }
// (distribution's errcode.Error does) and are answered with that code.
type Source interface {
	// Manifest fetches a manifest by tag or digest, forwarding accept unchanged. The bytes
	// are size-capped and their digest computed and checked (against the digest asked for,
	// and against the upstream's Docker-Content-Digest).
	Manifest(ctx context.Context, repo, reference string, accept []string) (*Manifest, error)
	// Blob opens a blob for streaming. For a full read the body is hashed as it is read
	// and fails at EOF on a mismatch; rangeHeader, when not empty, is forwarded.
	Blob(ctx context.Context, repo string, dgst digest.Digest, rangeHeader string) (*Blob, error)
}

// Manifest is a verified manifest.
type Manifest struct {
	// ContentType is the upstream's Content-Type header, as sent.
	ContentType string
	Digest      digest.Digest
	Bytes       []byte
}

// Blob is an open blob response.
type Blob struct {
	Body io.ReadCloser
	// Status is 200, or 206 for a range answer.
	Status        int
	ContentType   string
	ContentLength int64
	ContentRange  string
}
