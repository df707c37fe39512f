// Package stored is the content store's side of the pull path: a content.Source
// decorator that answers from what a content store (cache/store) kept and keeps what the
// gate admitted. The handler does not change: it gates and verifies whatever a Source
// returns, so every serve from the store is decided under the current policy, exactly as a
// serve from the upstream.
//
// What it answers (DESIGN.md, "Content store (contract)"):
//   - a manifest or blob by digest: from the store when kept, without the upstream;
//   - a manifest by tag: from the store while the tag's confirmation is younger than
//     TagTTL, else the upstream is asked (a HEAD where that suffices); when the upstream is
//     unreachable, the last confirmed digest for up to MaxStale, marked stale;
//   - a blob not kept: one shared download (Store.Fetch) per digest, kept when it verified;
//   - an offline upstream: only the store, never the inner Source.
package stored

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/cache/store"
	"github.com/pullgate/pullgate/proxy/content"
)

// Store is what the decorator needs of a content store (*store.Store implements it).
type Store interface {
	PutManifest(ctx context.Context, registry, repo string, m store.Manifest, refs store.Refs) error
	GetManifest(ctx context.Context, registry, repo string, d digest.Digest) (store.Manifest, error)
	Touch(registry, repo string, d digest.Digest)
	PutTag(ctx context.Context, registry, repo, tag string, d digest.Digest) error
	GetTag(ctx context.Context, registry, repo, tag string) (store.Tag, error)
	Tags(ctx context.Context, registry, repo string) ([]string, error)
	StatBlob(ctx context.Context, d digest.Digest) (store.BlobInfo, error)
	OpenBlob(ctx context.Context, d digest.Digest) (*store.Blob, error)
	VerifyingBody(ctx context.Context, b *store.Blob, d digest.Digest) io.ReadCloser
	LinkBlob(ctx context.Context, registry, repo string, d digest.Digest) error
	Fetch(ctx context.Context, d digest.Digest, open func(ctx context.Context) (io.ReadCloser, int64, error)) (io.ReadCloser, int64, error)
	CountHit()
	CountMiss()
	CountStale()
}

var _ Store = (*store.Store)(nil)

// Options configures a Source.
type Options struct {
	// Registry is the upstream's configured name (docker.io).
	Registry string
	// Inner is the upstream; nil, or ignored, when Offline.
	Inner content.Source
	// Offline: never contact the upstream; only the store answers.
	Offline bool
	Store   Store
	// TagTTL: a tag confirmed less than this ago is answered without asking the upstream.
	TagTTL time.Duration
	// MaxStale: with the upstream unreachable, a tag's last confirmation is used for this
	// long; negative means forever, zero never.
	MaxStale time.Duration
	// OnKeep, if set, is told of every manifest kept (the kept signatures follow it).
	OnKeep func(ctx context.Context, registry, repo string, d digest.Digest)
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Source is the content.Source decorator over a content store.
type Source struct {
	o   Options
	log *slog.Logger
	// linked remembers the (repository, blob) links made by this process, so that a warm
	// serve writes nothing.
	linked sync.Map // of linkKey → struct{}
	// keptHere remembers the manifests this process kept (or found kept), so that a
	// manifest served again from the in-memory cache is not written again. Entries expire,
	// so that one evicted from the store meanwhile is kept again.
	keptHere *expirable.LRU[linkKey, struct{}]
	// downUntil (Unix nanoseconds) is set when the upstream was found unreachable: until
	// then a kept tag within MaxStale is answered stale at once, instead of every request
	// waiting for the upstream client's retries to fail again.
	downUntil atomic.Int64
}

// Bounds of what a Source remembers of its own writes.
const (
	keptHereSize = 16384
	keptHereTTL  = 10 * time.Minute
	// downFor is how long an unreachable upstream is not asked again for tags the store
	// can answer stale: short, so that a recovered upstream is noticed at once.
	downFor = 5 * time.Second
)

// markDown remembers that the upstream could not be asked.
func (s *Source) markDown(err error) {
	if content.IsUnreachable(err) {
		s.downUntil.Store(s.o.Now().Add(downFor).UnixNano())
	}
}

// down reports whether the upstream was unreachable moments ago.
func (s *Source) down() bool { return s.o.Now().UnixNano() < s.downUntil.Load() }

type linkKey struct {
	repo string
	d    digest.Digest
}

var (
	_ content.Source             = (*Source)(nil)
	_ content.ManifestHolder     = (*Source)(nil)
	_ content.ManifestKeeper     = (*Source)(nil)
	_ content.VerifiedBlobSource = (*Source)(nil)
)

// New returns a Source. Store is required, and Inner unless Offline.
func New(o Options) (*Source, error) {
	if o.Store == nil {
		return nil, errors.New("stored: a store is required")
	}
	if o.Inner == nil && !o.Offline {
		return nil, errors.New("stored: an upstream is required unless offline")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Source{o: o, log: o.Logger.With("upstream", o.Registry),
		keptHere: expirable.NewLRU[linkKey, struct{}](keptHereSize, nil, keptHereTTL)}, nil
}

// Manifest implements content.ManifestSource.
func (s *Source) Manifest(ctx context.Context, repo, ref string, accept []string) (*content.Manifest, error) {
	if d, err := digest.Parse(ref); err == nil {
		if m, ok := s.kept(ctx, repo, d); ok {
			s.o.Store.CountHit()
			return m, nil
		}
		s.o.Store.CountMiss()
		if s.o.Offline {
			return nil, s.offlineUnknown(errcode.ErrorCodeManifestUnknown, repo, ref)
		}
		return s.o.Inner.Manifest(ctx, repo, ref, accept)
	}
	return s.manifestByTag(ctx, repo, ref, accept)
}

// manifestByTag resolves a tag: fresh confirmation → the store; else the upstream (a HEAD
// when the digest it names is kept); unreachable → the last confirmation within MaxStale.
func (s *Source) manifestByTag(ctx context.Context, repo, tag string, accept []string) (*content.Manifest, error) {
	t, keptM := s.keptTag(ctx, repo, tag, accept)
	if keptM != nil && s.fresh(t) {
		s.o.Store.CountHit()
		return keptM, nil
	}
	if s.o.Offline {
		// Never contacted: what mirror or import confirmed is the tag, however old (not
		// stale: there is no newer answer to miss), so an air-gapped site keeps serving it.
		if keptM != nil {
			s.o.Store.CountHit()
			return keptM, nil
		}
		return nil, s.offlineUnknown(errcode.ErrorCodeManifestUnknown, repo, tag)
	}
	if keptM != nil && s.down() && s.withinStale(t) {
		return s.staleOr(keptM, t, nil)
	}
	// A HEAD is enough when it names what is kept (registries do not count HEADs against
	// pull limits); the bytes come from the store, re-hashed.
	if keptM != nil {
		desc, err := s.o.Inner.HeadManifest(ctx, repo, tag, accept)
		s.markDown(err)
		switch {
		case err == nil && desc.Digest == keptM.Digest:
			s.confirm(ctx, repo, tag, keptM.Digest)
			s.o.Store.CountHit()
			return keptM, nil
		case err != nil && content.IsUnreachable(err):
			return s.staleOr(keptM, t, err)
		}
	}
	m, err := s.o.Inner.Manifest(ctx, repo, tag, accept)
	if err != nil {
		s.markDown(err)
		if content.IsUnreachable(err) {
			return s.staleOr(keptM, t, err)
		}
		return nil, err
	}
	s.o.Store.CountMiss()
	return m, nil
}

// keptTag returns the store's confirmation of tag and the kept manifest it names, nil
// when none is kept or the client's Accept does not take its media type.
func (s *Source) keptTag(ctx context.Context, repo, tag string, accept []string) (store.Tag, *content.Manifest) {
	t, err := s.o.Store.GetTag(ctx, s.o.Registry, repo, tag)
	if err != nil {
		return t, nil
	}
	if m, ok := s.kept(ctx, repo, t.Digest); ok && acceptable(m.ContentType, accept) {
		return t, m
	}
	return t, nil
}

// staleOr answers with the kept manifest of a tag whose confirmation is within MaxStale,
// marked stale, else err.
func (s *Source) staleOr(keptM *content.Manifest, t store.Tag, err error) (*content.Manifest, error) {
	if keptM == nil || !s.withinStale(t) {
		return nil, err
	}
	s.o.Store.CountStale()
	m := *keptM
	m.Stale = true
	return &m, nil
}

func (s *Source) fresh(t store.Tag) bool {
	return s.o.TagTTL > 0 && s.o.Now().Sub(t.Confirmed) < s.o.TagTTL
}

func (s *Source) withinStale(t store.Tag) bool {
	switch {
	case s.o.MaxStale < 0:
		return true
	case s.o.MaxStale == 0:
		return false
	}
	return s.o.Now().Sub(t.Confirmed) < s.o.MaxStale
}

// confirm records that the upstream named d for tag now.
func (s *Source) confirm(ctx context.Context, repo, tag string, d digest.Digest) {
	if err := s.o.Store.PutTag(ctx, s.o.Registry, repo, tag, d); err != nil {
		s.logStoreError(ctx, "failed to keep a tag in the content store", "repository", repo, "tag", tag, "error", err)
	}
}

// kept returns the kept manifest d of repo, re-hashed by the store.
func (s *Source) kept(ctx context.Context, repo string, d digest.Digest) (*content.Manifest, bool) {
	km, err := s.o.Store.GetManifest(ctx, s.o.Registry, repo, d)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.logStoreError(ctx, "failed to read a kept manifest", "repository", repo, "digest", d, "error", err)
		}
		return nil, false
	}
	return &content.Manifest{ContentType: km.MediaType, Digest: km.Digest, Bytes: km.Bytes, Kept: true}, true
}

// acceptable reports whether a client sending accept takes mediaType. No Accept, or a
// wildcard, takes anything (as registries answer).
func acceptable(mediaType string, accept []string) bool {
	if len(accept) == 0 {
		return true
	}
	mt := content.MediaType(mediaType)
	for _, line := range accept {
		for _, part := range strings.Split(line, ",") {
			a := strings.TrimSpace(strings.SplitN(part, ";", 2)[0])
			if a == "*/*" || strings.EqualFold(a, mt) {
				return true
			}
		}
	}
	return false
}

// HeadManifest implements content.ManifestSource: a tag resolves as for Manifest (fresh
// confirmation, else the upstream's HEAD, else a stale confirmation), without a GET.
func (s *Source) HeadManifest(ctx context.Context, repo, ref string, accept []string) (content.Descriptor, error) {
	if d, err := digest.Parse(ref); err == nil {
		if m, ok := s.kept(ctx, repo, d); ok {
			return descriptorOf(m), nil
		}
		if s.o.Offline {
			return content.Descriptor{}, s.offlineUnknown(errcode.ErrorCodeManifestUnknown, repo, ref)
		}
		return s.o.Inner.HeadManifest(ctx, repo, ref, accept)
	}
	t, keptM := s.keptTag(ctx, repo, ref, accept)
	if keptM != nil && s.fresh(t) {
		return descriptorOf(keptM), nil
	}
	if s.o.Offline {
		if keptM != nil {
			return descriptorOf(keptM), nil
		}
		return content.Descriptor{}, s.offlineUnknown(errcode.ErrorCodeManifestUnknown, repo, ref)
	}
	if keptM != nil && s.down() && s.withinStale(t) {
		m, _ := s.staleOr(keptM, t, nil)
		return descriptorOf(m), nil
	}
	desc, err := s.o.Inner.HeadManifest(ctx, repo, ref, accept)
	s.markDown(err)
	if err != nil && content.IsUnreachable(err) {
		m, serr := s.staleOr(keptM, t, err)
		if serr != nil {
			return content.Descriptor{}, serr
		}
		return descriptorOf(m), nil
	}
	if err == nil && keptM != nil && desc.Digest == keptM.Digest {
		s.confirm(ctx, repo, ref, keptM.Digest)
	}
	return desc, err
}

func descriptorOf(m *content.Manifest) content.Descriptor {
	return content.Descriptor{ContentType: m.ContentType, Digest: m.Digest, Size: int64(len(m.Bytes)), Stale: m.Stale}
}

// HeldManifest implements content.ManifestHolder.
func (s *Source) HeldManifest(ctx context.Context, repo string, d digest.Digest) (*content.Manifest, bool) {
	return s.kept(ctx, repo, d)
}

// KeepManifest implements content.ManifestKeeper: the gate admitted m for ref.
func (s *Source) KeepManifest(ctx context.Context, repo, ref string, m *content.Manifest) {
	s.o.Store.Touch(s.o.Registry, repo, m.Digest)
	if _, err := digest.Parse(ref); err != nil && !m.Kept && !m.Stale {
		// A tag the upstream just named. A kept manifest's tag was settled by the lookup
		// that found it (fresh, confirmed by a HEAD, or offline, where nothing confirms);
		// a stale answer is not a confirmation.
		s.confirm(ctx, repo, ref, m.Digest)
	}
	k := linkKey{repo: repo, d: m.Digest}
	if m.Kept || s.keptHere.Contains(k) {
		if s.o.OnKeep != nil {
			s.o.OnKeep(ctx, s.o.Registry, repo, m.Digest) // signatures found since, if any
		}
		return
	}
	refs, err := refsOf(m)
	if err != nil {
		s.log.WarnContext(ctx, "not keeping a manifest whose references cannot be read", "repository", repo,
			"digest", m.Digest, "error", err)
		return
	}
	km := store.Manifest{MediaType: content.MediaType(m.ContentType), Digest: m.Digest, Bytes: m.Bytes}
	if err := s.o.Store.PutManifest(ctx, s.o.Registry, repo, km, refs); err != nil {
		s.logStoreError(ctx, "failed to keep a manifest in the content store; it is served, not kept",
			"repository", repo, "digest", m.Digest, "error", err)
		return
	}
	s.keptHere.Add(k, struct{}{})
	if s.o.OnKeep != nil {
		s.o.OnKeep(ctx, s.o.Registry, repo, m.Digest)
	}
}

// Blob implements content.BlobSource. A kept blob not yet hashed by this process is read
// through a check that drops it on a mismatch (the handler verifies the stream too, so a
// wrong byte never ends a clean body); one not kept is fetched once for all callers.
func (s *Source) Blob(ctx context.Context, repo string, d digest.Digest) (*content.Blob, error) {
	if b, err := s.o.Store.OpenBlob(ctx, d); err == nil {
		s.o.Store.CountHit()
		s.link(ctx, repo, d)
		body := io.ReadCloser(b.Body)
		if !b.Checked {
			body = s.o.Store.VerifyingBody(ctx, b, d)
		}
		return &content.Blob{Body: body, Size: b.Size}, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		s.logStoreError(ctx, "failed to read a kept blob", "repository", repo, "digest", d, "error", err)
	}
	s.o.Store.CountMiss()
	if s.o.Offline {
		return nil, s.offlineUnknown(errcode.ErrorCodeBlobUnknown, repo, d.String())
	}
	body, size, err := s.o.Store.Fetch(ctx, d, func(ctx context.Context) (io.ReadCloser, int64, error) {
		b, err := s.o.Inner.Blob(ctx, repo, d)
		if err != nil {
			return nil, 0, err
		}
		return b.Body, b.Size, nil
	})
	if err != nil {
		return nil, err
	}
	s.link(ctx, repo, d)
	return &content.Blob{Body: body, Size: size}, nil
}

// link records that repo's manifests use blob d (once per process and pair).
func (s *Source) link(ctx context.Context, repo string, d digest.Digest) {
	k := linkKey{repo: repo, d: d}
	if _, done := s.linked.Load(k); done {
		return
	}
	if err := s.o.Store.LinkBlob(ctx, s.o.Registry, repo, d); err != nil {
		s.logStoreError(ctx, "failed to link a kept blob to its repository", "repository", repo, "digest", d, "error", err)
		return
	}
	s.linked.Store(k, struct{}{})
}

// OpenVerified implements content.VerifiedBlobSource: a kept blob already hashed by this
// process, served as it is (ranges by seeking, sendfile from a file).
func (s *Source) OpenVerified(ctx context.Context, repo string, d digest.Digest) (*content.VerifiedBlob, error) {
	b, err := s.o.Store.OpenBlob(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", content.ErrNotHeld, err)
	}
	if !b.Checked {
		b.Body.Close()
		return nil, content.ErrNotHeld // read through Blob, hashed on the way
	}
	s.o.Store.CountHit()
	s.link(ctx, repo, d)
	return &content.VerifiedBlob{Body: b.Body, Size: b.Size, ModTime: b.ModTime}, nil
}

// StatBlob implements content.BlobSource.
func (s *Source) StatBlob(ctx context.Context, repo string, d digest.Digest) (content.Descriptor, error) {
	if info, err := s.o.Store.StatBlob(ctx, d); err == nil {
		return content.Descriptor{Digest: d, Size: info.Size}, nil
	}
	if s.o.Offline {
		return content.Descriptor{}, s.offlineUnknown(errcode.ErrorCodeBlobUnknown, repo, d.String())
	}
	return s.o.Inner.StatBlob(ctx, repo, d)
}

// Tags implements content.ListingSource: the upstream's list, or with the upstream
// unreachable or offline, the tags the store confirmed.
func (s *Source) Tags(ctx context.Context, repo string, query url.Values) (*content.Listing, error) {
	if !s.o.Offline {
		l, err := s.o.Inner.Tags(ctx, repo, query)
		if err == nil || !content.IsUnreachable(err) {
			return l, err
		}
	}
	tags, err := s.o.Store.Tags(ctx, s.o.Registry, repo)
	if err != nil || len(tags) == 0 {
		return nil, s.offlineUnknown(errcode.ErrorCodeNameUnknown, repo, "")
	}
	slices.Sort(tags)
	body, err := tagsJSON(repo, tags)
	if err != nil {
		return nil, err
	}
	return &content.Listing{ContentType: "application/json", Body: body}, nil
}

// Referrers implements content.ListingSource; the store keeps no listings.
func (s *Source) Referrers(ctx context.Context, repo string, d digest.Digest, query url.Values) (*content.Listing, error) {
	if s.o.Offline {
		return nil, s.offlineUnknown(errcode.ErrorCodeManifestUnknown, repo, d.String())
	}
	return s.o.Inner.Referrers(ctx, repo, d, query)
}

// offlineUnknown is the error for what the store does not hold when the upstream is not
// contacted: the object is unknown here (the handler answers 404 with code).
func (s *Source) offlineUnknown(code errcode.ErrorCode, repo, ref string) error {
	what := repo
	if ref != "" {
		what += ":" + ref
	}
	return &content.OfflineError{Registry: s.o.Registry, Object: what, Code: code}
}

// logStoreError logs a failed store operation. A store marked unavailable has said so in
// one error line of its own (cache/store), so its refusals are only debug lines here:
// an unwritable store is one clear line, not one per request.
func (s *Source) logStoreError(ctx context.Context, msg string, args ...any) {
	for i := 0; i+1 < len(args); i += 2 {
		if err, ok := args[i+1].(error); ok && errors.Is(err, store.ErrUnavailable) {
			s.log.DebugContext(ctx, msg, args...)
			return
		}
	}
	s.log.ErrorContext(ctx, msg, args...)
}
