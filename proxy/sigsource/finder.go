package sigsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/distribution/reference"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/cache"
	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy/admission"
)

// Finder finds an image's signatures in the places containers/image looks, configured
// by registries.d and looked up by the image's upstream name (DESIGN.md, difference 4):
//   - the registry signature API when the upstream advertises it, otherwise the
//     lookaside, if one is configured;
//   - plus, where use-sigstore-attachments applies, the cosign sha256-<hex>.sig
//     attachment and (beyond containers/image) Sigstore bundles attached as referrers.
//
// Found signatures are cached (errors never are), so that an image verified once needs
// no further round trip while its verdict is fresh, and so that pullgate can serve them
// through its own signature API. That API serves what the verdict lookups of the manifest
// used (verdictSettings), whatever tag-scoped section they resolved to.
type Finder struct {
	registries      map[string]Registry
	registriesD     *RegistriesD
	lookaside       *Lookaside
	found           *cache.TTL[findKey, []policy.Signature]
	ttl             time.Duration
	flights         cache.Group[[]policy.Signature]
	verdictSettings *verdictSettings
	log             *slog.Logger
}

// FinderOptions configures a Finder.
type FinderOptions struct {
	// Registries maps upstream registry names to their clients. Required.
	Registries map[string]Registry
	// RegistriesD is the parsed registries.d; nil means an empty one.
	RegistriesD *RegistriesD
	// Lookaside reads lookaside storage; nil means the default reader.
	Lookaside *Lookaside
	// CacheTTL is how long found signatures are reused; CacheSize bounds how many images'
	// signatures are kept (lookups larger than maxCachedSignatureBytes are not kept), and
	// for how many manifests the settings of their verdict lookups are remembered for the
	// signature API. Zero means defaults. A TTL no longer than the gate's deny TTL keeps
	// an image that was denied for lack of signatures from being denied again on stale
	// signatures.
	CacheTTL  time.Duration
	CacheSize int
	Logger    *slog.Logger
}

const (
	defaultFoundTTL  = 10 * time.Minute
	defaultFoundSize = 10000
	// findTimeout bounds one shared lookup; every lookaside and registry request in it
	// has its own tighter bounds.
	findTimeout = 2 * time.Minute
)

// findKey identifies one lookup: the same image with the same resolved settings.
type findKey struct {
	registry, repository string
	digest               digest.Digest
	lookaside            string
	attachments          bool
}

// ID names the configuration a reload can change under the finder: its registries.d
// (RegistriesD.ID). The upstreams and lookaside client it reads are fixed for the process.
func (f *Finder) ID() string { return f.registriesD.ID() }

// NewFinder returns a Finder.
func NewFinder(opts FinderOptions) (*Finder, error) {
	if len(opts.Registries) == 0 {
		return nil, errors.New("sigsource: no registries")
	}
	if opts.RegistriesD == nil {
		opts.RegistriesD = emptyRegistriesD()
	}
	if opts.Lookaside == nil {
		opts.Lookaside = &Lookaside{Client: defaultLookasideClient, Logger: opts.Logger}
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = defaultFoundTTL
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = defaultFoundSize
	}
	found, err := cache.NewTTL[findKey, []policy.Signature](opts.CacheSize)
	if err != nil {
		return nil, err
	}
	vs, err := newVerdictSettings(opts.CacheSize)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Finder{registries: opts.Registries, registriesD: opts.RegistriesD, lookaside: opts.Lookaside,
		found: found, ttl: opts.CacheTTL, flights: cache.Group[[]policy.Signature]{Timeout: findTimeout},
		verdictSettings: vs, log: log}, nil
}

// Signatures returns the signatures stored for manifest d of registry/repository, for a
// verdict: identity is the image's policy identity (with tag or digest), and registries.d
// is looked up by it. The settings of a lookup that succeeds are remembered for d, and
// pullgate's signature API (SimpleSignatures) reads with them; only verdict lookups may
// call Signatures, or a client could steer that API to a section no verdict used.
func (f *Finder) Signatures(ctx context.Context, registry, repository string, identity reference.Named, d digest.Digest) ([]policy.Signature, error) {
	reg, ok := f.registries[registry]
	if !ok {
		return nil, fmt.Errorf("sigsource: %q is not a configured upstream", registry)
	}
	settings, err := f.registriesD.Lookup(identity)
	if err != nil {
		return nil, err
	}
	sigs, err := f.find(ctx, reg, registry, repository, d, settings)
	if err != nil {
		// Not remembered: an indeterminate verdict serves no manifest, and a section that
		// fails must not displace one that served a verdict on d.
		return nil, err
	}
	f.verdictSettings.remember(imageKey{registry: registry, repository: repository, digest: d}, settings)
	return sigs, nil
}

// find returns the signatures of d found with settings: from the cache, or by one fetch
// shared by all concurrent callers.
func (f *Finder) find(ctx context.Context, reg Registry, registry, repository string, d digest.Digest, settings Settings) ([]policy.Signature, error) {
	key := newFindKey(registry, repository, d, settings)
	if sigs, ok := f.found.Get(key); ok {
		return sigs, nil
	}
	flight := fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%v", key.registry, key.repository, key.digest, key.lookaside, key.attachments)
	sigs, _, err := f.flights.Do(ctx, flight, func(ctx context.Context) ([]policy.Signature, error) {
		if sigs, ok := f.found.Get(key); ok {
			return sigs, nil
		}
		sigs, err := f.fetch(ctx, reg, repository, d, settings)
		if err != nil {
			return nil, err
		}
		if signatureBytes(sigs) <= maxCachedSignatureBytes {
			f.found.Add(key, sigs, f.ttl)
		}
		return sigs, nil
	})
	return sigs, err
}

// newFindKey is the cache key of a lookup of d with settings.
func newFindKey(registry, repository string, d digest.Digest, s Settings) findKey {
	key := findKey{registry: registry, repository: repository, digest: d, attachments: s.UseSigstoreAttachments}
	if s.Lookaside != nil {
		key.lookaside = s.Lookaside.String()
	}
	return key
}

// imageKey names one manifest of one repository of one upstream.
type imageKey struct {
	registry, repository string
	digest               digest.Digest
}

// verdictSettings remembers, for each manifest, the registries.d settings of its latest
// successful verdict lookups (most recent first, at most maxVerdictSettingsPerImage
// distinct ones), for at most size manifests, least recently used forgotten first. No
// lifetime: the settings are the operator's registries.d, fixed for the Finder's life (a
// reload makes a new Finder), and the signatures themselves are cached (or not) apart.
type verdictSettings struct {
	mu  sync.Mutex // serialises remember's read-modify-write
	lru *lru.Cache[imageKey, []Settings]
}

func newVerdictSettings(size int) (*verdictSettings, error) {
	l, err := lru.New[imageKey, []Settings](size)
	if err != nil {
		return nil, fmt.Errorf("sigsource: %w", err)
	}
	return &verdictSettings{lru: l}, nil
}

// remember puts s first for k. The stored slice is never changed afterwards (a new one
// replaces it), so get's callers may read it without the lock.
func (v *verdictSettings) remember(k imageKey, s Settings) {
	v.mu.Lock()
	defer v.mu.Unlock()
	old, _ := v.lru.Peek(k)
	same := newFindKey(k.registry, k.repository, k.digest, s)
	next := make([]Settings, 1, min(len(old)+1, maxVerdictSettingsPerImage))
	next[0] = s
	for _, o := range old {
		if len(next) == maxVerdictSettingsPerImage {
			break
		}
		if newFindKey(k.registry, k.repository, k.digest, o) != same {
			next = append(next, o)
		}
	}
	v.lru.Add(k, next)
}

// get returns the settings remembered for k, most recent first (none: no verdict lookup
// of k succeeded, or it was forgotten).
func (v *verdictSettings) get(k imageKey) []Settings {
	s, _ := v.lru.Get(k)
	return s
}

// signatureBytes is what caching sigs costs, roughly.
func signatureBytes(sigs []policy.Signature) int {
	n := 0
	for _, s := range sigs {
		n += len(s.Data)
		for k, v := range s.Annotations {
			n += len(k) + len(v)
		}
	}
	return n
}

// fetch reads every configured source, in containers/image's order: simple signatures,
// then sigstore attachments, then (pullgate's addition) Sigstore bundles, all within one
// budget (maxSignaturesPerImage, maxSignatureBytesPerImage): past it the lookup fails.
func (f *Finder) fetch(ctx context.Context, reg Registry, repository string, d digest.Digest, s Settings) ([]policy.Signature, error) {
	start := time.Now()
	b := newBudget()
	defer b.release()
	var sigs []policy.Signature
	ext, err := reg.SupportsSignatureExtension(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: probing for the signature API: %w", ErrRegistryFetch, err)
	}
	switch {
	case ext:
		// containers/image does not consult the lookaside when the registry has the API.
		found, err := extensionSignatures(ctx, reg, repository, d, b)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, found...)
	case s.Lookaside != nil:
		err := f.lookaside.read(ctx, s.Lookaside, d, b, func(r RawSignature) error {
			sig, err := policy.ParseSignatureBlob(r.Data)
			if err != nil {
				// One unreadable file fails the lookup, as in containers/image.
				return fmt.Errorf("%w: %s: %w", ErrLookasideFetch, r.Origin, err)
			}
			sig.Origin = r.Origin
			sigs = append(sigs, sig)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if s.UseSigstoreAttachments {
		found, err := sigstoreAttachments(ctx, reg, repository, d, b)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, found...)
		bundles, err := referrerBundles(ctx, reg, repository, d, b)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, bundles...)
	}
	f.log.Debug("signatures found", "repository", repository, "digest", d.String(), "count", len(sigs),
		"signature_api", ext, "lookaside", s.Lookaside != nil, "sigstore_attachments", s.UseSigstoreAttachments,
		"duration", time.Since(start))
	return sigs, nil
}

// SimpleSignatures implements proxy.SignatureLister: the OpenPGP signatures found for a
// manifest digest, for pullgate's own signature API. They are read with the registries.d
// settings the verdict lookups of d used (with the tag identity a client pulled by, which
// may select a tag-scoped section), so that a client copying signatures after the manifest
// gets those the verdict found; the settings of every remembered verdict lookup are read
// and their signatures served together. Only when no verdict lookup of d is remembered is
// registries.d looked up by repo@digest. A client chooses only the digest, so it cannot
// make pullgate read a section that no verdict on that digest used.
//
// Only signatures of that image are passed on: each must parse as an OpenPGP signed
// message (one signature, not verified) whose simple-signing payload names d. Anything
// else a lookaside or the upstream's signature API returned (an internal page that starts
// like an OpenPGP packet, a signature of another image) is dropped, never relayed.
func (f *Finder) SimpleSignatures(ctx context.Context, t admission.Target, d digest.Digest) ([][]byte, error) {
	sigs, err := f.servedSignatures(ctx, t, d)
	if err != nil {
		// 503 whatever the upstream answered while they were read: its 403 on a .sig tag
		// or 404 on a referrer says nothing about the signature list asked for, and the
		// handler would relay such an answer as is.
		return nil, &admission.UnreadableError{Err: err}
	}
	var out [][]byte
	for _, s := range sigs {
		if s.Format != policy.FormatSimpleSigning {
			continue
		}
		claimed, err := policy.UntrustedSimpleSigningDigest(s.Data)
		switch {
		case err != nil:
			f.log.Warn("not serving a blob that is not a simple signature", "repository", t.Repository,
				"digest", d.String(), "origin", s.Origin, "error", err)
			continue
		case claimed != d:
			f.log.Warn("not serving a signature of another image", "repository", t.Repository,
				"digest", d.String(), "origin", s.Origin, "signed_digest", claimed.String())
			continue
		}
		out = append(out, s.Data)
	}
	return out, nil
}

// servedSignatures finds the signatures SimpleSignatures filters: those of the remembered
// verdict lookups of d (an error only when every one fails: a signature API answer with
// fewer signatures can only make a client refuse), else those of the repo@digest lookup.
func (f *Finder) servedSignatures(ctx context.Context, t admission.Target, d digest.Digest) ([]policy.Signature, error) {
	reg, ok := f.registries[t.Registry]
	if !ok {
		return nil, fmt.Errorf("sigsource: %q is not a configured upstream", t.Registry)
	}
	remembered := f.verdictSettings.get(imageKey{registry: t.Registry, repository: t.Repository, digest: d})
	if len(remembered) == 0 {
		named, err := reference.ParseNormalizedNamed(t.Registry + "/" + t.Repository)
		if err != nil {
			return nil, fmt.Errorf("sigsource: %w", err)
		}
		identity, err := reference.WithDigest(named, d)
		if err != nil {
			return nil, fmt.Errorf("sigsource: %w", err)
		}
		settings, err := f.registriesD.Lookup(identity)
		if err != nil {
			return nil, err
		}
		return f.find(ctx, reg, t.Registry, t.Repository, d, settings)
	}
	var all []policy.Signature
	var errs []error
	for i, s := range remembered {
		sigs, err := f.find(ctx, reg, t.Registry, t.Repository, d, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if i == 0 {
			all = append(all, sigs...) // as found, repeats included, like any single lookup
			continue
		}
		// A signature that an earlier section found too is served once.
		for _, sig := range sigs {
			if !slices.ContainsFunc(all, func(a policy.Signature) bool { return a.Format == sig.Format && bytes.Equal(a.Data, sig.Data) }) {
				all = append(all, sig)
			}
		}
	}
	if len(errs) == len(remembered) {
		return nil, errors.Join(errs...)
	}
	if len(errs) > 0 {
		f.log.Warn("some signatures of a verdict could not be read again for the signature API", "repository", t.Repository,
			"digest", d.String(), "error", errors.Join(errs...))
	}
	return all, nil
}
