package harness

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// Platforms used by the multi-arch helpers.
var (
	LinuxAMD64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	LinuxARM64 = v1.Platform{OS: "linux", Architecture: "arm64"}
)

// DockerImage is a random single-arch image with Docker schema 2 media types (manifest,
// config and layers): layers of layerSize random bytes each.
func DockerImage(t testing.TB, layers int, layerSize int64) v1.Image {
	t.Helper()
	img, err := random.Image(layerSize, int64(layers))
	if err != nil {
		t.Fatalf("harness: random image: %v", err)
	}
	return img
}

// OCIImage is a random single-arch image with OCI media types throughout, for platform p.
func OCIImage(t testing.TB, layers int, layerSize int64, p v1.Platform) v1.Image {
	t.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	for range layers {
		l, err := random.Layer(layerSize, types.OCILayer)
		if err != nil {
			t.Fatalf("harness: random layer: %v", err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatalf("harness: append layer: %v", err)
		}
	}
	return withPlatform(t, img, p)
}

// withPlatform returns img with p's OS, architecture and variant in its config.
func withPlatform(t testing.TB, img v1.Image, p v1.Platform) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatalf("harness: config: %v", err)
	}
	return img
}

// OCIIndex is a multi-arch OCI image index with one random OCI image per platform; the
// index descriptors carry the platforms.
func OCIIndex(t testing.TB, layerSize int64, platforms ...v1.Platform) v1.ImageIndex {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		img := OCIImage(t, 1, layerSize, p)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, Platform: &p},
		})
	}
	return withoutArtifactTypes(t, idx)
}

// withoutArtifactTypes drops the artifactType go-containerregistry writes into index
// descriptors. Real image indexes (docker buildx, podman) have none, and skopeo 1.9
// drops the field when it copies an index, which would change the index digest.
func withoutArtifactTypes(t testing.TB, idx v1.ImageIndex) v1.ImageIndex {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	im = im.DeepCopy()
	for i := range im.Manifests {
		im.Manifests[i].ArtifactType = ""
	}
	raw := testsupport.JSON(t, im)
	return &rawIndex{imageIndex: idx, raw: raw, manifest: im}
}

// imageIndex lets rawIndex embed a v1.ImageIndex (whose method ImageIndex would clash
// with the field name).
type imageIndex = v1.ImageIndex

// rawIndex is an index whose manifest bytes are given; its children come from the
// wrapped index.
type rawIndex struct {
	imageIndex
	raw      []byte
	manifest *v1.IndexManifest
}

func (r *rawIndex) RawManifest() ([]byte, error)              { return r.raw, nil }
func (r *rawIndex) IndexManifest() (*v1.IndexManifest, error) { return r.manifest.DeepCopy(), nil }
func (r *rawIndex) Size() (int64, error)                      { return int64(len(r.raw)), nil }
func (r *rawIndex) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(r.raw))
	return h, err
}

// DockerIndex is a Docker manifest list with one random Docker image per platform.
func DockerIndex(t testing.TB, layerSize int64, platforms ...v1.Platform) v1.ImageIndex {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	for _, p := range platforms {
		img := withPlatform(t, DockerImage(t, 1, layerSize), p)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{MediaType: types.DockerManifestSchema2, Platform: &p},
		})
	}
	return withoutArtifactTypes(t, idx)
}

// Ref parses "repo:tag" or "repo@digest" as a reference on this registry.
func (r *Registry) Ref(t testing.TB, repoRef string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(r.Host+"/"+repoRef, name.StrictValidation)
	if err != nil {
		t.Fatalf("harness: reference %q: %v", repoRef, err)
	}
	return ref
}

// Image reads the image manifest repoRef ("repo:tag" or "repo@digest") from the
// registry; its config and layers are fetched when read.
func (r *Registry) Image(t testing.TB, repoRef string) v1.Image {
	t.Helper()
	return readManifest(t, r, "image", repoRef, remote.Image)
}

// Index reads the image index repoRef from the registry; its children are fetched when
// read.
func (r *Registry) Index(t testing.TB, repoRef string) v1.ImageIndex {
	t.Helper()
	return readManifest(t, r, "index", repoRef, remote.Index)
}

// readManifest fetches the manifest repoRef of r with get (remote.Image or remote.Index).
func readManifest[T any](t testing.TB, r *Registry, what, repoRef string, get func(name.Reference, ...remote.Option) (T, error)) T {
	t.Helper()
	v, err := get(r.Ref(t, repoRef), remote.WithAuth(r.Auth()))
	if err != nil {
		t.Fatalf("harness: %s %s: %v", what, repoRef, err)
	}
	return v
}

// Push writes img as repoTag ("team/app:v1") and returns its digest.
func (r *Registry) Push(t testing.TB, repoTag string, img v1.Image) v1.Hash {
	t.Helper()
	return r.push(t, "push", repoTag, img.Digest, func(ref name.Reference) error {
		return remote.Write(ref, img, remote.WithAuth(r.Auth()))
	})
}

// PushIndex writes idx (and its images) as repoTag and returns its digest.
func (r *Registry) PushIndex(t testing.TB, repoTag string, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	return r.push(t, "push index", repoTag, idx.Digest, func(ref name.Reference) error {
		return remote.WriteIndex(ref, idx, remote.WithAuth(r.Auth()))
	})
}

// PutManifest stores body as repo:ref or repo@ref (a tag or a digest) with Content-Type
// mediaType, whatever body holds, as a pusher can; it returns body's digest.
func (r *Registry) PutManifest(t testing.TB, repo, ref, mediaType string, body []byte) v1.Hash {
	t.Helper()
	sep := ":"
	if strings.HasPrefix(ref, "sha256:") {
		sep = "@"
	}
	m := rawManifest{body: body, mediaType: types.MediaType(mediaType)}
	return r.push(t, "put manifest", repo+sep+ref, m.digest, func(ref name.Reference) error {
		return remote.Put(ref, m, remote.WithAuth(r.Auth()))
	})
}

// PutBlob uploads data as a blob of repo and returns its digest.
func (r *Registry) PutBlob(t testing.TB, repo string, data []byte) v1.Hash {
	t.Helper()
	l := static.NewLayer(data, types.MediaType("application/octet-stream"))
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(r.Ref(t, repo+"@"+d.String()).Context(), l, remote.WithAuth(r.Auth())); err != nil {
		t.Fatalf("harness: put blob %s in %s: %v", d, repo, err)
	}
	return d
}

// push writes with write to the reference repoRef and returns digest().
func (r *Registry) push(t testing.TB, what, repoRef string, digest func() (v1.Hash, error), write func(name.Reference) error) v1.Hash {
	t.Helper()
	ref := r.Ref(t, repoRef)
	if err := write(ref); err != nil {
		t.Fatalf("harness: %s %s: %v", what, ref, err)
	}
	d, err := digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// rawManifest is manifest bytes as remote.Put takes them.
type rawManifest struct {
	body      []byte
	mediaType types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.body, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }
func (m rawManifest) digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(m.body))
	return h, err
}

// Tag points repoTag at the manifest already pushed as digest in the same repository.
func (r *Registry) Tag(t testing.TB, repo, tag string, digest v1.Hash) {
	t.Helper()
	src := r.Ref(t, repo+"@"+digest.String())
	desc, err := remote.Get(src, remote.WithAuth(r.Auth()))
	if err != nil {
		t.Fatalf("harness: get %s: %v", src, err)
	}
	dst, err := name.NewTag(r.Host+"/"+repo+":"+tag, name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Tag(dst, desc, remote.WithAuth(r.Auth())); err != nil {
		t.Fatalf("harness: tag %s: %v", dst, err)
	}
}

// LayerBlobs returns the compressed bytes of every layer of img, by digest: what a
// storage server that a registry redirects blob requests to would hold.
func LayerBlobs(t testing.TB, img v1.Image) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]byte, len(layers))
	for _, l := range layers {
		d, b := testsupport.Layer(t, l)
		out[d.String()] = b
	}
	return out
}
