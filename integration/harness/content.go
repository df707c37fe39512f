package harness

import (
	"github.com/pullgate/pullgate/internal/testsupport"

	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ContentKeys is the `content:` section of a pullgate configuration (DESIGN.md
// "Configuration (contract)"), for PullgateConfig.Extra.
type ContentKeys struct {
	// Root is the filesystem driver's rootdirectory (absolute). S3, when set, are the
	// s3 driver's parameters instead.
	Root string
	S3   map[string]any
	// MaxSize, TagTTL and MaxStale are written as given ("5MiB", "1h", "-1"); empty
	// leaves the key out (pullgate's default).
	MaxSize, TagTTL, MaxStale string
}

// YAML is the section as configuration text.
func (c ContentKeys) YAML() string {
	var b strings.Builder
	b.WriteString("content:\n  storage:\n")
	if c.S3 != nil {
		b.WriteString("    s3:\n")
		keys := make([]string, 0, len(c.S3))
		for k := range c.S3 {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch v := c.S3[k].(type) {
			case string:
				fmt.Fprintf(&b, "      %s: %q\n", k, v)
			default:
				fmt.Fprintf(&b, "      %s: %v\n", k, v)
			}
		}
	} else {
		fmt.Fprintf(&b, "    filesystem:\n      rootdirectory: %q\n", c.Root)
	}
	for _, kv := range [][2]string{{"maxSize", c.MaxSize}, {"tagTTL", c.TagTTL}, {"maxStale", c.MaxStale}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "  %s: %s\n", kv[0], kv[1])
		}
	}
	return b.String()
}

// storeBlobsDir is where distribution's layout (and pullgate's filesystem driver) keeps
// content by digest under the rootdirectory.
const storeBlobsDir = "docker/registry/v2/blobs/sha256"

// StoreBlobFile is the path of the file holding digest d under a filesystem store's
// rootdirectory: docker/registry/v2/blobs/sha256/<2hex>/<hex>/data.
func StoreBlobFile(root string, d v1.Hash) string {
	return filepath.Join(root, storeBlobsDir, d.Hex[:2], d.Hex, "data")
}

// StoreBlobs returns the digests of the content files present under a filesystem
// store's rootdirectory (every docker/registry/v2/blobs/sha256/*/*/data), without
// reading them. A missing rootdirectory is an empty store.
func StoreBlobs(t testing.TB, root string) map[v1.Hash]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, storeBlobsDir, "*", "*", "data"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[v1.Hash]bool{}
	for _, f := range files {
		out[v1.Hash{Algorithm: "sha256", Hex: filepath.Base(filepath.Dir(f))}] = true
	}
	return out
}

// CheckStoreFiles walks a filesystem store and fails the test for every file at a final
// content path (docker/registry/v2/blobs/sha256/<2hex>/<hex>/data) whose bytes do not
// hash to <hex> or whose <2hex> folder is not <hex>'s first two digits: the "no partial
// object survives" check. It returns how many files it checked.
func CheckStoreFiles(t testing.TB, root string) int {
	t.Helper()
	base := filepath.Join(root, storeBlobsDir)
	n := 0
	err := filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && path == base {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() || d.Name() != "data" {
			return nil
		}
		rel, _ := filepath.Rel(base, path)
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 3 {
			t.Errorf("store: content file outside <2hex>/<hex>/data: %s", rel)
			return nil
		}
		n++
		if !strings.HasPrefix(parts[1], parts[0]) {
			t.Errorf("store: %s is not under the folder of its first two digits", rel)
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		size, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != parts[1] {
			t.Errorf("store: %s (%d bytes) holds bytes hashing to sha256:%s: a partial or wrong object at a final path", rel, size, got)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("store: walking %s: %v", base, err)
	}
	return n
}

// FlipByte inverts every bit of the byte in the middle of the file (bit rot, or an
// operator's mistake), keeping its size and modification time.
func FlipByte(t testing.TB, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("harness: flip a byte: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		t.Fatalf("harness: flip a byte of %s: %v (%d bytes)", path, err, len(b))
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// RequestKind is what an upstream request was for, as the content-store tests count
// them (testsupport.Request.Kind).
type RequestKind = testsupport.RequestKind

const (
	ManifestByTag    = testsupport.ManifestByTag
	ManifestByDigest = testsupport.ManifestByDigest
	BlobRequest      = testsupport.BlobRequest
	OtherRequest     = testsupport.OtherRequest
)

// RequestsSince returns the requests the registry received after the first n (a
// len(Requests()) taken before the action under test).
func (r *Registry) RequestsSince(n int) []Request {
	all := r.Requests()
	if n > len(all) {
		return nil
	}
	return all[n:]
}

// RandomLayer is a layer of size random (incompressible) bytes with an OCI media type.
func RandomLayer(t testing.TB, size int64) v1.Layer {
	t.Helper()
	l, err := random.Layer(size, types.OCILayer)
	if err != nil {
		t.Fatalf("harness: random layer: %v", err)
	}
	return l
}

// ImageOf is a single-platform (linux/amd64) OCI image made of the given layers, in
// order; images built from the same layer share its blob.
func ImageOf(t testing.TB, layers ...v1.Layer) v1.Image {
	t.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatalf("harness: append layers: %v", err)
	}
	return withPlatform(t, img, LinuxAMD64)
}

// ImageBlobs returns the digests of an image's config and layers, as its manifest lists
// them: of an image in a registry, no blob is fetched.
func ImageBlobs(t testing.TB, img v1.Image) []v1.Hash {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out := []v1.Hash{m.Config.Digest}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// StoreFileTimes returns the modification time of every file under a filesystem store's
// rootdirectory, by path relative to it, leaving out the served times (written in
// batches by design) and the staging folder.
func StoreFileTimes(t testing.TB, root string) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if d.Name() == "_uploads" {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() == "served" {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[rel] = fi.ModTime()
		return nil
	})
	if err != nil {
		t.Fatalf("store: walking %s: %v", root, err)
	}
	return out
}
