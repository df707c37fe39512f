package store

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// Signature is one signature found for an image, kept opaque: the gate re-derives the
// verdict from it under the policy in force.
type Signature struct {
	Format      string            `json:"format"`
	Data        []byte            `json:"data"`
	MIMEType    string            `json:"mimeType,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Origin      string            `json:"origin,omitempty"`
}

// PutSignatures keeps the signatures found for registry/repo@d as one JSON record, kept as
// content by its own digest, replacing the set kept before.
func (s *Store) PutSignatures(ctx context.Context, registry, repo string, d digest.Digest, sigs []Signature) error {
	if err := checkNamesDigest(registry, repo, d); err != nil {
		return err
	}
	b, err := marshalSignatures(sigs)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("keeping signatures of %s/%s@%s", registry, repo, d)
	sd := digest.SHA256.FromBytes(b)
	if err := s.putContent(ctx, sd, b); err != nil {
		return s.wrapErr(what, err)
	}
	if err := s.putAtomic(ctx, signaturesLinkPath(registry, repo, d), []byte(sd.String())); err != nil {
		return s.wrapErr(what, err)
	}
	s.kickEvict()
	return nil
}

// Signatures returns the signatures kept for registry/repo@d, re-hashed; ErrNotFound when
// none are kept, ErrCorrupt (and dropped) when the record no longer matches.
func (s *Store) Signatures(ctx context.Context, registry, repo string, d digest.Digest) ([]Signature, error) {
	if err := checkNamesDigest(registry, repo, d); err != nil {
		return nil, err
	}
	what := fmt.Sprintf("signatures of %s/%s@%s", registry, repo, d)
	link := signaturesLinkPath(registry, repo, d)
	lb, err := s.getBounded(ctx, link, MaxLinkSize)
	if err != nil {
		return nil, s.wrapErr(what, err)
	}
	drop := func(why string, sd digest.Digest) {
		s.log.Error("content store: dropping corrupt signatures; they will be fetched again", "store", s.desc,
			"registry", registry, "repository", repo, "digest", d.String(), "reason", why)
		s.corrupt.Add(1)
		ctx := context.WithoutCancel(ctx)
		if sd != "" {
			s.deleteContent(ctx, sd)
		}
		s.d.Delete(ctx, link)
	}
	sd, err := parseLink(lb)
	if err != nil {
		drop(err.Error(), "")
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	b, err := s.getBounded(ctx, blobPath(sd), MaxSignatureRecordSize)
	if err != nil {
		if errorsIsCorrupt(err) {
			drop(err.Error(), sd)
		}
		return nil, s.wrapErr(what, err)
	}
	if got := digest.SHA256.FromBytes(b); got != sd {
		drop("its bytes hash to "+got.String(), sd)
		return nil, fmt.Errorf("%s: kept record hashes to %s, not %s: %w", what, got, sd, ErrCorrupt)
	}
	sigs, err := parseSignatures(b)
	if err != nil {
		drop(err.Error(), sd)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return sigs, nil
}
