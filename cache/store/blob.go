package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
)

// BlobInfo describes kept content.
type BlobInfo struct {
	Size    int64
	ModTime time.Time
}

// Blob is kept content opened for serving.
type Blob struct {
	// Body is, for the filesystem driver, the *os.File itself (so http.ServeContent can use
	// sendfile); for the others a seeker that reopens the driver's Reader at the offset.
	Body    io.ReadSeekCloser
	Size    int64
	ModTime time.Time
	// Checked: hashed whole since this process started, and the object is still the one
	// that was hashed (objectID), so it may be served without hashing it again.
	Checked bool

	id objectID // the object opened, for marking it checked
}

// StatBlob returns the size and time of kept content; ErrNotFound when not kept.
func (s *Store) StatBlob(ctx context.Context, d digest.Digest) (BlobInfo, error) {
	if err := checkDigest(d); err != nil {
		return BlobInfo{}, err
	}
	fi, err := s.d.Stat(ctx, blobPath(d))
	if err != nil {
		return BlobInfo{}, s.wrapErr("blob "+d.String(), err)
	}
	if fi.IsDir() {
		return BlobInfo{}, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	return BlobInfo{Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// OpenBlob opens kept content; ErrNotFound when not kept.
func (s *Store) OpenBlob(ctx context.Context, d digest.Digest) (*Blob, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	if s.local != "" {
		f, err := os.Open(filepath.Join(s.local, filepath.FromSlash(blobPath(d))))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("blob %s: %w", d, ErrNotFound)
			}
			return nil, s.wrapErr("blob "+d.String(), err)
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			f.Close()
			return nil, fmt.Errorf("blob %s: not a regular file: %w", d, ErrNotFound)
		}
		id := fileObjectID(fi)
		return &Blob{Body: f, Size: fi.Size(), ModTime: fi.ModTime(), Checked: s.isChecked(d, id), id: id}, nil
	}
	info, err := s.StatBlob(ctx, d)
	if err != nil {
		return nil, err
	}
	id := driverObjectID(info.Size, info.ModTime)
	return &Blob{Body: &driverReader{ctx: context.WithoutCancel(ctx), d: s.d, path: blobPath(d), size: info.Size},
		Size: info.Size, ModTime: info.ModTime, Checked: s.isChecked(d, id), id: id}, nil
}

// driverReader is a ReadSeekCloser over a driver object: a Seek closes the open Reader and
// the next Read opens one at the new offset.
type driverReader struct {
	ctx  context.Context
	d    storagedriver.StorageDriver
	path string
	size int64
	off  int64
	rc   io.ReadCloser
}

func (r *driverReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	if r.rc == nil {
		rc, err := r.d.Reader(r.ctx, r.path, r.off)
		if err != nil {
			return 0, err
		}
		r.rc = rc
	}
	if rem := r.size - r.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := r.rc.Read(p)
	r.off += int64(n)
	if err == io.EOF && r.off < r.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (r *driverReader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.off + offset
	case io.SeekEnd:
		abs = r.size + offset
	default:
		return 0, errors.New("store: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("store: negative position")
	}
	if abs != r.off && r.rc != nil {
		r.rc.Close()
		r.rc = nil
	}
	r.off = abs
	return abs, nil
}

func (r *driverReader) Close() error {
	if r.rc != nil {
		err := r.rc.Close()
		r.rc = nil
		return err
	}
	return nil
}

// markChecked remembers that d, as object id, was hashed whole and matched since start.
func (s *Store) markChecked(d digest.Digest, id objectID) { s.checked.Add(d, id) }

// isChecked reports whether d was checked since start as the object id is now.
func (s *Store) isChecked(d digest.Digest, id objectID) bool {
	was, ok := s.checked.Get(d)
	return ok && was == id
}

// keptObjectID is what the kept object of d is now.
func (s *Store) keptObjectID(ctx context.Context, d digest.Digest) (objectID, error) {
	if s.local != "" {
		fi, err := os.Stat(filepath.Join(s.local, filepath.FromSlash(blobPath(d))))
		if err != nil {
			return objectID{}, err
		}
		return fileObjectID(fi), nil
	}
	info, err := s.StatBlob(ctx, d)
	if err != nil {
		return objectID{}, err
	}
	return driverObjectID(info.Size, info.ModTime), nil
}

// DropBlob removes kept content that no longer matches its digest, with one error line.
func (s *Store) DropBlob(ctx context.Context, d digest.Digest, why string) {
	if checkDigest(d) != nil {
		return
	}
	s.log.Error("content store: dropping corrupt content; it will be fetched again", "store", s.desc,
		"digest", d.String(), "reason", why)
	s.corrupt.Add(1)
	s.deleteContent(context.WithoutCancel(ctx), d)
}

// LinkBlob records that registry/repo served d (distribution's _layers link).
func (s *Store) LinkBlob(ctx context.Context, registry, repo string, d digest.Digest) error {
	if err := checkNamesDigest(registry, repo, d); err != nil {
		return err
	}
	p := layerLinkPath(registry, repo, d)
	if ok, err := s.exists(ctx, p); err == nil && ok {
		return nil
	}
	return s.wrapErr(fmt.Sprintf("linking %s in %s/%s", d, registry, repo), s.putAtomic(ctx, p, []byte(d.String())))
}

// verifyCall is one VerifyBlob in flight; concurrent callers for the same digest wait for it.
type verifyCall struct {
	done chan struct{}
	err  error
}

// VerifyBlob hashes kept content whole now: a match marks it checked; a mismatch drops it
// and returns ErrCorrupt. Concurrent calls for one digest share one pass.
func (s *Store) VerifyBlob(ctx context.Context, d digest.Digest) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	if id, err := s.keptObjectID(ctx, d); err == nil && s.isChecked(d, id) {
		return nil
	}
	s.mu.Lock()
	c, ok := s.verifies[d]
	if !ok {
		c = &verifyCall{done: make(chan struct{})}
		s.verifies[d] = c
		go func() {
			c.err = s.verify(context.WithoutCancel(ctx), d)
			s.mu.Lock()
			delete(s.verifies, d)
			s.mu.Unlock()
			close(c.done)
		}()
	}
	s.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) verify(ctx context.Context, d digest.Digest) error {
	b, err := s.OpenBlob(ctx, d)
	if err != nil {
		return err
	}
	defer b.Body.Close()
	v := d.Verifier()
	n, err := io.Copy(v, b.Body)
	if err != nil {
		return s.wrapErr("verifying blob "+d.String(), err)
	}
	if !v.Verified() {
		s.DropBlob(ctx, d, fmt.Sprintf("its %d bytes do not hash to its digest", n))
		return fmt.Errorf("blob %s: kept bytes do not match: %w", d, ErrCorrupt)
	}
	s.markChecked(d, b.id)
	return nil
}
