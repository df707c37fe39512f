package testsupport

import (
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Layer returns l's digest and compressed bytes (the blob a registry serves).
func Layer(t testing.TB, l v1.Layer) (v1.Hash, []byte) {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("layer %s: %v", d, err)
	}
	return d, b
}

// FirstLayer returns Layer of img's first layer.
func FirstLayer(t testing.TB, img v1.Image) (v1.Hash, []byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return Layer(t, layers[0])
}
