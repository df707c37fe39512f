package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	mib = 1 << 20
	// chunkBytes is how much random data is generated and written at a time: the layers
	// are written to disk in pieces, never held whole in memory.
	chunkBytes = 1 << 20
)

// pushedImage is an image the benchmark pushed to the upstream.
type pushedImage struct {
	repo, tag string
	digest    v1.Hash
	// manifestBytes is the size of the manifest.
	manifestBytes int
	layers        []v1.Descriptor // digest and size of each layer blob
	config        v1.Descriptor
}

// blobs are the config and the layers.
func (img *pushedImage) blobs() []v1.Descriptor {
	return append([]v1.Descriptor{img.config}, img.layers...)
}

// writeLayerFile writes a layer blob to path: a gzip stream (stored blocks, so no time
// goes into compressing random bytes) of a tar holding one file of size pseudo-random
// bytes. The bytes are incompressible, so the blob is about size bytes on the wire too.
func writeLayerFile(ctx context.Context, path string, size int64) error {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return err
	}
	src := rand.NewChaCha8(seed)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, chunkBytes)
	gz, err := gzip.NewWriterLevel(bw, gzip.NoCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	hdr := &tar.Header{Name: "data.bin", Mode: 0o644, Size: size, Typeflag: tar.TypeReg,
		ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	buf := make([]byte, chunkBytes)
	for left := size; left > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int64(len(buf))
		if left < n {
			n = left
		}
		_, _ = src.Read(buf[:n]) // ChaCha8.Read never fails
		if _, err := tw.Write(buf[:n]); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		left -= n
	}
	for _, c := range []interface{ Close() error }{tw, gz} {
		if err := c.Close(); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// buildAndPush writes layerCount layer files of layerBytes each in dir, builds an OCI
// image of them and pushes it to <registryAddr>/<repo>:<tag>. Layers are streamed from
// their files when pushed.
func buildAndPush(ctx context.Context, client *http.Client, registryAddr, dir, repo, tag string, layerCount int, layerBytes int64) (*pushedImage, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	layers := make([]v1.Layer, 0, layerCount)
	for i := range layerCount {
		path := filepath.Join(dir, fmt.Sprintf("layer-%03d.tar.gz", i))
		if err := writeLayerFile(ctx, path, layerBytes); err != nil {
			return nil, fmt.Errorf("layer %d of %s: %w", i, repo, err)
		}
		l, err := tarball.LayerFromFile(path, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, fmt.Errorf("layer %d of %s: %w", i, repo, err)
		}
		layers = append(layers, l)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, err
	}

	ref, err := name.ParseReference(registryAddr+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		return nil, err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithTransport(client.Transport)); err != nil {
		return nil, fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	return &pushedImage{repo: repo, tag: tag, digest: d, manifestBytes: len(raw), layers: m.Layers, config: m.Config}, nil
}
