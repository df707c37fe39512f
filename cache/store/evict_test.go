package store

import (
	"errors"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestEvict: beyond MaxSize orphans go first, then the least recently served unpinned
// images; an index goes with its children, a referrer with its subject; content another
// kept manifest (of any repository) references stays; pinned images stay.
func TestEvict(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		const mt, it = "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json"
		d, again := b.new(t)
		// The clock starts at the real time: the drivers stamp objects with it.
		c := &clock{t: time.Now()}
		f := openOn(t, d, again, Options{}, c)
		s := f.s
		blob := func() digest.Digest { return keep(t, s, randomBytes(t, 10000)) }
		L1, Ls, L2, L3, L4, L5, L6, O := blob(), blob(), blob(), blob(), blob(), blob(), blob(), blob()
		put := func(repo string, m Manifest, refs Refs) {
			t.Helper()
			if err := s.PutManifest(ctx, "docker.io", repo, m, refs); err != nil {
				t.Fatal(err)
			}
		}
		img1 := testManifest(t, mt, L1, Ls)
		put("a", img1, Refs{Blobs: []digest.Digest{L1, Ls}})
		put("a2", img1, Refs{Blobs: []digest.Digest{L1, Ls}}) // the same image in another repository
		img2 := testManifest(t, mt, L2, Ls)
		put("b", img2, Refs{Blobs: []digest.Digest{L2, Ls}})
		ref := testManifest(t, mt, L6) // a referrer of img2 (a signature or SBOM)
		put("b", ref, Refs{Blobs: []digest.Digest{L6}, Subject: img2.Digest})
		c1, c2 := testManifest(t, mt, L3), testManifest(t, mt, L4)
		put("a", c1, Refs{Blobs: []digest.Digest{L3}})
		put("a", c2, Refs{Blobs: []digest.Digest{L4}})
		idx := testManifest(t, it, c1.Digest, c2.Digest)
		put("a", idx, Refs{Manifests: []digest.Digest{c1.Digest, c2.Digest}})
		pinned := testManifest(t, mt, L5)
		put("c", pinned, Refs{Blobs: []digest.Digest{L5}})
		if err := s.Pin(ctx, "docker.io", "c", pinned.Digest); err != nil {
			t.Fatal(err)
		}
		if err := s.PutSignatures(ctx, "docker.io", "a", img1.Digest, []Signature{{Format: "simple", Data: randomBytes(t, 500)}}); err != nil {
			t.Fatal(err)
		}
		s.PutTag(ctx, "docker.io", "a", "v1", img1.Digest)
		s.PutTag(ctx, "docker.io", "a", "multi", idx.Digest)
		s.PutTag(ctx, "docker.io", "b", "v1", img2.Digest)

		// Serves: the pinned image longest ago, then img1 in a, the index, img2, img1 in a2.
		for _, tc := range []struct {
			repo string
			d    digest.Digest
		}{{"c", pinned.Digest}, {"a", img1.Digest}, {"a", idx.Digest}, {"b", img2.Digest}, {"a2", img1.Digest}} {
			c.Add(time.Minute)
			s.Touch("docker.io", tc.repo, tc.d)
		}
		c.Add(time.Hour) // past OrphanGrace

		kept := func(f *fixture, d digest.Digest) bool {
			_, err := f.s.StatBlob(ctx, d)
			return err == nil
		}
		manifestKept := func(f *fixture, repo string, d digest.Digest) bool {
			_, err := f.s.GetManifest(ctx, "docker.io", repo, d)
			if err != nil && !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
			return err == nil
		}
		// evictTo reopens the store just under its present size and evicts.
		evictTo := func(f *fixture, max int64) *fixture {
			t.Helper()
			if err := f.s.Evict(ctx); err != nil {
				t.Fatal(err)
			}
			if max < 0 {
				max = f.s.Stats().BytesKept - 1
			}
			f2 := f.restart(t, Options{MaxSize: max})
			if err := f2.s.Evict(ctx); err != nil {
				t.Fatal(err)
			}
			return f2
		}
		all := []digest.Digest{L1, Ls, L2, L3, L4, L5, L6}

		f = evictTo(f, -1)
		if kept(f, O) {
			t.Fatal("the orphan was not evicted first")
		}
		for _, d := range all {
			if !kept(f, d) {
				t.Fatalf("%s evicted with the orphan", d)
			}
		}

		f = evictTo(f, -1)
		if manifestKept(f, "a", img1.Digest) {
			t.Fatal("the least recently served image stays")
		}
		if _, err := f.s.GetTag(ctx, "docker.io", "a", "v1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("its tag stays: %v", err)
		}
		if _, err := f.s.Signatures(ctx, "docker.io", "a", img1.Digest); !errors.Is(err, ErrNotFound) {
			t.Fatalf("its signatures link stays: %v", err)
		}
		if !manifestKept(f, "a2", img1.Digest) || !kept(f, L1) || !kept(f, Ls) {
			t.Fatal("content another repository references was evicted")
		}
		if !manifestKept(f, "a", c1.Digest) || !manifestKept(f, "a", c2.Digest) {
			t.Fatal("an index child was evicted alone")
		}

		f = evictTo(f, -1)
		for _, m := range []digest.Digest{idx.Digest, c1.Digest, c2.Digest} {
			if manifestKept(f, "a", m) {
				t.Fatalf("index member %s stays", m)
			}
		}
		if kept(f, L3) || kept(f, L4) {
			t.Fatal("the children's layers stay")
		}
		if !manifestKept(f, "b", img2.Digest) || !manifestKept(f, "b", ref.Digest) {
			t.Fatal("a more recently served image was evicted")
		}

		f = evictTo(f, 1)
		for _, tc := range []struct {
			repo string
			d    digest.Digest
		}{{"b", img2.Digest}, {"b", ref.Digest}, {"a2", img1.Digest}} {
			if manifestKept(f, tc.repo, tc.d) {
				t.Fatalf("%s in %s stays", tc.d, tc.repo)
			}
		}
		for _, d := range []digest.Digest{L1, Ls, L2, L6, img1.Digest, img2.Digest} {
			if kept(f, d) {
				t.Fatalf("%s stays", d)
			}
		}
		if !manifestKept(f, "c", pinned.Digest) || !kept(f, L5) {
			t.Fatal("the pinned image was evicted")
		}
		if st := f.s.Stats(); st.BytesEvicted == 0 || st.BytesKept <= 1 {
			t.Fatalf("stats %+v", st)
		}
		if len(f.logs.Lines("still beyond maxSize")) == 0 {
			t.Fatalf("no line says the pinned content keeps the store beyond maxSize:\n%s", f.logs)
		}
	})
}
