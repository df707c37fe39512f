package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
)

// Manifest is a kept manifest: its bytes exactly as the upstream served them.
type Manifest struct {
	MediaType string
	Digest    digest.Digest
	Bytes     []byte
}

// Refs are what a manifest references: its config and layers (Blobs), an index's children
// (Manifests), and the image a referrer is about (Subject).
type Refs struct {
	Blobs     []digest.Digest
	Manifests []digest.Digest
	Subject   digest.Digest
}

// PutManifest keeps verified manifest bytes with the repository's link and the refs record.
// The bytes are hashed again and refused (ErrInvalid) if they do not match m.Digest.
// Idempotent.
func (s *Store) PutManifest(ctx context.Context, registry, repo string, m Manifest, refs Refs) error {
	if err := checkNamesDigest(registry, repo, m.Digest); err != nil {
		return err
	}
	if len(m.Bytes) > MaxManifestSize {
		return fmt.Errorf("manifest %s of %d bytes, more than %d: %w", m.Digest, len(m.Bytes), MaxManifestSize, ErrInvalid)
	}
	if len(m.MediaType) > MaxMediaTypeLen {
		return fmt.Errorf("manifest %s: media type too long: %w", m.Digest, ErrInvalid)
	}
	if got := digest.SHA256.FromBytes(m.Bytes); got != m.Digest {
		return fmt.Errorf("manifest bytes hash to %s, not %s: %w", got, m.Digest, ErrInvalid)
	}
	if err := checkRefs(refs); err != nil {
		return fmt.Errorf("manifest %s: %w", m.Digest, err)
	}
	what := fmt.Sprintf("keeping manifest %s/%s@%s", registry, repo, m.Digest)
	if err := s.putContent(ctx, m.Digest, m.Bytes); err != nil {
		return s.wrapErr(what, err)
	}
	rec := &record{Digest: m.Digest, MediaType: m.MediaType, Size: int64(len(m.Bytes)),
		Blobs: refs.Blobs, Manifests: refs.Manifests, Subject: refs.Subject}
	rb, _ := json.Marshal(rec)
	dir := revisionDir(registry, repo, m.Digest)
	// The record before the link: a link (what makes the manifest kept) always has one.
	if err := s.putAtomic(ctx, dir+"/"+recordFile, rb); err != nil {
		return s.wrapErr(what, err)
	}
	if err := s.putAtomic(ctx, dir+"/"+linkFile, []byte(m.Digest.String())); err != nil {
		return s.wrapErr(what, err)
	}
	s.records.Add(m.Digest, rec)
	s.touchDir(dir, false)
	s.kickEvict()
	return nil
}

// putContent keeps small content by digest unless an object of that size is there.
func (s *Store) putContent(ctx context.Context, d digest.Digest, b []byte) error {
	p := blobPath(d)
	if fi, err := s.d.Stat(ctx, p); err == nil && fi.Size() == int64(len(b)) {
		return nil
	}
	if err := s.putAtomic(ctx, p, b); err != nil {
		return err
	}
	s.bytesKept.Add(int64(len(b)))
	return nil
}

// GetManifest returns a kept manifest of registry/repo, re-hashed: bytes that no longer
// match are logged once, dropped (content and this repository's link) and answered with
// ErrCorrupt. A manifest not linked in the repository is ErrNotFound.
func (s *Store) GetManifest(ctx context.Context, registry, repo string, d digest.Digest) (Manifest, error) {
	if err := checkNamesDigest(registry, repo, d); err != nil {
		return Manifest{}, err
	}
	what := fmt.Sprintf("manifest %s/%s@%s", registry, repo, d)
	dir := revisionDir(registry, repo, d)
	lb, err := s.getBounded(ctx, dir+"/"+linkFile, MaxLinkSize)
	if err != nil {
		return Manifest{}, s.wrapErr(what, err)
	}
	if ld, err := parseLink(lb); err != nil || ld != d {
		s.dropManifest(ctx, registry, repo, d, "its link does not name it")
		return Manifest{}, fmt.Errorf("%s: link: %w", what, ErrCorrupt)
	}
	rec, err := s.readRecord(ctx, dir, d)
	if err != nil {
		if errorsIsCorrupt(err) {
			s.dropManifest(ctx, registry, repo, d, err.Error())
		}
		return Manifest{}, s.wrapErr(what, err)
	}
	b, err := s.getBounded(ctx, blobPath(d), MaxManifestSize)
	if err != nil {
		if errorsIsCorrupt(err) {
			s.dropManifest(ctx, registry, repo, d, err.Error())
		}
		return Manifest{}, s.wrapErr(what, err)
	}
	if got := digest.SHA256.FromBytes(b); got != d {
		s.dropManifest(ctx, registry, repo, d, "its bytes hash to "+got.String())
		return Manifest{}, fmt.Errorf("%s: kept bytes hash to %s: %w", what, got, ErrCorrupt)
	}
	return Manifest{MediaType: rec.MediaType, Digest: d, Bytes: b}, nil
}

// readRecord returns the record of a revision folder, from memory when parsed before
// (records never change: they are derived from the manifest's bytes).
func (s *Store) readRecord(ctx context.Context, dir string, d digest.Digest) (*record, error) {
	if r, ok := s.records.Get(d); ok {
		return r, nil
	}
	b, err := s.getBounded(ctx, dir+"/"+recordFile, MaxRecordSize)
	if err != nil {
		return nil, err
	}
	r, err := parseRecord(b)
	if err != nil {
		return nil, err
	}
	if r.Digest != d {
		return nil, fmt.Errorf("manifest record names %s: %w", r.Digest, ErrCorrupt)
	}
	s.records.Add(d, r)
	return r, nil
}

// dropManifest removes a corrupt manifest's content and this repository's link, with one
// error line. The record and a pin stay: a re-fetch restores the manifest as it was.
func (s *Store) dropManifest(ctx context.Context, registry, repo string, d digest.Digest, why string) {
	ctx = context.WithoutCancel(ctx)
	s.log.Error("content store: dropping a corrupt manifest; it will be fetched again",
		"store", s.desc, "registry", registry, "repository", repo, "digest", d.String(), "reason", why)
	s.corrupt.Add(1)
	s.records.Remove(d)
	s.deleteContent(ctx, d)
	s.d.Delete(ctx, revisionDir(registry, repo, d)+"/"+linkFile)
}

// deleteContent removes kept content and forgets it was checked.
func (s *Store) deleteContent(ctx context.Context, d digest.Digest) int64 {
	var size int64
	if fi, err := s.d.Stat(ctx, blobPath(d)); err == nil {
		size = fi.Size()
	}
	if err := s.d.Delete(ctx, blobDir(d)); err != nil && !isNotFound(err) {
		s.log.Error("content store: removing content failed", "store", s.desc, "digest", d.String(), "err", err)
		return 0
	}
	s.checked.Remove(d)
	if size > 0 {
		s.bytesKept.Add(-size)
	}
	return size
}

// Pin marks a kept manifest as never evicted (images kept by mirror or import).
func (s *Store) Pin(ctx context.Context, registry, repo string, d digest.Digest) error {
	if err := checkNamesDigest(registry, repo, d); err != nil {
		return err
	}
	what := fmt.Sprintf("pinning %s/%s@%s", registry, repo, d)
	dir := revisionDir(registry, repo, d)
	ok, err := s.exists(ctx, dir+"/"+linkFile)
	if err != nil {
		return s.wrapErr(what, err)
	}
	if !ok {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return s.wrapErr(what, s.putAtomic(ctx, dir+"/"+pinnedFile, []byte("pinned\n")))
}

// servedEntry is a manifest's last serve, kept in memory until flushed.
type servedEntry struct {
	last    time.Time
	flushed time.Time
}

// Touch records that a manifest of registry/repo was served now. The time is kept in memory
// and written at most once per ServedFlushInterval.
func (s *Store) Touch(registry, repo string, d digest.Digest) {
	if checkNamesDigest(registry, repo, d) != nil {
		return
	}
	s.touchDir(revisionDir(registry, repo, d), true)
}

// touchDir sets the served time of a revision folder; a put (served false) only starts the
// clock for a manifest not touched before, so a fresh image is not the oldest.
func (s *Store) touchDir(dir string, served bool) {
	now := s.now()
	s.servedMu.Lock()
	e, ok := s.served[dir]
	if !ok {
		e = &servedEntry{}
		s.served[dir] = e
	}
	if served || !ok {
		e.last = now
	}
	n := len(s.served)
	s.servedMu.Unlock()
	if n >= MaxServedPending {
		select {
		case s.flushNow <- struct{}{}:
		default:
		}
	}
}

// servedTime is the in-memory served time of a revision folder, zero when unknown.
func (s *Store) servedTime(dir string) time.Time {
	s.servedMu.Lock()
	defer s.servedMu.Unlock()
	if e, ok := s.served[dir]; ok {
		return e.last
	}
	return time.Time{}
}

func (s *Store) flushLoop() {
	defer s.wg.Done()
	t := time.NewTicker(ServedFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		case <-s.flushNow:
		}
		s.flushServed(s.ctx, false)
	}
}

// flushServed writes the served times changed since their last write. Entries written and
// unchanged are forgotten, so the map holds only recent serves.
func (s *Store) flushServed(ctx context.Context, all bool) error {
	type job struct {
		dir string
		t   time.Time
	}
	var jobs []job
	s.servedMu.Lock()
	for dir, e := range s.served {
		if e.last.After(e.flushed) {
			jobs = append(jobs, job{dir, e.last})
		} else if !all {
			delete(s.served, dir)
		}
	}
	s.servedMu.Unlock()
	var firstErr error
	for _, j := range jobs {
		// Only while the manifest is kept: a served file must not resurrect an evicted one.
		if ok, err := s.exists(ctx, j.dir+"/"+linkFile); err != nil || !ok {
			s.servedMu.Lock()
			delete(s.served, j.dir)
			s.servedMu.Unlock()
			continue
		}
		err := s.putAtomic(ctx, j.dir+"/"+servedFile, []byte(j.t.UTC().Format(time.RFC3339Nano)))
		if err != nil {
			if firstErr == nil {
				firstErr = s.wrapErr("writing served times", err)
			}
			continue
		}
		s.servedMu.Lock()
		if e, ok := s.served[j.dir]; ok && !j.t.Before(e.flushed) {
			e.flushed = j.t
		}
		s.servedMu.Unlock()
	}
	if firstErr != nil {
		s.log.Warn("content store: served times not written", "store", s.desc, "err", firstErr)
	}
	return firstErr
}
