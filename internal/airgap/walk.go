package airgap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/pullgate/pullgate/proxy/content"
)

// manifestAccept is what the walk asks manifests with: every type a client pulls.
var manifestAccept = []string{content.MediaTypeOCIIndex, content.MediaTypeDockerList, content.MediaTypeOCIManifest, content.MediaTypeDockerManifest}

// Kind says why a manifest belongs to an image.
type Kind string

const (
	KindTop      Kind = "top"      // the manifest the reference names
	KindChild    Kind = "child"    // listed by an index of the image
	KindSig      Kind = "sig"      // a cosign sha256-<hex>.sig attachment
	KindReferrer Kind = "referrer" // a Sigstore bundle referrer
)

// Manifest is one manifest of an image, with the exact bytes the gate admitted.
type Manifest struct {
	Kind      Kind
	Digest    digest.Digest
	MediaType string
	Bytes     []byte
	// Tag is the tag it was reached by ("" for one reached by digest).
	Tag string
	// Subject is the manifest an attachment or referrer is about.
	Subject digest.Digest
}

// Blob is a config or layer of an image's manifests.
type Blob struct {
	Digest digest.Digest
	Size   int64
}

// emptyJSON is the OCI empty descriptor's content, the config of artifacts such as
// Sigstore bundle referrers. The gate does not serve it (it is nobody's image content),
// so it is never fetched: export writes these two bytes.
var emptyJSON = []byte("{}")

var emptyDigest = digest.FromBytes(emptyJSON)

func (b Blob) isEmpty() bool { return b.Digest == emptyDigest && b.Size == int64(len(emptyJSON)) }

// Image is one reference and everything the gate admitted for it.
type Image struct {
	Registry, Repo string
	// Tag or Digest is what the reference names; Digest is filled in by the walk.
	Tag       string
	Digest    digest.Digest
	Manifests []Manifest
	Blobs     []Blob
}

// Name is the full reference: registry/repo:tag or registry/repo@digest.
func (im *Image) Name() string {
	if im.Tag != "" {
		return im.Registry + "/" + im.Repo + ":" + im.Tag
	}
	return im.Registry + "/" + im.Repo + "@" + im.Digest.String()
}

// Bytes is the size of the image's blobs and manifests.
func (im *Image) Bytes() int64 {
	var n int64
	for _, b := range im.Blobs {
		n += b.Size
	}
	for _, m := range im.Manifests {
		n += int64(len(m.Bytes))
	}
	return n
}

// RejectedError is a 403 of the gate: the policy rejects (part of) the image.
type RejectedError struct {
	What   string
	Reason string
	// Digest is the digest rejected, when the gate said (its detail).
	Digest digest.Digest
}

func (e *RejectedError) Error() string { return e.What + ": " + e.Reason }

// IsRejected reports whether err is a policy rejection (or, for import, content of DIR
// that does not match its digest).
func IsRejected(err error) bool {
	var r *RejectedError
	return errors.As(err, &r)
}

// walker pulls an image through a pullgate /v2/ handler, as a client does: the manifest
// the reference names, every child of an index, the cosign .sig attachment and Sigstore
// bundle referrers where the image's registries.d section uses them, and (blobs true)
// every blob, read whole.
type walker struct {
	base   string // http://127.0.0.1:<port> of the handler
	client *http.Client
	// attachments reports whether use-sigstore-attachments applies to the image.
	attachments func(im *Image) bool
	blobs       bool
	// haveBlob reports a blob already kept (not read again); nil: read every blob.
	haveBlob func(ctx context.Context, b Blob) bool
	// onBytes is told of blob bytes read.
	onBytes func(n int64)
}

// walk fills in im: Digest, Manifests, Blobs.
func (w *walker) walk(ctx context.Context, im *Image) error {
	ref := im.Tag
	if ref == "" {
		ref = im.Digest.String()
	}
	top, err := w.manifest(ctx, im, ref)
	if err != nil {
		var rej *RejectedError
		if errors.As(err, &rej) && im.Digest == "" {
			im.Digest = rej.Digest
		}
		return err
	}
	if im.Digest != "" && top.Digest != im.Digest {
		return fmt.Errorf("%s: the handler answered %s", im.Name(), top.Digest)
	}
	im.Digest = top.Digest
	top.Kind, top.Tag = KindTop, im.Tag
	seen := map[digest.Digest]bool{}
	blobSeen := map[digest.Digest]bool{}
	if err := w.tree(ctx, im, top, 0, seen, blobSeen); err != nil {
		return err
	}
	if w.attachments != nil && w.attachments(im) {
		// Attachments of every manifest of the image (cosign sign --recursive signs the
		// children too).
		subjects := make([]Manifest, len(im.Manifests))
		copy(subjects, im.Manifests)
		for _, s := range subjects {
			if err := w.attachmentsOf(ctx, im, s.Digest, seen, blobSeen); err != nil {
				return err
			}
		}
	}
	if w.blobs {
		// A few at once: one blob's hashing and writing (the store's spool, the handler's
		// check) leaves the other core idle.
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(parallelBlobs)
		for _, b := range im.Blobs {
			g.Go(func() error { return w.blob(gctx, im, b) })
		}
		return g.Wait()
	}
	return nil
}

// tree adds m and, for an index, its children, and the blobs they list.
func (w *walker) tree(ctx context.Context, im *Image, m *Manifest, depth int, seen, blobSeen map[digest.Digest]bool) error {
	if seen[m.Digest] {
		return nil
	}
	seen[m.Digest] = true
	if len(im.Manifests) >= maxManifestsPerImage {
		return fmt.Errorf("%s: more than %d manifests", im.Name(), maxManifestsPerImage)
	}
	im.Manifests = append(im.Manifests, *m)
	doc, err := parseManifest(m.Bytes)
	if err != nil {
		return fmt.Errorf("%s: manifest %s: %w", im.Name(), m.Digest, err)
	}
	for _, b := range doc.blobs() {
		if !blobSeen[b.Digest] {
			blobSeen[b.Digest] = true
			im.Blobs = append(im.Blobs, b)
		}
	}
	if len(doc.Manifests) > 0 && depth >= maxDepth {
		return fmt.Errorf("%s: indexes nested more than %d deep", im.Name(), maxDepth)
	}
	if len(doc.Manifests) > maxChildren {
		return fmt.Errorf("%s: an index of %d manifests, more than %d", im.Name(), len(doc.Manifests), maxChildren)
	}
	for _, c := range doc.Manifests {
		if err := c.Digest.Validate(); err != nil {
			return fmt.Errorf("%s: index %s lists %q: %w", im.Name(), m.Digest, c.Digest, err)
		}
		child, err := w.manifest(ctx, im, c.Digest.String())
		if err != nil {
			return err
		}
		child.Kind = KindChild
		if err := w.tree(ctx, im, child, depth+1, seen, blobSeen); err != nil {
			return err
		}
	}
	return nil
}

// attachmentsOf adds the .sig attachment of d and its Sigstore bundle referrers, with
// their blobs. None is fine; a referrer the gate does not admit as an attachment is
// another artifact (an SBOM), not part of the image, and is left out.
func (w *walker) attachmentsOf(ctx context.Context, im *Image, d digest.Digest, seen, blobSeen map[digest.Digest]bool) error {
	tag := strings.Replace(d.String(), ":", "-", 1) + ".sig"
	sig, err := w.manifest(ctx, im, tag)
	switch {
	case err == nil:
		sig.Kind, sig.Tag, sig.Subject = KindSig, tag, d
		if err := w.tree(ctx, im, sig, maxDepth, seen, blobSeen); err != nil {
			return err
		}
	case isNotFound(err), IsRejected(err):
		// None, or a manifest under the .sig tag that the gate does not take for an
		// attachment of this image (a pusher's junk): not part of the image, not kept.
	default:
		return err
	}
	descs, err := w.referrers(ctx, im, d)
	if err != nil {
		return err
	}
	n := 0
	for _, desc := range descs {
		if desc.ArtifactType != "" && desc.ArtifactType != content.MediaTypeEmpty && !content.IsSigstoreBundle(desc.ArtifactType) {
			continue
		}
		if err := desc.Digest.Validate(); err != nil {
			return fmt.Errorf("%s: referrer %q: %w", im.Name(), desc.Digest, err)
		}
		if n++; n > maxReferrers {
			break
		}
		r, err := w.manifest(ctx, im, desc.Digest.String())
		if IsRejected(err) || isNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		r.Kind, r.Subject = KindReferrer, d
		if err := w.tree(ctx, im, r, maxDepth, seen, blobSeen); err != nil {
			return err
		}
	}
	return nil
}

// notFoundError is a 404 of the handler.
type notFoundError struct{ what string }

func (e *notFoundError) Error() string { return e.what + ": not found" }

func isNotFound(err error) bool {
	var nf *notFoundError
	return errors.As(err, &nf)
}

func (w *walker) url(im *Image, kind, ref string) string {
	return w.base + "/v2/" + im.Registry + "/" + im.Repo + "/" + kind + "/" + ref
}

// manifest GETs one manifest and checks its bytes against the digest (asked for, and
// announced).
func (w *walker) manifest(ctx context.Context, im *Image, ref string) (*Manifest, error) {
	what := im.Registry + "/" + im.Repo + refSep(ref) + ref
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.url(im, "manifests", ref), nil)
	if err != nil {
		return nil, err
	}
	for _, a := range manifestAccept {
		req.Header.Add("Accept", a)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	if err := answerError(resp, what); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(b) > maxManifestBytes {
		return nil, fmt.Errorf("%s: manifest larger than %d bytes", what, maxManifestBytes)
	}
	d := digest.SHA256.FromBytes(b)
	if want, err := digest.Parse(ref); err == nil && want != d {
		return nil, fmt.Errorf("%s: manifest bytes hash to %s", what, d)
	}
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != d.String() {
		return nil, fmt.Errorf("%s: manifest bytes hash to %s, announced %s", what, d, h)
	}
	return &Manifest{Digest: d, MediaType: content.MediaType(resp.Header.Get("Content-Type")), Bytes: b}, nil
}

func refSep(ref string) string {
	if strings.HasPrefix(ref, "sha256:") {
		return "@"
	}
	return ":"
}

// referrers lists the referrers of d (the handler builds the list from the referrers
// tag where the upstream has no referrers API).
func (w *walker) referrers(ctx context.Context, im *Image, d digest.Digest) ([]descriptor, error) {
	what := im.Registry + "/" + im.Repo + " referrers of " + d.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.url(im, "referrers", d.String()), nil)
	if err != nil {
		return nil, err
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	if err := answerError(resp, what); err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	var idx struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxManifestBytes)).Decode(&idx); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return idx.Manifests, nil
}

// blob reads one blob whole (the handler verifies it and the store keeps it), unless it
// is kept already.
func (w *walker) blob(ctx context.Context, im *Image, b Blob) error {
	if b.isEmpty() || (w.haveBlob != nil && w.haveBlob(ctx, b)) {
		return nil
	}
	what := im.Registry + "/" + im.Repo + " blob " + b.Digest.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.url(im, "blobs", b.Digest.String()), nil)
	if err != nil {
		return err
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	if err := answerError(resp, what); err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, &countingReader{r: resp.Body, on: w.onBytes})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if b.Size >= 0 && n != b.Size {
		return fmt.Errorf("%s: %d bytes, the manifest says %d", what, n, b.Size)
	}
	return nil
}

type countingReader struct {
	r  io.Reader
	on func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && c.on != nil {
		c.on(int64(n))
	}
	return n, err
}

// answerError turns a non-200 answer into an error: 403 a rejection with the gate's
// message, 404 not found, anything else an error naming the status and message.
func answerError(resp *http.Response, what string) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	msg, d := errorMessage(resp.Body)
	switch resp.StatusCode {
	case http.StatusForbidden:
		return &RejectedError{What: what, Reason: msg, Digest: d}
	case http.StatusNotFound:
		return &notFoundError{what: what}
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return fmt.Errorf("%s: %d %s", what, resp.StatusCode, msg)
}

// errorMessage reads the OCI error body's first message, and the digest of a denial's
// detail.
func errorMessage(r io.Reader) (string, digest.Digest) {
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Detail  struct {
				Digest string `json:"digest"`
			} `json:"detail"`
		} `json:"errors"`
	}
	b, _ := io.ReadAll(io.LimitReader(r, maxErrorBody))
	if json.Unmarshal(b, &body) != nil || len(body.Errors) == 0 {
		return strings.TrimSpace(string(b)), ""
	}
	d, _ := digest.Parse(body.Errors[0].Detail.Digest)
	return body.Errors[0].Message, d
}

// descriptor is the part of an OCI descriptor the walk reads.
type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// manifestDoc is the part of a manifest or index the walk reads.
type manifestDoc struct {
	MediaType string       `json:"mediaType"`
	Config    *descriptor  `json:"config"`
	Layers    []descriptor `json:"layers"`
	Manifests []descriptor `json:"manifests"`
	Subject   *descriptor  `json:"subject"`
}

func parseManifest(b []byte) (*manifestDoc, error) {
	var doc manifestDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	for _, d := range doc.blobDescs() {
		if err := d.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("blob %q: %w", d.Digest, err)
		}
		if d.Size < 0 {
			return nil, fmt.Errorf("blob %s: negative size", d.Digest)
		}
	}
	return &doc, nil
}

func (doc *manifestDoc) blobDescs() []descriptor {
	var out []descriptor
	if doc.Config != nil {
		out = append(out, *doc.Config)
	}
	return append(out, doc.Layers...)
}

func (doc *manifestDoc) blobs() []Blob {
	var out []Blob
	for _, d := range doc.blobDescs() {
		out = append(out, Blob{Digest: d.Digest, Size: d.Size})
	}
	return out
}
