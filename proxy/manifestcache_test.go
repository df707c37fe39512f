package proxy

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy/content"
)

func cachedManifest(s string) *content.Manifest {
	return &content.Manifest{ContentType: "application/vnd.oci.image.manifest.v1+json", Digest: digest.FromString(s), Bytes: []byte(s)}
}

func TestManifestCacheBoundedByBytes(t *testing.T) {
	c := newManifestCache(30)
	a, b, d := cachedManifest(strings.Repeat("a", 10)), cachedManifest(strings.Repeat("b", 10)), cachedManifest(strings.Repeat("d", 15))
	c.add("r", "repo", a)
	c.add("r", "repo", b)
	if _, ok := c.get(manifestKey{"r", "repo", a.Digest}); !ok { // a is now the most recent
		t.Fatal("a missing")
	}
	c.add("r", "repo", d) // 35 bytes > 30: the least recent (b) goes
	if _, ok := c.get(manifestKey{"r", "repo", b.Digest}); ok {
		t.Error("b should have been evicted")
	}
	for _, m := range []*content.Manifest{a, d} {
		if got, ok := c.get(manifestKey{"r", "repo", m.Digest}); !ok || got != m {
			t.Errorf("%s missing", m.Bytes[:1])
		}
	}
	if c.bytes != 25 {
		t.Errorf("bytes = %d, want 25", c.bytes)
	}
	// Entries are per repository.
	if _, ok := c.get(manifestKey{"r", "other", a.Digest}); ok {
		t.Error("served across repositories")
	}
	// Too large for the cache at all.
	c.add("r", "repo", cachedManifest(strings.Repeat("z", 31)))
	if c.bytes != 25 {
		t.Errorf("bytes = %d after an oversized add, want 25", c.bytes)
	}
	// A disabled cache holds nothing.
	off := newManifestCache(0)
	off.add("r", "repo", a)
	if _, ok := off.get(manifestKey{"r", "repo", a.Digest}); ok {
		t.Error("disabled cache returned an entry")
	}
}
