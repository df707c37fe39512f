package airgap

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/cache/store"
	"github.com/pullgate/pullgate/internal/testsupport"
)

// An export interrupted mid-blob leaves a part of another size: the next export replaces
// it; a whole file of the right size is kept; a kept blob whose bytes no longer match is
// never written whole.
func TestLayoutWriteBlob(t *testing.T) {
	ctx := context.Background()
	drv, err := store.NewDriver(ctx, map[string]any{"inmemory": map[string]any{}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Options{Driver: drv, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	data := bytes.Repeat([]byte("layer "), 10000)
	d := digest.FromBytes(data)
	rc, _, err := st.Fetch(ctx, d, func(context.Context) (io.ReadCloser, int64, error) {
		return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	if err := waitKept(ctx, st, Blob{Digest: d, Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}

	l, err := OpenLayout(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := l.blobFile(d)
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		t.Fatal(err)
	}
	testsupport.WriteFile(t, f, data[:100]) // an interrupted export's part
	if err := l.writeBlob(ctx, st, Blob{Digest: d, Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(f); !bytes.Equal(got, data) {
		t.Fatalf("the part was not replaced: %d bytes", len(got))
	}

	// A blob the store holds under a digest its bytes no longer match (bit rot, written
	// under the store's own layout) fails the write and leaves nothing in DIR.
	other := bytes.Repeat([]byte("rotten"), 10000)
	bad := Blob{Digest: digest.FromBytes(other), Size: int64(len(other))}
	p := "/docker/registry/v2/blobs/sha256/" + bad.Digest.Encoded()[:2] + "/" + bad.Digest.Encoded() + "/data"
	if err := drv.PutContent(ctx, p, data[:len(other)]); err != nil {
		t.Fatal(err)
	}
	if _, err := st.StatBlob(ctx, bad.Digest); err != nil {
		t.Fatalf("the rotten blob is not where the store keeps it: %v", err)
	}
	if err := l.writeBlob(ctx, st, bad); err == nil {
		t.Fatal("a rotten blob was written")
	}
	if _, err := os.Stat(l.blobFile(bad.Digest)); !os.IsNotExist(err) {
		t.Fatalf("a failed write left a file: %v", err)
	}
}
