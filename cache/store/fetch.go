package store

import (
	"context"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/opencontainers/go-digest"
)

// ErrMismatch: a body (from the upstream, or kept content read back through Fetch) did not
// match its digest or announced size; the bytes were not kept and the reader ends with it.
var ErrMismatch = errors.New("body does not match its digest or size")

// Fetch is the shared download of a blob. See the package comment for the whole story; in
// short: one call of open per missing digest however many callers join, the body spooled
// and hashed as it streams to every caller, committed only when digest and size match, and
// relayed unkept when the store cannot be written. The returned size is the announced one,
// or -1. open's error is returned as is.
func (s *Store) Fetch(ctx context.Context, d digest.Digest, open func(ctx context.Context) (io.ReadCloser, int64, error)) (io.ReadCloser, int64, error) {
	if err := checkDigest(d); err != nil {
		return nil, 0, err
	}
	for range 3 {
		if b, err := s.OpenBlob(ctx, d); err == nil {
			return s.keptBody(ctx, b, d), b.Size, nil
		}
		if s.isUnwritable() {
			return s.relay(ctx, d, open)
		}
		s.mu.Lock()
		f, ok := s.fetches[d]
		if !ok {
			if len(s.fetches) >= MaxConcurrentFetches || s.closed.Load() {
				s.mu.Unlock()
				return s.relay(ctx, d, open)
			}
			f = &fetch{s: s, d: d, open: open, ready: make(chan struct{}), notify: make(chan struct{}), size: -1}
			s.fetches[d] = f
			s.wg.Add(1)
			go f.run(ctx)
		}
		s.mu.Unlock()
		select {
		case <-f.ready:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
		if f.openErr != nil {
			return nil, 0, f.openErr
		}
		if f.elsewhere {
			continue // another replica committed it: served from the store on the next turn
		}
		if f.relay {
			return s.relay(ctx, d, open)
		}
		r, err := f.join(ctx, open)
		if errors.Is(err, errGone) {
			continue // committed meanwhile: served from the store on the next turn
		}
		if err != nil {
			return nil, 0, err
		}
		return r, f.size, nil
	}
	return s.relay(ctx, d, open)
}

var errGone = errors.New("download finished")

type fetchState int

const (
	fetchRunning  fetchState = iota
	fetchVerified            // every byte spooled and matched: readers end with EOF
	fetchFailed              // readers end with err at once
	fetchFallback            // the spool failed at written: readers go on from the upstream themselves
)

// fetch is one shared download in flight.
type fetch struct {
	s    *Store
	d    digest.Digest
	open func(ctx context.Context) (io.ReadCloser, int64, error)

	ready   chan struct{} // closed once open returned (or the spool could not be made)
	openErr error
	relay   bool // the spool could not be made: every caller relays for itself
	// elsewhere: another replica sharing the store committed the blob while this one
	// waited for its download lease.
	elsewhere bool
	size      int64 // announced, or -1

	mu        sync.Mutex
	path      string // where joiners open the bytes: the spool, after a local commit the kept file
	written   int64
	state     fetchState
	err       error
	hashState []byte        // fetchFallback: the hash of the first written bytes
	notify    chan struct{} // closed and replaced at every change
	gone      bool          // no longer joinable
}

// advance publishes progress to the readers.
func (f *fetch) advance(n int64, state fetchState, err error) {
	f.mu.Lock()
	f.written += n
	if state != fetchRunning {
		f.state, f.err = state, err
	}
	close(f.notify)
	f.notify = make(chan struct{})
	f.mu.Unlock()
}

func (s *Store) createSpool() (*os.File, error) {
	if err := os.MkdirAll(s.spoolDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.spoolDir, spoolPrefix+"*")
	if err != nil {
		return nil, err
	}
	f.Chmod(0o644) // becomes the kept file with the filesystem driver
	return f, nil
}

func (f *fetch) run(callerCtx context.Context) {
	s := f.s
	defer s.wg.Done()
	// Detached from the callers: a client that goes away does not cancel the download the
	// others read. open's own deadlines bound it; Close stops it.
	ctx, cancel := context.WithCancel(context.WithoutCancel(callerCtx))
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	if s.leases {
		out, err := s.awaitLease(ctx, f.d)
		switch {
		case err != nil:
			f.openErr = fmt.Errorf("blob %s: waiting for another replica's download: %w", f.d, err)
			close(f.ready)
			s.removeFetch(f)
			return
		case out == leaseKept:
			f.elsewhere = true
			close(f.ready)
			s.removeFetch(f)
			return
		case out == leaseTaken:
			defer s.holdLease(ctx, f.d)()
		}
	}

	spool, err := s.createSpool()
	if err != nil {
		s.markUnwritable("creating a spool file in "+s.spoolDir, err)
		f.relay = true
		close(f.ready)
		s.removeFetch(f)
		return
	}
	f.path = spool.Name()
	spoolGone := false
	defer func() {
		spool.Close()
		if !spoolGone {
			os.Remove(f.path)
		}
	}()

	body, size, err := f.open(ctx)
	if err != nil {
		f.openErr = err
		close(f.ready)
		s.removeFetch(f)
		return
	}
	defer body.Close()
	if size >= 0 {
		f.size = size
	}
	close(f.ready)

	fail := func(err error) {
		f.advance(0, fetchFailed, err)
		s.removeFetch(f)
	}
	h := sha256.New()
	buf := make([]byte, copyBufferSize)
	var written int64
	var sw io.Writer = spool
	if s.spoolWrap != nil {
		sw = s.spoolWrap(spool)
	}
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if f.size >= 0 && written+int64(n) > f.size {
				fail(fmt.Errorf("blob %s: upstream sent more than the announced %d bytes: %w", f.d, f.size, ErrMismatch))
				return
			}
			if f.size < 0 && written+int64(n) > MaxUnannouncedBlobSize {
				fail(fmt.Errorf("blob %s: upstream sent more than %d bytes without announcing a size: %w", f.d, int64(MaxUnannouncedBlobSize), ErrMismatch))
				return
			}
			if _, werr := sw.Write(buf[:n]); werr != nil {
				f.fallback(h, written, werr)
				return
			}
			h.Write(buf[:n])
			written += int64(n)
			f.advance(int64(n), fetchRunning, nil)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			fail(fmt.Errorf("blob %s: upstream body cut short after %d bytes: %w", f.d, written, rerr))
			return
		}
	}
	if f.size >= 0 && written != f.size {
		fail(fmt.Errorf("blob %s: upstream sent %d bytes, announced %d: %w", f.d, written, f.size, ErrMismatch))
		return
	}
	if got := digest.NewDigest(digest.SHA256, h); got != f.d {
		fail(fmt.Errorf("blob %s: upstream body hashes to %s: %w", f.d, got, ErrMismatch))
		return
	}
	// Readers may finish now; the commit goes on without them. No fsync: a kill -9 loses no
	// written page, and after a power loss every blob is hashed again on its first serve.
	f.advance(0, fetchVerified, nil)
	if err := s.commitSpool(ctx, f, spool, written); err != nil {
		s.markUnwritable("keeping blob "+f.d.String(), err)
	} else {
		spoolGone = s.local != ""
	}
	s.removeFetch(f)
}

// commitSpool makes the verified spool the kept content (commitFile); with the filesystem
// driver joiners then open the kept file.
func (s *Store) commitSpool(ctx context.Context, f *fetch, spool *os.File, size int64) error {
	if s.local != "" {
		f.mu.Lock()
		defer f.mu.Unlock()
	}
	kept, err := s.commitFile(ctx, f.d, spool, size)
	if err == nil && kept != "" {
		f.path = kept
	}
	return err
}

// commitFile makes a verified spool file the kept content of d: a rename with the
// filesystem driver (the spool is under its _uploads; the kept file's path is returned),
// else an upload (to staging and a move, unless the driver's writer is atomic; "" is
// returned and the spool stays where it is). A kept blob is counted, remembered as
// checked and may start an eviction.
func (s *Store) commitFile(ctx context.Context, d digest.Digest, spool *os.File, size int64) (string, error) {
	kept, err := s.putFile(ctx, d, spool, size)
	if err == nil {
		// What was written is what was hashed; remembered as the object it became.
		if id, serr := s.keptObjectID(ctx, d); serr == nil && id.size == size {
			s.markChecked(d, id)
		}
		s.bytesKept.Add(size)
		s.kickEvict()
	}
	return kept, err
}

// putFile is commitFile's write to the driver.
func (s *Store) putFile(ctx context.Context, d digest.Digest, spool *os.File, size int64) (string, error) {
	final := blobPath(d)
	if s.local != "" {
		if err := s.d.Move(ctx, uploadsPath+"/"+filepath.Base(spool.Name()), final); err != nil {
			return "", err
		}
		return filepath.Join(s.local, filepath.FromSlash(final)), nil
	}
	target := final
	if s.d.Name() != "s3aws" { // s3 makes an object visible only at Commit
		target = uploadsPath + "/" + randomName()
	}
	w, err := s.d.Writer(ctx, target, false)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(w, io.NewSectionReader(spool, 0, size)); err != nil {
		w.Cancel(context.WithoutCancel(ctx))
		w.Close()
		return "", err
	}
	if err := w.Commit(ctx); err != nil {
		w.Cancel(context.WithoutCancel(ctx))
		w.Close()
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	if target != final {
		if err := s.d.Move(ctx, target, final); err != nil {
			s.d.Delete(context.WithoutCancel(ctx), target)
			return "", err
		}
	}
	return "", nil
}

// fallback: the spool could not be written (disk full). Readers read what was spooled,
// then each fetches the rest itself, its hash continued from the shared one.
func (f *fetch) fallback(h hash.Hash, written int64, err error) {
	f.s.markUnwritable("spooling blob "+f.d.String()+" in "+f.s.spoolDir, err)
	st, merr := h.(encoding.BinaryMarshaler).MarshalBinary()
	f.mu.Lock()
	if merr != nil {
		f.state, f.err = fetchFailed, fmt.Errorf("blob %s: spool failed: %w", f.d, err)
	} else {
		f.state, f.hashState = fetchFallback, st
	}
	close(f.notify)
	f.notify = make(chan struct{})
	f.mu.Unlock()
	f.s.removeFetch(f)
}

func (s *Store) removeFetch(f *fetch) {
	s.mu.Lock()
	if s.fetches[f.d] == f {
		delete(s.fetches, f.d)
	}
	s.mu.Unlock()
	f.mu.Lock()
	f.gone = true
	f.mu.Unlock()
}

// join opens a reader on the download.
func (f *fetch) join(ctx context.Context, open func(context.Context) (io.ReadCloser, int64, error)) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == fetchFailed {
		return nil, f.err
	}
	if f.gone {
		return nil, errGone
	}
	file, err := os.Open(f.path)
	if err != nil {
		return nil, errGone
	}
	return &fetchReader{f: f, ctx: ctx, file: file, open: open}, nil
}

// fetchReader streams a shared download to one caller.
type fetchReader struct {
	f     *fetch
	ctx   context.Context
	file  *os.File
	off   int64
	open  func(context.Context) (io.ReadCloser, int64, error)
	relay io.ReadCloser // after a fallback
}

func (r *fetchReader) Read(p []byte) (int, error) {
	if r.relay != nil {
		return r.relay.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	f := r.f
	for {
		f.mu.Lock()
		written, state, ferr, ch := f.written, f.state, f.err, f.notify
		f.mu.Unlock()
		if state == fetchFailed {
			return 0, ferr
		}
		if r.off < written {
			n := min(int64(len(p)), written-r.off)
			got, err := r.file.ReadAt(p[:n], r.off)
			r.off += int64(got)
			if got > 0 {
				return got, nil
			}
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		switch state {
		case fetchVerified:
			return 0, io.EOF
		case fetchFallback:
			if err := r.startFallback(); err != nil {
				return 0, err
			}
			return r.relay.Read(p)
		}
		select {
		case <-ch:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

// startFallback opens the upstream for this reader, skips what it already read from the
// spool, and relays the rest, hashed on from the shared state.
func (r *fetchReader) startFallback() error {
	f := r.f
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(f.hashState); err != nil {
		return fmt.Errorf("blob %s: %v", f.d, err)
	}
	body, size, err := r.open(r.ctx)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(io.Discard, body, r.off); err != nil {
		body.Close()
		return fmt.Errorf("blob %s: upstream body shorter than the %d bytes already sent: %w", f.d, r.off, ErrMismatch)
	}
	want := f.size
	if want < 0 {
		want = size
	}
	r.relay = &verifyingReader{r: body, d: f.d, h: h, n: r.off, size: want}
	return nil
}

func (r *fetchReader) Close() error {
	if r.relay != nil {
		r.relay.Close()
	}
	return r.file.Close()
}

// verifyingReader hashes a body as it passes and ends with ErrMismatch instead of EOF when
// the bytes or their count are wrong; onDone, if set, learns the outcome.
type verifyingReader struct {
	r      io.ReadCloser
	d      digest.Digest
	h      hash.Hash
	n      int64
	size   int64 // expected, or -1
	onDone func(ok bool)
	kept   bool // kept content: a mismatch is also ErrCorrupt
	done   bool
	err    error
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	if n > 0 {
		v.h.Write(p[:n])
		v.n += int64(n)
		if v.size >= 0 && v.n > v.size {
			v.finish(false)
			v.err = fmt.Errorf("blob %s: more than the announced %d bytes: %w", v.d, v.size, ErrMismatch)
			return 0, v.err
		}
	}
	if err == io.EOF {
		if v.size >= 0 && v.n != v.size {
			v.err = fmt.Errorf("blob %s: %d bytes, announced %d: %w", v.d, v.n, v.size, ErrMismatch)
		} else if got := digest.NewDigest(digest.SHA256, v.h); got != v.d {
			v.err = fmt.Errorf("blob %s: bytes hash to %s: %w", v.d, got, ErrMismatch)
		}
		v.finish(v.err == nil)
		if v.err != nil && v.kept {
			v.err = fmt.Errorf("kept %w: %w", v.err, ErrCorrupt)
		}
		if v.err != nil {
			return n, v.err
		}
	}
	return n, err
}

func (v *verifyingReader) finish(ok bool) {
	if !v.done && v.onDone != nil {
		v.onDone(ok)
	}
	v.done = true
}

func (v *verifyingReader) Close() error { return v.r.Close() }

// relay streams the upstream body to one caller unkept, still verified.
func (s *Store) relay(ctx context.Context, d digest.Digest, open func(context.Context) (io.ReadCloser, int64, error)) (io.ReadCloser, int64, error) {
	body, size, err := open(ctx)
	if err != nil {
		return nil, 0, err
	}
	if size < 0 {
		size = -1
	}
	return &verifyingReader{r: body, d: d, h: sha256.New(), size: size}, size, nil
}

// keptBody serves kept content through Fetch: as is when checked since start, else
// through VerifyingBody.
func (s *Store) keptBody(ctx context.Context, b *Blob, d digest.Digest) io.ReadCloser {
	if b.Checked {
		return b.Body
	}
	return s.VerifyingBody(ctx, b, d)
}

// VerifyingBody reads a kept blob whole while hashing it, for a whole-body serve of a blob
// not yet checked since start: at the end a match marks it checked; a mismatch drops it and
// ends the body with an error wrapping ErrCorrupt and ErrMismatch instead of EOF (the
// caller then aborts the response). Closing it closes b.Body.
func (s *Store) VerifyingBody(ctx context.Context, b *Blob, d digest.Digest) io.ReadCloser {
	return &verifyingReader{r: b.Body, d: d, h: sha256.New(), size: b.Size, kept: true, onDone: func(ok bool) {
		if ok {
			s.markChecked(d, b.id)
		} else {
			s.DropBlob(ctx, d, "its bytes no longer match its digest")
		}
	}}
}

// markUnwritable logs one error line and makes fetches relay unkept for UnwritableFor.
func (s *Store) markUnwritable(what string, err error) {
	now := s.now().UnixNano()
	until := s.now().Add(UnwritableFor).UnixNano()
	for {
		old := s.unwritable.Load()
		if s.unwritable.CompareAndSwap(old, until) {
			if old < now {
				s.log.Error("content store unwritable: pulls are relayed without keeping them", "store", s.desc,
					"what", what, "err", err.Error(), "retryIn", UnwritableFor.String())
			}
			return
		}
	}
}

func (s *Store) isUnwritable() bool { return s.unwritable.Load() > s.now().UnixNano() }
