package airgap

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/pullgate/pullgate/cache/store"
	"github.com/pullgate/pullgate/internal/readfile"
	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy/content"
)

// layoutDir is an OCI image layout read by import. Nothing in it is trusted: every
// manifest and blob is hashed before use, and the images it names are gated under the
// importing site's policy with only the signatures it carries.
type layoutDir struct {
	dir string
	// images are the entries of index.json naming an image (not an attachment).
	images []layoutEntry
	// repos maps registry → repository → what it holds.
	repos map[string]map[string]*layoutRepo
}

type layoutEntry struct {
	name string // the full reference of ref.name
	ref  Ref
	desc descriptor
}

type layoutRepo struct {
	tags      map[string]descriptor
	referrers map[digest.Digest][]descriptor // by subject
}

// readLayout reads DIR/index.json (bounded) and the referrers it lists.
func readLayout(dir string) (*layoutDir, error) {
	b, err := readBounded(filepath.Join(dir, "index.json"), maxIndexJSON)
	if err != nil {
		return nil, err
	}
	var idx struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s/index.json: %w", dir, err)
	}
	l := &layoutDir{dir: dir, repos: map[string]map[string]*layoutRepo{}}
	for _, d := range idx.Manifests {
		name := d.Annotations[ocispec.AnnotationRefName]
		if name == "" || d.Digest.Validate() != nil || d.Digest.Algorithm() != digest.SHA256 {
			continue
		}
		named, err := reference.ParseNormalizedNamed(name)
		if err != nil || reference.Domain(named) == "" || !strings.Contains(name, "/") {
			continue // a short name another tool wrote; pullgate's names are full references
		}
		ref := Ref{Registry: reference.Domain(named), Repo: reference.Path(named)}
		repo := l.repo(ref.Registry, ref.Repo)
		switch r := named.(type) {
		case reference.Tagged:
			ref.Tag = r.Tag()
			repo.tags[ref.Tag] = d
			if isAttachmentTag(ref.Tag) {
				continue
			}
		case reference.Digested:
			ref.Digest = r.Digest()
			if ref.Digest != d.Digest {
				continue
			}
			// A referrer (it has a subject) is found through its subject, not imported alone.
			if m, err := l.readManifest(d.Digest); err == nil {
				if doc, err := parseManifest(m); err == nil && doc.Subject != nil {
					rd := d
					rd.ArtifactType = artifactTypeOf(m, doc)
					repo.referrers[doc.Subject.Digest] = append(repo.referrers[doc.Subject.Digest], rd)
					continue
				}
			}
		default:
			continue
		}
		l.images = append(l.images, layoutEntry{name: name, ref: ref, desc: d})
	}
	return l, nil
}

// isAttachmentTag reports a cosign attachment tag, sha256-<hex>.sig (or .att).
func isAttachmentTag(tag string) bool {
	rest, ok := strings.CutPrefix(tag, "sha256-")
	if !ok {
		return false
	}
	hex, ok := strings.CutSuffix(rest, ".sig")
	if !ok {
		hex, ok = strings.CutSuffix(rest, ".att")
	}
	return ok && digest.NewDigestFromEncoded(digest.SHA256, hex).Validate() == nil
}

func artifactTypeOf(b []byte, doc *manifestDoc) string {
	var at struct {
		ArtifactType string `json:"artifactType"`
	}
	_ = json.Unmarshal(b, &at)
	if at.ArtifactType != "" {
		return at.ArtifactType
	}
	if doc.Config != nil {
		return doc.Config.MediaType
	}
	return ""
}

func (l *layoutDir) repo(registry, repo string) *layoutRepo {
	r := l.repos[registry]
	if r == nil {
		r = map[string]*layoutRepo{}
		l.repos[registry] = r
	}
	lr := r[repo]
	if lr == nil {
		lr = &layoutRepo{tags: map[string]descriptor{}, referrers: map[digest.Digest][]descriptor{}}
		r[repo] = lr
	}
	return lr
}

func (l *layoutDir) blobPath(d digest.Digest) string {
	return filepath.Join(l.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// readManifest reads a manifest file whose bytes hash to d.
func (l *layoutDir) readManifest(d digest.Digest) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	b, err := readBounded(l.blobPath(d), maxManifestBytes)
	if errors.Is(err, readfile.ErrNotRegular) {
		return nil, &RejectedError{What: "DIR manifest " + d.String(), Reason: "not a regular file: DIR was altered"}
	}
	if err != nil {
		return nil, err
	}
	if got := digest.SHA256.FromBytes(b); got != d {
		return nil, &RejectedError{What: "DIR manifest " + d.String(), Reason: "its bytes in DIR hash to " + got.String() + ": DIR was altered"}
	}
	return b, nil
}

// manifestMediaType is a manifest's media type, from its mediaType member (what the
// gate's shape check compares the Content-Type with), else guessed as OCI.
func manifestMediaType(b []byte) string {
	var doc struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	_ = json.Unmarshal(b, &doc)
	switch {
	case doc.MediaType != "":
		return doc.MediaType
	case doc.Manifests != nil:
		return content.MediaTypeOCIIndex
	}
	return content.MediaTypeOCIManifest
}

// stagedImage is what stageImage checked of an image's blobs in DIR: the blobs staged in
// the store (uncommitted, invisible) and those the store already kept, hashed in DIR
// too (nil). It is used by one goroutine once staging is done.
type stagedImage struct {
	blobs map[digest.Digest]*store.Staged
	// counted is what onBytes was told while staging: taken back when nothing is kept, so
	// that progress counts the bytes of kept blobs only, as when the keep read them.
	counted   atomic.Int64
	onBytes   func(int64)
	committed bool
}

// stageImage re-reads in DIR every manifest of im (as the decision walked it) and stages
// every blob of it in st from its DIR file, reading and hashing each once: a file that
// does not match its digest or size rejects the image and leaves nothing staged. A blob
// the store already keeps is only hashed in DIR. onBytes is told of the bytes staged.
func (l *layoutDir) stageImage(ctx context.Context, st *store.Store, im *Image, onBytes func(int64)) (*stagedImage, error) {
	for _, m := range im.Manifests {
		if _, err := l.readManifest(m.Digest); err != nil {
			if IsRejected(err) {
				return nil, err
			}
			return nil, fmt.Errorf("%s: manifest %s: %w", im.Name(), m.Digest, err)
		}
	}
	si := &stagedImage{blobs: map[digest.Digest]*store.Staged{}, onBytes: onBytes}
	count := func(n int64) {
		si.counted.Add(n)
		if onBytes != nil {
			onBytes(n)
		}
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelBlobs)
	for _, b := range im.Blobs {
		g.Go(func() error {
			staged, err := l.stageBlob(gctx, st, b, count)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				si.blobs[b.Digest] = staged
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		si.discard()
		return nil, err
	}
	return si, nil
}

// stageBlob stages one blob from its DIR file (nil when it needs no staging: the empty
// config, which is never kept, or a blob the store keeps already, both only hashed).
func (l *layoutDir) stageBlob(ctx context.Context, st *store.Store, b Blob, onBytes func(int64)) (*store.Staged, error) {
	if b.isEmpty() {
		return nil, l.hashBlob(b)
	}
	if info, err := st.StatBlob(ctx, b.Digest); err == nil && info.Size == b.Size {
		return nil, l.hashBlob(b)
	}
	f, err := l.openBlob(b)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	staged, err := st.Stage(ctx, b.Digest, b.Size, &countingReader{r: f, on: onBytes})
	var mm *store.MismatchError
	if errors.As(err, &mm) {
		return nil, mismatch(b, mm.Read, mm.Got)
	}
	if err != nil {
		return nil, fmt.Errorf("DIR blob %s: %w", b.Digest, err)
	}
	return staged, nil
}

// commit commits the staged blobs of blobs (the image as kept): every one must have
// been checked by stageImage. What is staged and not listed is discarded.
func (si *stagedImage) commit(ctx context.Context, blobs []Blob) error {
	defer si.discard()
	for _, b := range blobs {
		if _, ok := si.blobs[b.Digest]; !ok && !b.isEmpty() {
			return fmt.Errorf("blob %s was not checked in DIR before it was decided", b.Digest)
		}
	}
	si.committed = true
	for _, b := range blobs {
		staged, ok := si.blobs[b.Digest]
		if ok && staged != nil {
			if err := staged.Commit(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// discard removes whatever is still staged; before a commit, it takes back the bytes
// progress was told of.
func (si *stagedImage) discard() {
	if !si.committed && si.onBytes != nil {
		si.onBytes(-si.counted.Swap(0))
	}
	for _, staged := range si.blobs {
		if staged != nil {
			staged.Discard()
		}
	}
}

// openBlob opens one blob file: a regular file of the size the manifest gives (DIR
// comes from outside: a FIFO or a link to a device must not hang or feed the import
// forever). Its reader must read no further than that size.
func (l *layoutDir) openBlob(b Blob) (*os.File, error) {
	f, fi, err := readfile.Open(l.blobPath(b.Digest))
	switch {
	case errors.Is(err, readfile.ErrNotRegular):
		return nil, &RejectedError{What: "DIR blob " + b.Digest.String(), Reason: "not a regular file: DIR was altered"}
	case err != nil:
		return nil, &RejectedError{What: "DIR blob " + b.Digest.String(), Reason: "missing from DIR: " + err.Error()}
	}
	if fi.Size() != b.Size {
		f.Close()
		return nil, &RejectedError{What: "DIR blob " + b.Digest.String(),
			Reason: fmt.Sprintf("it is %d bytes in DIR (the manifest says %d): DIR was altered", fi.Size(), b.Size)}
	}
	return f, nil
}

// hashBlob hashes one blob file opened by openBlob, read no further than its size + 1.
func (l *layoutDir) hashBlob(b Blob) error {
	f, err := l.openBlob(b)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, b.Size+1))
	if err != nil {
		return fmt.Errorf("DIR blob %s: %w", b.Digest, err)
	}
	if got := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)); got != b.Digest || n != b.Size {
		return mismatch(b, n, got)
	}
	return nil
}

// mismatch is the rejection of a blob whose n bytes in DIR hash to got.
func mismatch(b Blob, n int64, got digest.Digest) error {
	return &RejectedError{What: "DIR blob " + b.Digest.String(),
		Reason: fmt.Sprintf("its %d bytes in DIR hash to %s (the manifest says %d bytes): DIR was altered", n, got, b.Size)}
}

// readBounded reads a regular file of at most limit bytes. Its errors are worded as the
// os package words them, not with readfile's prefixes.
func readBounded(path string, limit int64) ([]byte, error) {
	b, err := readfile.Bounded(path, limit)
	var pathErr *fs.PathError
	switch {
	case errors.Is(err, readfile.ErrTooLarge):
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	case errors.As(err, &pathErr):
		return nil, pathErr // an open, stat or read error, without "reading PATH: "
	}
	return b, err
}

// verifyTree re-hashes in DIR everything an image can bring from it: the manifest d of
// registry/repo, an index's children, and for each manifest its .sig attachment and the
// referrers DIR lists, with all their blobs. Import runs it when an image could not be
// decided: an altered signature in DIR (a .sig layer that fails its digest) makes the
// signature lookup fail, and that is a rejection of the image, not an error of the run.
func (l *layoutDir) verifyTree(registry, repo string, d digest.Digest) error {
	lr := l.repos[registry][repo]
	seen := map[digest.Digest]bool{}
	var walk func(d digest.Digest, depth int) error
	walk = func(d digest.Digest, depth int) error {
		if seen[d] {
			return nil
		}
		seen[d] = true
		if len(seen) > maxManifestsPerImage || depth > maxDepth+2 {
			return fmt.Errorf("DIR: %s/%s@%s brings too many manifests", registry, repo, d)
		}
		b, err := l.readManifest(d)
		if err != nil {
			return err
		}
		doc, err := parseManifest(b)
		if err != nil {
			return &RejectedError{What: "DIR manifest " + d.String(), Reason: "unreadable: " + err.Error()}
		}
		for _, bl := range doc.blobs() {
			if !bl.isEmpty() {
				if err := l.hashBlob(bl); err != nil {
					return err
				}
			}
		}
		for _, c := range doc.Manifests {
			if err := walk(c.Digest, depth+1); err != nil {
				return err
			}
		}
		if err := l.checkSignatureFiles(registry, repo, d); err != nil {
			return err
		}
		if lr == nil {
			return nil
		}
		if sig, ok := lr.tags[strings.Replace(d.String(), ":", "-", 1)+".sig"]; ok {
			if err := walk(sig.Digest, depth+1); err != nil {
				return err
			}
		}
		for _, r := range lr.referrers[d] {
			if err := walk(r.Digest, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(d, 0)
}

// checkSignatureFiles reads the simple signatures DIR holds for d as the lookaside
// reader does (signature-1, signature-2, ... up to the first missing one): one that is
// not a signature at all rejects the image.
func (l *layoutDir) checkSignatureFiles(registry, repo string, d digest.Digest) error {
	dir := SignatureDir(l.dir, registry, repo, d)
	for n := 1; n <= maxSignatureFiles; n++ {
		p := filepath.Join(dir, fmt.Sprintf("signature-%d", n))
		b, err := readBounded(p, maxSignatureFile)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err == nil {
			_, err = policy.ParseSignatureBlob(b)
		}
		if err != nil {
			return &RejectedError{What: "DIR signature " + p, Reason: "unreadable: " + err.Error() + ": DIR was altered"}
		}
	}
	return nil
}
