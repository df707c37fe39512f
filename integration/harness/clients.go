package harness

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// NSTransport adds ns=<registry> to every request, as containerd does when it pulls
// through a mirror (hosts.toml). skopeo cannot do this; go-containerregistry with this
// transport can.
func NSTransport(ns string, inner http.RoundTripper) http.RoundTripper {
	if inner == nil {
		inner = http.DefaultTransport
	}
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		q := r.URL.Query()
		q.Set("ns", ns)
		r.URL.RawQuery = q.Encode()
		return inner.RoundTrip(r)
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Pulled is what a client pulled: the manifest digest and the digests of the config
// and every layer, each read in full (go-containerregistry checks each digest as it
// reads).
type Pulled struct {
	Manifest v1.Hash
	Config   v1.Hash
	Layers   []v1.Hash
}

// PullImage pulls ref with go-containerregistry's remote (options such as
// remote.WithTransport(NSTransport(...))) and reads all of it.
func PullImage(t testing.TB, ref string, opts ...remote.Option) Pulled {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("harness: reference %q: %v", ref, err)
	}
	img, err := remote.Image(r, opts...)
	if err != nil {
		t.Fatalf("harness: pull %s: %v", ref, err)
	}
	return ReadImage(t, img)
}

// ReadImage reads an image whole and returns its digests.
func ReadImage(t testing.TB, img v1.Image) Pulled {
	t.Helper()
	p, err := ReadWhole(img)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ReadWhole reads an image whole, as ReadImage does, and returns its digests or the
// first error (for pulls made off the test goroutine, or expected to fail).
func ReadWhole(img v1.Image) (Pulled, error) {
	var p Pulled
	var err error
	if p.Manifest, err = img.Digest(); err != nil {
		return p, fmt.Errorf("harness: digest: %w", err)
	}
	if p.Config, err = img.ConfigName(); err != nil {
		return p, fmt.Errorf("harness: config: %w", err)
	}
	if _, err := img.RawConfigFile(); err != nil {
		return p, fmt.Errorf("harness: read config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return p, fmt.Errorf("harness: layers: %w", err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return p, err
		}
		rc, err := l.Compressed()
		if err != nil {
			return p, fmt.Errorf("harness: layer %s: %w", d, err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return p, fmt.Errorf("harness: read layer %s: %w", d, err)
		}
		p.Layers = append(p.Layers, d)
	}
	return p, nil
}

// LayoutManifests returns the descriptors listed in an OCI layout's index.json, and
// fails the test if a blob any manifest of the layout references is missing.
func LayoutManifests(t testing.TB, dir string) []v1.Descriptor {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("harness: OCI layout %s: %v", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	return im.Manifests
}

// LayoutBlobs lists the digests of the blobs stored in an OCI layout.
func LayoutBlobs(t testing.TB, dir string) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatalf("harness: OCI layout %s: %v", dir, err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		out["sha256:"+e.Name()] = true
	}
	return out
}

// ParseRef parses a full reference (host/repo:tag or host/repo@digest) for plain-http
// test servers.
func ParseRef(t testing.TB, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("harness: reference %q: %v", ref, err)
	}
	return r
}
