package stored

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/distribution/reference"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/cache/store"
	"github.com/pullgate/pullgate/policy"
)

// Finder fetches an image's signatures from their sources (*sigsource.Finder; the same
// method as enforce.Finder).
type Finder interface {
	Signatures(ctx context.Context, registry, repository string, identity reference.Named, d digest.Digest) ([]policy.Signature, error)
}

// SignatureStore is what Signatures needs of a content store (*store.Store).
type SignatureStore interface {
	PutSignatures(ctx context.Context, registry, repo string, d digest.Digest, sigs []store.Signature) error
	Signatures(ctx context.Context, registry, repo string, d digest.Digest) ([]store.Signature, error)
}

// pendingSignatures bounds the signature lookups remembered until their manifest is kept
// (the gate evaluates before the handler keeps). An image whose lookup was forgotten keeps
// the signatures of its next evaluation.
const pendingSignatures = 4096

// Signatures is the signature finder the gate uses when a content store is configured:
// the live sources when they answer, else the signatures kept with the content, so that a
// kept image is decided under the current policy while the sources are unreachable (a
// reload applies to kept content at once). For an offline upstream only the kept ones are
// read. What the live sources found is kept once the manifest is kept (Keep, the
// Source's OnKeep), so only the signatures of admitted images are kept.
type Signatures struct {
	live    Finder
	store   SignatureStore
	offline map[string]bool
	pending *lru.Cache[sigKey, []policy.Signature]
	// written remembers a digest of the set last kept per image, so that a set found
	// again unchanged (another identity's evaluation of the same digest) is not rewritten.
	written *lru.Cache[sigKey, digest.Digest]
	log     *slog.Logger
}

type sigKey struct {
	registry, repo string
	d              digest.Digest
}

// NewSignatures returns the finder over live (the current sigsource.Finder) and st;
// offline names the upstreams never contacted.
func NewSignatures(live Finder, st SignatureStore, offline map[string]bool, log *slog.Logger) *Signatures {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pending, _ := lru.New[sigKey, []policy.Signature](pendingSignatures)
	written, _ := lru.New[sigKey, digest.Digest](pendingSignatures)
	return &Signatures{live: live, store: st, offline: offline, pending: pending, written: written, log: log}
}

// WithLive returns a finder over another live finder (a policy reload replaced
// registries.d) that shares the pending lookups.
func (s *Signatures) WithLive(live Finder) *Signatures {
	c := *s
	c.live = live
	return &c
}

// Signatures implements enforce.Finder.
func (s *Signatures) Signatures(ctx context.Context, registry, repo string, identity reference.Named, d digest.Digest) ([]policy.Signature, error) {
	if s.offline[registry] {
		kept, err := s.kept(ctx, registry, repo, d)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil // nothing kept: no signatures, which the policy judges
		}
		return kept, err
	}
	sigs, err := s.live.Signatures(ctx, registry, repo, identity, d)
	if err == nil {
		s.pending.Add(sigKey{registry, repo, d}, sigs)
		return sigs, nil
	}
	kept, kerr := s.kept(ctx, registry, repo, d)
	if kerr != nil {
		return nil, err
	}
	s.log.WarnContext(ctx, "signature sources could not be read; deciding with the signatures kept with the content",
		"upstream", registry, "repository", repo, "digest", d, "error", err, "kept", len(kept))
	return kept, nil
}

func (s *Signatures) kept(ctx context.Context, registry, repo string, d digest.Digest) ([]policy.Signature, error) {
	stored, err := s.store.Signatures(ctx, registry, repo, d)
	if err != nil {
		return nil, err
	}
	out := make([]policy.Signature, 0, len(stored))
	for _, k := range stored {
		out = append(out, policy.Signature{Format: policy.SignatureFormat(k.Format), Data: k.Data, MIMEType: k.MIMEType,
			Annotations: k.Annotations, Origin: "kept: " + k.Origin})
	}
	return out, nil
}

// Keep keeps the signatures last found for manifest d of registry/repo, now that the
// manifest is kept.
func (s *Signatures) Keep(ctx context.Context, registry, repo string, d digest.Digest) {
	sigs, ok := s.pending.Peek(sigKey{registry, repo, d})
	if !ok || len(sigs) == 0 {
		return
	}
	out := make([]store.Signature, 0, len(sigs))
	for _, sg := range sigs {
		out = append(out, store.Signature{Format: string(sg.Format), Data: sg.Data, MIMEType: sg.MIMEType,
			Annotations: sg.Annotations, Origin: sg.Origin})
	}
	key := sigKey{registry, repo, d}
	sum := setDigest(out)
	if last, ok := s.written.Get(key); ok && last == sum {
		s.pending.Remove(key)
		return
	}
	if err := s.store.PutSignatures(ctx, registry, repo, d, out); err != nil {
		s.log.ErrorContext(ctx, "failed to keep signatures in the content store", "upstream", registry,
			"repository", repo, "digest", d, "error", err)
		return
	}
	s.pending.Remove(key)
	s.written.Add(key, sum)
}

// setDigest names a signature set by its content.
func setDigest(sigs []store.Signature) digest.Digest {
	b, _ := json.Marshal(sigs) // plain data: cannot fail
	return digest.FromBytes(b)
}

// KeptSimpleSignatures is pullgate's signature API for an upstream that is never
// contacted: the simple signatures kept for registry/repo@d whose (unverified) payload
// names d, as the live finder filters them. None kept is an empty list.
func (s *Signatures) KeptSimpleSignatures(ctx context.Context, registry, repo string, d digest.Digest) ([][]byte, error) {
	kept, err := s.kept(ctx, registry, repo, d)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, k := range kept {
		if k.Format != policy.FormatSimpleSigning {
			continue
		}
		if claimed, err := policy.UntrustedSimpleSigningDigest(k.Data); err != nil || claimed != d {
			continue
		}
		out = append(out, k.Data)
	}
	return out, nil
}
