package airgap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullgate/pullgate/cache/store"
	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy/verify"
)

// signaturesDir is where simple signatures are kept in DIR, in lookaside layout:
// signatures/<registry>/<repository>@sha256=<hex>/signature-<n>.
const signaturesDir = "signatures"

// Layout is an OCI image layout written by export.
type Layout struct {
	dir  string
	path layout.Path
}

// OpenLayout opens the layout in dir for writing, creating it when dir holds none (an
// existing one is added to: export is incremental).
func OpenLayout(dir string) (*Layout, error) {
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
		p, err := layout.FromPath(dir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		return &Layout{dir: dir, path: p}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return &Layout{dir: dir, path: p}, nil
}

// Write writes im, as kept in st, to the layout: its blobs, every manifest with its
// original bytes, the top manifest (and each .sig attachment and referrer) in index.json
// named by its full reference, and the simple signatures kept for its manifests.
func (l *Layout) Write(ctx context.Context, st *store.Store, im *Image) error {
	for _, b := range im.Blobs {
		if err := l.writeBlob(ctx, st, b); err != nil {
			return fmt.Errorf("%s: %w", im.Name(), err)
		}
	}
	for _, m := range im.Manifests {
		if err := l.writeBytes(m.Digest, m.Bytes); err != nil {
			return fmt.Errorf("%s: manifest %s: %w", im.Name(), m.Digest, err)
		}
	}
	for _, m := range im.Manifests {
		name := ""
		switch m.Kind {
		case KindTop:
			name = im.Name()
		case KindSig:
			name = im.Registry + "/" + im.Repo + ":" + m.Tag
		case KindReferrer:
			name = im.Registry + "/" + im.Repo + "@" + m.Digest.String()
		default:
			continue
		}
		if err := l.name(name, m); err != nil {
			return err
		}
	}
	for _, m := range im.Manifests {
		if m.Kind != KindTop && m.Kind != KindChild {
			continue
		}
		if err := l.writeSignatures(ctx, st, im, m.Digest); err != nil {
			return err
		}
	}
	return nil
}

// name lists m in index.json as name, replacing what that name listed before.
func (l *Layout) name(name string, m Manifest) error {
	if err := l.path.RemoveDescriptors(match.Annotation(ocispec.AnnotationRefName, name)); err != nil {
		return err
	}
	h, _ := v1.NewHash(m.Digest.String())
	return l.path.AppendDescriptor(v1.Descriptor{MediaType: types.MediaType(m.MediaType), Size: int64(len(m.Bytes)),
		Digest: h, Annotations: map[string]string{ocispec.AnnotationRefName: name}})
}

func (l *Layout) blobFile(d digest.Digest) string {
	return filepath.Join(l.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// writeBlob copies a kept blob, verified as it is read, unless DIR holds a file of its
// size (a partial file left by an interrupted export has another size and is replaced;
// import re-hashes everything).
func (l *Layout) writeBlob(ctx context.Context, st *store.Store, b Blob) error {
	if b.isEmpty() {
		return l.writeBytes(b.Digest, emptyJSON)
	}
	f := l.blobFile(b.Digest)
	if fi, err := os.Stat(f); err == nil {
		if fi.Mode().IsRegular() && fi.Size() == b.Size {
			return nil
		}
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	kb, err := st.OpenBlob(ctx, b.Digest)
	if err != nil {
		return fmt.Errorf("blob %s: %w", b.Digest, err)
	}
	vr, err := verify.NewReader(kb.Body, b.Digest, b.Size)
	if err != nil {
		kb.Body.Close()
		return err
	}
	h, _ := v1.NewHash(b.Digest.String())
	if err := l.path.WriteBlob(h, vr); err != nil {
		os.Remove(f) // never leave a part behind
		return fmt.Errorf("blob %s: %w", b.Digest, err)
	}
	return nil
}

// writeBytes writes a manifest's bytes unless DIR holds exactly them.
func (l *Layout) writeBytes(d digest.Digest, b []byte) error {
	f := l.blobFile(d)
	if old, err := os.ReadFile(f); err == nil {
		if string(old) == string(b) {
			return nil
		}
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	h, _ := v1.NewHash(d.String())
	if err := l.path.WriteBlob(h, io.NopCloser(strings.NewReader(string(b)))); err != nil {
		os.Remove(f)
		return err
	}
	return nil
}

// SignatureDir is where the simple signatures of registry/repo@d are in DIR.
func SignatureDir(dir, registry, repo string, d digest.Digest) string {
	return filepath.Join(dir, signaturesDir, registry, filepath.FromSlash(repo)+"@"+d.Algorithm().String()+"="+d.Encoded())
}

// writeSignatures writes the simple signatures kept for d, replacing those DIR held.
func (l *Layout) writeSignatures(ctx context.Context, st *store.Store, im *Image, d digest.Digest) error {
	sigs, err := st.Signatures(ctx, im.Registry, im.Repo, d)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: signatures of %s: %w", im.Name(), d, err)
	}
	var simple [][]byte
	for _, s := range sigs {
		if s.Format == string(policy.FormatSimpleSigning) {
			simple = append(simple, s.Data)
		}
	}
	if len(simple) == 0 {
		return nil
	}
	sd := SignatureDir(l.dir, im.Registry, im.Repo, d)
	tmp := sd + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	for i, s := range simple {
		if err := os.WriteFile(filepath.Join(tmp, fmt.Sprintf("signature-%d", i+1)), s, 0o644); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(sd); err != nil {
		return err
	}
	return os.Rename(tmp, sd)
}
