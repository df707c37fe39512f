package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"
)

// Options configure Open.
type Options struct {
	Driver storagedriver.StorageDriver
	// MaxSize in bytes; 0 = no limit. Beyond it the least recently served unpinned images
	// are evicted.
	MaxSize int64
	// SpoolDir is the local folder for shared-download spools; "" = os.TempDir(). With the
	// filesystem driver from NewDriver, spools go under the driver's own _uploads instead,
	// so that a commit is a rename.
	SpoolDir string
	Logger   *slog.Logger
	// Now is the clock (tests); nil = time.Now.
	Now func() time.Time
}

// Store keeps verified content in a distribution storage driver. Safe for concurrent use.
type Store struct {
	d          storagedriver.StorageDriver
	desc       string // names the store in log lines and errors
	local      string // the filesystem driver's folder, "" for the others
	spoolDir   string
	atomicPut  bool // the driver's PutContent is never seen half-written
	maxSize    int64
	log        *slog.Logger
	now        func() time.Time
	checked    *lru.Cache[digest.Digest, objectID] // blobs hashed since start, as the object hashed
	records    *lru.Cache[digest.Digest, *record]
	kept       *keptIndex    // which kept manifests name which digests (referencing.go)
	unwritable atomic.Int64  // unix nanoseconds until which fetches relay unkept
	leases     bool          // downloads take a lease in the store (lease.go)
	holder     string        // this Store's name in its leases
	leaseTTL   time.Duration // LeaseTTL (tests shorten it)
	beat       atomic.Int64
	spoolWrap  func(io.Writer) io.Writer // tests: faults in spool writes

	mu       sync.Mutex
	fetches  map[digest.Digest]*fetch
	verifies map[digest.Digest]*verifyCall

	servedMu sync.Mutex
	served   map[string]*servedEntry // by revision folder
	flushNow chan struct{}

	evictMu   sync.Mutex
	evictKick chan struct{}

	hits, misses, stale, bytesKept, bytesEvicted, corrupt atomic.Int64

	ctx    context.Context // ends at Close: background work stops
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// Open checks that the store is usable (a probe object written, read back and deleted),
// removes staging debris older than StagingMaxAge, and starts the background flusher and
// evictor. It loads nothing big into memory.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Driver == nil {
		return nil, fmt.Errorf("no storage driver: %w", ErrConfig)
	}
	s := &Store{
		d:         o.Driver,
		desc:      o.Driver.Name(),
		maxSize:   o.MaxSize,
		log:       o.Logger,
		now:       o.Now,
		spoolDir:  o.SpoolDir,
		fetches:   map[digest.Digest]*fetch{},
		verifies:  map[digest.Digest]*verifyCall{},
		served:    map[string]*servedEntry{},
		flushNow:  make(chan struct{}, 1),
		evictKick: make(chan struct{}, 1),
		kept:      newKeptIndex(),
	}
	if o.MaxSize < 0 {
		return nil, fmt.Errorf("maxSize %d is negative: %w", o.MaxSize, ErrConfig)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if lr, ok := o.Driver.(localRooter); ok {
		s.local = lr.LocalRoot()
		s.desc = "filesystem " + s.local
	}
	switch o.Driver.Name() {
	case "s3aws", "inmemory":
		// s3 makes an object visible only once whole; inmemory writes under its lock.
		s.atomicPut = true
	}
	// Every driver but inmemory may be shared by replicas.
	s.leases = o.Driver.Name() != "inmemory"
	s.holder = randomName()
	s.leaseTTL = LeaseTTL
	if s.spoolDir == "" {
		s.spoolDir = os.TempDir()
	}
	if s.local != "" {
		s.spoolDir = filepath.Join(s.local, filepath.FromSlash(uploadsPath))
	}
	s.checked, _ = lru.New[digest.Digest, objectID](MaxCheckedRemembered)
	s.records, _ = lru.New[digest.Digest, *record](MaxRecordsCached)

	if err := s.probe(ctx); err != nil {
		return nil, err
	}
	s.purgeStaging(ctx)

	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.wg.Add(2)
	go s.flushLoop()
	go s.evictLoop()
	s.kickEvict() // sizes the store (BytesKept) in the background
	return s, nil
}

// probe writes, reads back and deletes an object, and makes a spool file.
func (s *Store) probe(ctx context.Context) error {
	p := uploadsPath + "/probe-" + randomName()
	want := []byte("pullgate content store probe " + p)
	if err := s.d.PutContent(ctx, p, want); err != nil {
		return fmt.Errorf("content store (%s) cannot be written (probe %s): %v: %w", s.desc, p, err, ErrUnavailable)
	}
	got, err := s.d.GetContent(ctx, p)
	if err != nil {
		return fmt.Errorf("content store (%s) cannot be read (probe %s): %v: %w", s.desc, p, err, ErrUnavailable)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("content store (%s) returned other bytes than written (probe %s): %w", s.desc, p, ErrUnavailable)
	}
	if err := s.d.Delete(ctx, p); err != nil {
		return fmt.Errorf("content store (%s) cannot delete (probe %s): %v: %w", s.desc, p, err, ErrUnavailable)
	}
	if err := os.MkdirAll(s.spoolDir, 0o755); err != nil {
		return fmt.Errorf("content store spool folder %s: %v: %w", s.spoolDir, err, ErrUnavailable)
	}
	f, err := os.CreateTemp(s.spoolDir, spoolPrefix+"probe-*")
	if err != nil {
		return fmt.Errorf("content store spool folder %s cannot be written: %v: %w", s.spoolDir, err, ErrUnavailable)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// spoolPrefix starts the names of spool files, so that a purge of a shared folder such as
// os.TempDir() removes only the store's own.
const spoolPrefix = "pullgate-spool-"

// purgeStaging removes staging objects and spool files older than StagingMaxAge: debris of
// a process killed mid-write. Younger ones may be a live replica's.
func (s *Store) purgeStaging(ctx context.Context) {
	cutoff := s.now().Add(-StagingMaxAge)
	names, err := s.d.List(ctx, uploadsPath)
	if err != nil && !isNotFound(err) {
		s.log.Warn("content store: listing staging failed", "store", s.desc, "err", err)
	}
	if leases, err := s.d.List(ctx, leasesDir); err == nil {
		names = append(names, leases...)
	}
	removed := 0
	for i, p := range names {
		if i >= MaxPurgeEntries {
			break
		}
		fi, err := s.d.Stat(ctx, p)
		if err != nil || fi.ModTime().After(cutoff) {
			continue
		}
		if err := s.d.Delete(ctx, p); err == nil {
			removed++
		}
	}
	if s.local == "" {
		entries, _ := os.ReadDir(s.spoolDir)
		for i, e := range entries {
			if i >= MaxPurgeEntries {
				break
			}
			if !strings.HasPrefix(e.Name(), spoolPrefix) {
				continue
			}
			if fi, err := e.Info(); err == nil && fi.ModTime().Before(cutoff) {
				if os.Remove(filepath.Join(s.spoolDir, e.Name())) == nil {
					removed++
				}
			}
		}
	}
	if removed > 0 {
		s.log.Info("content store: removed staging left by an interrupted write", "store", s.desc, "entries", removed)
	}
}

// Close stops background work, waits for it, and flushes served times.
func (s *Store) Close() error {
	s.mu.Lock() // Fetch starts downloads under s.mu: none starts after this
	first := s.closed.CompareAndSwap(false, true)
	s.mu.Unlock()
	if !first {
		return nil
	}
	s.cancel()
	s.wg.Wait()
	return s.flushServed(context.Background(), true)
}

// putAtomic writes a small object so that no reader ever sees it half-written: staging and
// a move, unless the driver's PutContent is atomic already.
// A failed write makes the store unwritable for UnwritableFor (one error line), and writes
// in that time fail at once: a store that is down is not asked again at every pull.
func (s *Store) putAtomic(ctx context.Context, p string, data []byte) error {
	if s.isUnwritable() {
		return errUnwritable
	}
	err := s.putAtomicOnce(ctx, p, data)
	if err != nil && ctx.Err() == nil {
		s.markUnwritable("writing "+p, err)
	}
	return err
}

// errUnwritable: a write skipped while the store is marked unwritable.
var errUnwritable = fmt.Errorf("not written: the content store failed a write less than %s ago: %w", UnwritableFor, ErrUnavailable)

func (s *Store) putAtomicOnce(ctx context.Context, p string, data []byte) error {
	if s.atomicPut {
		return s.d.PutContent(ctx, p, data)
	}
	staging := uploadsPath + "/" + randomName()
	if err := s.d.PutContent(ctx, staging, data); err != nil {
		s.d.Delete(context.WithoutCancel(ctx), staging)
		return err
	}
	if err := s.d.Move(ctx, staging, p); err != nil {
		s.d.Delete(context.WithoutCancel(ctx), staging)
		return err
	}
	return nil
}

// getBounded reads a small object, refusing one larger than limit.
func (s *Store) getBounded(ctx context.Context, p string, limit int64) ([]byte, error) {
	r, err := s.d.Reader(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", p, limit, ErrCorrupt)
	}
	return b, nil
}

// exists reports whether an object is there; errors other than not found are returned.
func (s *Store) exists(ctx context.Context, p string) (bool, error) {
	_, err := s.d.Stat(ctx, p)
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, err
}

func isNotFound(err error) bool {
	var nf storagedriver.PathNotFoundError
	return errors.As(err, &nf)
}

// wrapErr turns a driver error into the store's: not found wraps ErrNotFound, anything
// else ErrUnavailable.
func (s *Store) wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	if isNotFound(err) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: content store (%s): %v: %w", what, s.desc, err, ErrUnavailable)
}

func randomName() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Stats are the store's counters, read by the metrics.
type Stats struct {
	Hits, Misses, StaleServes, BytesKept, BytesEvicted, Corrupt int64
}

// Stats returns the counters.
func (s *Store) Stats() Stats {
	return Stats{
		Hits:         s.hits.Load(),
		Misses:       s.misses.Load(),
		StaleServes:  s.stale.Load(),
		BytesKept:    s.bytesKept.Load(),
		BytesEvicted: s.bytesEvicted.Load(),
		Corrupt:      s.corrupt.Load(),
	}
}

// CountHit counts a request answered from the store.
func (s *Store) CountHit() { s.hits.Add(1) }

// CountMiss counts a request the store could not answer.
func (s *Store) CountMiss() { s.misses.Add(1) }

// CountStale counts a tag answered past tagTTL because the upstream was unreachable.
func (s *Store) CountStale() { s.stale.Add(1) }

func errorsIsCorrupt(err error) bool { return errors.Is(err, ErrCorrupt) }

// Ping reports whether the store answers (for /readyz): a read of the store's root, which
// an absent folder answers too. It writes nothing, so a probe every few seconds costs one
// request.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.d.Stat(ctx, rootPath)
	var nf storagedriver.PathNotFoundError
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("content store (%s) does not answer: %v: %w", s.desc, err, ErrUnavailable)
	}
	return nil
}
