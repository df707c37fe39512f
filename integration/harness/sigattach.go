package harness

import (
	"io"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// cosign's "legacy" signature storage (SPEC.md 5.2): the sha256-<hex>.sig tag in the
// image's repository holds an OCI image manifest with one layer per signature.

// SigLayer is one layer of a .sig manifest: the payload and its annotations.
type SigLayer struct {
	MediaType   types.MediaType
	Data        []byte
	Annotations map[string]string
}

// SigTag is the tag cosign stores the signatures of manifest d under.
func SigTag(d v1.Hash) string { return strings.Replace(d.String(), ":", "-", 1) + ".sig" }

// SigLayers reads the .sig manifest of d in repo and its layers.
func (r *Registry) SigLayers(t testing.TB, repo string, d v1.Hash) []SigLayer {
	t.Helper()
	img, err := remote.Image(r.Ref(t, repo+":"+SigTag(d)), remote.WithAuth(r.Auth()))
	if err != nil {
		t.Fatalf("harness: read %s:%s: %v", repo, SigTag(d), err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []SigLayer
	for _, desc := range m.Layers {
		l, err := img.LayerByDigest(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed() // the blob as stored
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("harness: read signature layer %s: %v", desc.Digest, err)
		}
		out = append(out, SigLayer{MediaType: desc.MediaType, Data: data, Annotations: desc.Annotations})
	}
	return out
}

// PutSigLayers replaces the .sig manifest of d in repo with one holding layers, in the
// shape cosign writes (OCI manifest, OCI config listing the layers).
func (r *Registry) PutSigLayers(t testing.TB, repo string, d v1.Hash, layers []SigLayer) {
	t.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	for _, l := range layers {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{Layer: static.NewLayer(l.Data, l.MediaType),
			MediaType: l.MediaType, Annotations: l.Annotations})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Write(r.Ref(t, repo+":"+SigTag(d)), img, remote.WithAuth(r.Auth())); err != nil {
		t.Fatalf("harness: write %s:%s: %v", repo, SigTag(d), err)
	}
}

// CopySignatures points the .sig tag of manifest to at the .sig manifest of from: the
// signatures of one image presented as another's.
func (r *Registry) CopySignatures(t testing.TB, repo string, from, to v1.Hash) {
	t.Helper()
	desc, err := remote.Get(r.Ref(t, repo+":"+SigTag(from)), remote.WithAuth(r.Auth()))
	if err != nil {
		t.Fatalf("harness: read %s:%s: %v", repo, SigTag(from), err)
	}
	dst, err := name.NewTag(r.Host+"/"+repo+":"+SigTag(to), name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Tag(dst, desc, remote.WithAuth(r.Auth())); err != nil {
		t.Fatalf("harness: tag %s:%s: %v", repo, SigTag(to), err)
	}
}
