package store

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
)

// The layout inside the driver is distribution's registry layout, so operators recognise
// it; see the package comment.
const (
	rootPath    = "/docker/registry/v2"
	blobsPath   = rootPath + "/blobs/sha256"
	reposPath   = rootPath + "/repositories"
	uploadsPath = rootPath + "/_uploads"
)

func blobDir(d digest.Digest) string {
	h := d.Encoded()
	return blobsPath + "/" + h[:2] + "/" + h
}

func blobPath(d digest.Digest) string { return blobDir(d) + "/data" }

func repoPath(registry, repo string) string {
	return reposPath + "/" + encodeRegistry(registry) + "/" + repo
}

func layerLinkPath(registry, repo string, d digest.Digest) string {
	return repoPath(registry, repo) + "/_layers/sha256/" + d.Encoded() + "/link"
}

func revisionDir(registry, repo string, d digest.Digest) string {
	return repoPath(registry, repo) + "/_manifests/revisions/sha256/" + d.Encoded()
}

func revisionsDir(registry, repo string) string {
	return repoPath(registry, repo) + "/_manifests/revisions/sha256"
}

func tagsDir(registry, repo string) string {
	return repoPath(registry, repo) + "/_manifests/tags"
}

func tagLinkPath(registry, repo, tag string) string {
	return tagsDir(registry, repo) + "/" + tag + "/current/link"
}

func signaturesLinkPath(registry, repo string, d digest.Digest) string {
	return repoPath(registry, repo) + "/_signatures/sha256/" + d.Encoded() + "/link"
}

// Files of a revision directory.
const (
	linkFile   = "link"
	recordFile = "record"
	servedFile = "served"
	pinnedFile = "pinned"
)

// encodeRegistry maps a registry name (host[:port], possibly an IPv6 literal) to one path
// component the drivers accept (distribution's PathRegexp allows only [A-Za-z0-9._-]).
// Letters, digits, '.' and '-' stay; every other byte, '_' included, becomes '_' and two
// lower-case hex digits: 127.0.0.1:5001 is 127.0.0.1_3a5001. The escape is prefix-free, so
// the encoding is injective and decodeRegistry reverses it. A leading '.' is escaped too,
// so no encoded name is "." or "..".
func encodeRegistry(r string) string {
	var b strings.Builder
	for i := 0; i < len(r); i++ {
		c := r[i]
		if isAlnum(c) || c == '-' || (c == '.' && i > 0) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "_%02x", c)
	}
	return b.String()
}

// decodeRegistry reverses encodeRegistry; ok is false for a component it did not make.
func decodeRegistry(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' {
			if !isAlnum(c) && c != '-' && c != '.' {
				return "", false
			}
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		var v byte
		for _, h := range []byte{s[i+1], s[i+2]} {
			switch {
			case h >= '0' && h <= '9':
				v = v<<4 | (h - '0')
			case h >= 'a' && h <= 'f':
				v = v<<4 | (h - 'a' + 10)
			default:
				return "", false
			}
		}
		b.WriteByte(v)
		i += 2
	}
	out := b.String()
	if encodeRegistry(out) != s {
		return "", false
	}
	return out, true
}

func isAlnum(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// repoComponent is one path component of a repository name (distribution/reference's
// grammar): it starts with [a-z0-9], so it can never be "_layers" or "_manifests".
var (
	repoComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagRegexp     = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// maxNameLen bounds a registry or repository name (distribution/reference's limit).
const maxNameLen = 255

func checkRegistry(r string) error {
	if r == "" || len(r) > maxNameLen {
		return fmt.Errorf("registry name %q: %w", r, ErrInvalid)
	}
	for i := 0; i < len(r); i++ {
		if r[i] <= ' ' || r[i] >= 0x7f || r[i] == '/' {
			return fmt.Errorf("registry name %q: %w", r, ErrInvalid)
		}
	}
	return nil
}

func checkRepo(repo string) error {
	if repo == "" || len(repo) > maxNameLen {
		return fmt.Errorf("repository name %q: %w", repo, ErrInvalid)
	}
	for _, c := range strings.Split(repo, "/") {
		if !repoComponent.MatchString(c) {
			return fmt.Errorf("repository name %q: %w", repo, ErrInvalid)
		}
	}
	return nil
}

func checkNames(registry, repo string) error {
	if err := checkRegistry(registry); err != nil {
		return err
	}
	return checkRepo(repo)
}

// checkNamesDigest is checkNames, then checkDigest: the names and the digest of a
// repository's manifest, blob link or signatures.
func checkNamesDigest(registry, repo string, d digest.Digest) error {
	if err := checkNames(registry, repo); err != nil {
		return err
	}
	return checkDigest(d)
}

func checkTag(tag string) error {
	if !tagRegexp.MatchString(tag) {
		return fmt.Errorf("tag %q: %w", tag, ErrInvalid)
	}
	return nil
}

// checkDigest accepts only well-formed sha256 digests: the layout has no other
// algorithm, and distribution's registry supports no other.
func checkDigest(d digest.Digest) error {
	// Validate first: Algorithm panics on a string without ':'.
	if d.Validate() != nil || d.Algorithm() != digest.SHA256 {
		return fmt.Errorf("digest %q: %w", d, ErrInvalid)
	}
	return nil
}

// parsedPath is what an object path under repositories/ says.
type parsedPath struct {
	repoDir string // reposPath/<registry>/<repo>
	kind    string // "revision", "layer", "signatures", "tag"
	digest  digest.Digest
	file    string // for revisions: link, record, served, pinned
	tag     string
}

// parseRepoObject splits an object path under repositories/ into its repository folder and
// what it is; ok is false for anything the store does not write.
func parseRepoObject(p string) (parsedPath, bool) {
	rest, ok := strings.CutPrefix(p, reposPath+"/")
	if !ok {
		return parsedPath{}, false
	}
	for _, m := range []struct{ marker, kind string }{
		{"/_manifests/revisions/sha256/", "revision"},
		{"/_layers/sha256/", "layer"},
		{"/_signatures/sha256/", "signatures"},
		{"/_manifests/tags/", "tag"},
	} {
		i := strings.Index(rest, m.marker)
		if i < 0 {
			continue
		}
		out := parsedPath{repoDir: reposPath + "/" + rest[:i], kind: m.kind}
		tail := strings.Split(rest[i+len(m.marker):], "/")
		if m.kind == "tag" {
			if len(tail) != 3 || tail[1] != "current" || tail[2] != linkFile {
				return parsedPath{}, false
			}
			out.tag = tail[0]
			return out, true
		}
		if len(tail) != 2 {
			return parsedPath{}, false
		}
		d := digest.NewDigestFromEncoded(digest.SHA256, tail[0])
		if d.Validate() != nil {
			return parsedPath{}, false
		}
		out.digest, out.file = d, tail[1]
		if m.kind != "revision" && out.file != linkFile {
			return parsedPath{}, false
		}
		return out, true
	}
	return parsedPath{}, false
}

// parseBlobObject returns the digest of a content path blobs/sha256/<2>/<hex>/data.
func parseBlobObject(p string) (digest.Digest, bool) {
	rest, ok := strings.CutPrefix(p, blobsPath+"/")
	if !ok {
		return "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != "data" {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, parts[1])
	if d.Validate() != nil || parts[0] != parts[1][:2] {
		return "", false
	}
	return d, true
}
