// Package verify checks content from an untrusted source while it streams: a Reader
// hashes every byte it passes on, refuses to pass more than the announced size, and
// fails at the end unless both the size and the digest match. Callers must treat the
// bytes as unverified until Read has returned io.EOF.
package verify

import (
	// go-digest only knows the algorithms whose hash is linked in.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/opencontainers/go-digest"
)

// ErrDigestMismatch and ErrSizeMismatch are wrapped by the errors a Reader returns.
var (
	ErrDigestMismatch = errors.New("digest mismatch")
	ErrSizeMismatch   = errors.New("size mismatch")
)

// Reader passes through exactly size bytes of r (or, when the size is unknown, all of
// r) and returns io.EOF only if they hash to want; otherwise it returns an error
// wrapping ErrSizeMismatch or ErrDigestMismatch.
type Reader struct {
	r      io.Reader
	closer io.Closer
	want   digest.Digest
	h      hash.Hash
	left   int64 // bytes still expected; negative when the size is unknown
	err    error // sticky final result
}

// NewReader wraps rc. size is the number of bytes announced (Content-Length), or -1
// when nothing was announced. Close closes rc.
func NewReader(rc io.ReadCloser, want digest.Digest, size int64) (*Reader, error) {
	if err := want.Validate(); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if size < 0 {
		size = -1
	}
	return &Reader{r: rc, closer: rc, want: want, h: want.Algorithm().Hash(), left: size}, nil
}

// Read implements io.Reader. The bytes that complete the announced size are only
// passed on once the digest matched: on a mismatch they are withheld, so a consumer that
// relays the bytes (with the size announced up front) never delivers a complete body.
func (v *Reader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.left == 0 {
		v.err = v.finish()
		return 0, v.err
	}
	if v.left < 0 {
		return v.readUnknownSize(p)
	}
	if int64(len(p)) > v.left {
		p = p[:v.left]
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.left -= int64(n)
	switch {
	case v.left == 0:
		if v.err = v.finish(); v.err != io.EOF {
			return 0, v.err
		}
		return n, nil
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		v.err = fmt.Errorf("verify %s: body ended %d bytes early: %w", v.want, v.left, ErrSizeMismatch)
		return n, v.err
	case err != nil:
		v.err = err
		return n, err
	}
	return n, nil
}

// readUnknownSize reads when no size was announced: everything up to EOF, whose digest
// must match. The last bytes cannot be told apart from the others here, so a consumer
// relaying them must not announce a length (it sends chunks) and must abort on error.
func (v *Reader) readUnknownSize(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	switch {
	case errors.Is(err, io.EOF):
		v.err = v.checkDigest()
		return n, v.err
	case err != nil:
		v.err = err
	}
	return n, err
}

// finish runs once all announced bytes were read: the source must be at its end and the
// digest must match.
func (v *Reader) finish() error {
	var one [1]byte
	n, err := io.ReadFull(v.r, one[:])
	if n > 0 {
		return fmt.Errorf("verify %s: body longer than announced: %w", v.want, ErrSizeMismatch)
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	return v.checkDigest()
}

// checkDigest returns io.EOF if the bytes read hash to the digest wanted.
func (v *Reader) checkDigest() error {
	if got := digest.NewDigest(v.want.Algorithm(), v.h); got != v.want {
		return fmt.Errorf("verify: got %s, want %s: %w", got, v.want, ErrDigestMismatch)
	}
	return io.EOF
}

// Close closes the underlying reader.
func (v *Reader) Close() error { return v.closer.Close() }
