package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Tag is what the store knows of a tag: the digest it named when last confirmed upstream.
type Tag struct {
	Digest    digest.Digest
	Confirmed time.Time
}

// PutTag records that the upstream named d for registry/repo:tag now.
func (s *Store) PutTag(ctx context.Context, registry, repo, tag string, d digest.Digest) error {
	if err := checkNames(registry, repo); err != nil {
		return err
	}
	if err := checkTag(tag); err != nil {
		return err
	}
	if err := checkDigest(d); err != nil {
		return err
	}
	b := marshalTag(Tag{Digest: d, Confirmed: s.now()})
	return s.wrapErr(fmt.Sprintf("keeping tag %s/%s:%s", registry, repo, tag), s.putAtomic(ctx, tagLinkPath(registry, repo, tag), b))
}

// GetTag returns the last confirmation of registry/repo:tag; ErrNotFound when none. A link
// that does not parse is removed and answered with ErrCorrupt.
func (s *Store) GetTag(ctx context.Context, registry, repo, tag string) (Tag, error) {
	if err := checkNames(registry, repo); err != nil {
		return Tag{}, err
	}
	if err := checkTag(tag); err != nil {
		return Tag{}, err
	}
	what := fmt.Sprintf("tag %s/%s:%s", registry, repo, tag)
	p := tagLinkPath(registry, repo, tag)
	b, err := s.getBounded(ctx, p, MaxLinkSize)
	if err == nil {
		var t Tag
		if t, err = parseTag(b); err == nil {
			return t, nil
		}
	}
	if errorsIsCorrupt(err) {
		s.log.Error("content store: dropping a corrupt tag link", "store", s.desc, "registry", registry,
			"repository", repo, "tag", tag, "reason", err.Error())
		s.corrupt.Add(1)
		s.d.Delete(context.WithoutCancel(ctx), p)
	}
	return Tag{}, s.wrapErr(what, err)
}

// Tags lists the tags kept for registry/repo, sorted, at most MaxTagsListed of them;
// ErrNotFound when the repository has none.
func (s *Store) Tags(ctx context.Context, registry, repo string) ([]string, error) {
	if err := checkNames(registry, repo); err != nil {
		return nil, err
	}
	base := tagsDir(registry, repo)
	names, err := s.d.List(ctx, base)
	if err != nil {
		return nil, s.wrapErr(fmt.Sprintf("tags of %s/%s", registry, repo), err)
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		t := strings.TrimPrefix(n, base+"/")
		if checkTag(t) == nil {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	if len(out) > MaxTagsListed {
		out = out[:MaxTagsListed]
	}
	return out, nil
}
