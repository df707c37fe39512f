package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
)

// MismatchError is Stage's answer to bytes that do not match the blob: how many were read
// (at most Size+1) and what they hash to. It wraps ErrMismatch.
type MismatchError struct {
	Digest digest.Digest
	Size   int64 // expected
	Read   int64
	Got    digest.Digest
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("blob %s: %d bytes hashing to %s, expected %d bytes", e.Digest, e.Read, e.Got, e.Size)
}

func (e *MismatchError) Unwrap() error { return ErrMismatch }

// Staged is a blob that Stage wrote to the store's staging and matched against its digest
// and size. No reader sees it until Commit; Discard removes it. A Staged is used by one
// goroutine.
type Staged struct {
	s    *Store
	d    digest.Digest
	size int64
	file *os.File
	done bool
}

// Stage writes the blob d of size bytes read from r into staging, hashing the bytes as
// they are written, and reads no more than size+1 bytes of r. It returns the staged blob
// only when those bytes are exactly size bytes hashing to d; otherwise a *MismatchError
// (or the read, write or context error), and nothing of it is left in staging. What is
// staged is invisible to every reader of the store until Commit: a caller stages the
// blobs of an image, and commits them only once the image is accepted.
func (s *Store) Stage(ctx context.Context, d digest.Digest, size int64, r io.Reader) (*Staged, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	if size < 0 {
		return nil, fmt.Errorf("blob %s: negative size %d: %w", d, size, ErrInvalid)
	}
	if s.closed.Load() {
		return nil, fmt.Errorf("blob %s: the content store is closed: %w", d, ErrUnavailable)
	}
	spool, err := s.createSpool()
	if err != nil {
		return nil, fmt.Errorf("blob %s: creating a staging file in %s: %w", d, s.spoolDir, err)
	}
	st := &Staged{s: s, d: d, size: size, file: spool}
	if err := st.write(ctx, io.LimitReader(r, size+1)); err != nil {
		st.Discard()
		return nil, err
	}
	return st, nil
}

func (st *Staged) write(ctx context.Context, r io.Reader) error {
	h := sha256.New()
	buf := make([]byte, copyBufferSize)
	var w io.Writer = st.file
	if st.s.spoolWrap != nil {
		w = st.s.spoolWrap(st.file)
	}
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, err := w.Write(buf[:m]); err != nil {
				return fmt.Errorf("blob %s: writing to staging: %w", st.d, err)
			}
			h.Write(buf[:m])
			n += int64(m)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("blob %s: reading after %d bytes: %w", st.d, n, rerr)
		}
	}
	if got := digest.NewDigest(digest.SHA256, h); n != st.size || got != st.d {
		return &MismatchError{Digest: st.d, Size: st.size, Read: n, Got: got}
	}
	return nil
}

// Commit makes the staged blob kept content, visible under its digest (a rename with the
// filesystem driver). When the blob was kept meanwhile the kept one is left as it is.
// The staged file is gone afterwards, whatever the outcome.
func (st *Staged) Commit(ctx context.Context) error {
	if st.done {
		return errors.New("blob " + st.d.String() + ": staged blob already committed or discarded")
	}
	defer st.Discard()
	s := st.s
	if info, err := s.StatBlob(ctx, st.d); err == nil && info.Size == st.size {
		return nil
	}
	kept, err := s.commitFile(ctx, st.d, st.file, st.size)
	if err != nil {
		return fmt.Errorf("keeping blob %s: %w", st.d, err)
	}
	if kept != "" {
		st.file.Close()
		st.done = true // moved: nothing left to remove
	}
	return nil
}

// Discard removes the staged blob; it is a no-op after Commit or a first Discard.
func (st *Staged) Discard() {
	if st.done {
		return
	}
	st.done = true
	st.file.Close()
	os.Remove(st.file.Name())
}
