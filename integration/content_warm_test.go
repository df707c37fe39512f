package integration

// Warm pulls (Content store contract 2, 3, 6, 9): what pullgate kept is served without
// asking the upstream, by digest always, by tag while the tag was confirmed less than
// tagTTL ago; after tagTTL only the tag is asked; the store survives a restart.

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport/versitygw"
)

func TestContentWarmPulls(t *testing.T) {
	t.Parallel()
	w := newContentWorld(t)
	img := harness.ImageOf(t, harness.RandomLayer(t, 256<<10), harness.RandomLayer(t, 64<<10))
	d := w.signedOf(t, "warm/app", img)

	t.Run("filesystem", func(t *testing.T) {
		root := storeDir(t)
		testWarmPulls(t, w, harness.ContentKeys{Root: root, TagTTL: "1h"}, d, img)
		// Plain files (contract 9): the manifest and every blob are files holding exactly
		// their bytes, in distribution's layout.
		if m := missing(t, root, digestsOf(t, d, img)...); len(m) != 0 {
			t.Errorf("the store at %s lacks %v", root, m)
		}
		if n := harness.CheckStoreFiles(t, root); n < 4 {
			t.Errorf("%d content files in the store, want at least the manifest, config and 2 layers", n)
		}
	})

	t.Run("s3", func(t *testing.T) {
		// distribution's s3 driver against versitygw (posix backend) on 127.0.0.1.
		s3 := versitygw.Start(t)
		s3.CreateBucket(t, "pullgate")
		testWarmPulls(t, w, harness.ContentKeys{S3: s3.DriverParams("pullgate", "/warm"), TagTTL: "1h"}, d, img)
	})
}

// testWarmPulls pulls repo warm/app (digest d, image img) through a pullgate keeping
// content as keys say (tagTTL long), then checks what the upstream saw.
func testWarmPulls(t *testing.T, w *contentWorld, keys harness.ContentKeys, d v1.Hash, img v1.Image) {
	const repo = "warm/app"
	config := w.config(t, pgOptions{content: keys})
	pg := w.start(t, config)

	n := len(w.reg.Requests())
	skopeoPull(t, ref(pg, repo, ":v1"), d)
	first := upstreamSince(w, n)
	if got, want := blobGETs(first[harness.BlobRequest], v1.Hash{}), len(harness.ImageBlobs(t, img)); got != want {
		t.Errorf("first pull: %d blob GETs upstream, want %d (one per blob)", got, want)
	}

	pulls := []struct {
		what string
		pull func(t *testing.T, ref string, want v1.Hash)
		ref  string
	}{
		{"skopeo by tag", skopeoPull, ref(pg, repo, ":v1")},
		{"crane by tag", cranePull, ref(pg, repo, ":v1")},
		{"skopeo by digest", skopeoPull, ref(pg, repo, at(d))},
		{"crane by digest", cranePull, ref(pg, repo, at(d))},
	}
	for _, p := range pulls {
		t.Run("warm "+p.what, func(t *testing.T) {
			n := len(w.reg.Requests())
			p.pull(t, p.ref, d)
			noUpstream(t, w, n, p.what+" within tagTTL")
		})
	}

	t.Run("after a restart", func(t *testing.T) {
		pg.Stop(t)
		pg := w.start(t, config)
		n := len(w.reg.Requests())
		skopeoPull(t, ref(pg, repo, ":v1"), d)
		cranePull(t, ref(pg, repo, at(d)), d)
		// No verdict survives in memory: the signatures are looked up again at their
		// sources (contract 4), which may ping the upstream's /v2/ for the signature
		// API. Content is not asked for.
		got := upstreamSince(w, n)
		for _, k := range []harness.RequestKind{harness.ManifestByTag, harness.ManifestByDigest, harness.BlobRequest} {
			if len(got[k]) != 0 {
				t.Errorf("pulls after a restart, the tag confirmed within tagTTL: %s requests upstream: %v", k, got[k])
			}
		}
		if len(got[harness.OtherRequest]) != 0 {
			t.Logf("after a restart the upstream received %v (signature sources)", got[harness.OtherRequest])
		}
	})

	t.Run("after tagTTL", func(t *testing.T) {
		short := keys
		short.TagTTL = "1s"
		if keys.Root != "" {
			short.Root = storeDir(t)
		} else {
			short.S3 = map[string]any{}
			for k, v := range keys.S3 {
				short.S3[k] = v
			}
			short.S3["rootdirectory"] = "/after-ttl"
		}
		pg := w.start(t, w.config(t, pgOptions{content: short}))
		skopeoPull(t, ref(pg, repo, ":v1"), d)
		time.Sleep(1500 * time.Millisecond) // past tagTTL
		n := len(w.reg.Requests())
		skopeoPull(t, ref(pg, repo, ":v1"), d)
		cranePull(t, ref(pg, repo, at(d)), d)
		got := upstreamSince(w, n)
		tags := got[harness.ManifestByTag]
		if len(tags) == 0 {
			t.Errorf("a pull by tag after tagTTL did not ask the upstream for the tag")
		}
		for _, q := range tags {
			if q.Method != http.MethodHead && q.Method != http.MethodGet {
				t.Errorf("tag asked with %s", q)
			}
		}
		for _, k := range []harness.RequestKind{harness.ManifestByDigest, harness.BlobRequest, harness.OtherRequest} {
			if len(got[k]) != 0 {
				t.Errorf("after tagTTL the upstream received %s requests besides the tag: %v", k, got[k])
			}
		}
	})
}

// TestContentConfigZeroes: the contract's special values as DESIGN.md writes them, bare
// numbers: tagTTL 0 (always ask), maxStale 0 (never) and -1 (forever). pullgate must
// start with each.
func TestContentConfigZeroes(t *testing.T) {
	t.Parallel()
	w := newContentWorld(t)
	for _, keys := range []harness.ContentKeys{
		{TagTTL: "0"}, {MaxStale: "0"}, {MaxStale: "-1"}, {TagTTL: "0", MaxStale: "-1", MaxSize: "0"},
	} {
		keys.Root = storeDir(t)
		t.Run(fmt.Sprintf("tagTTL %q maxStale %q maxSize %q", keys.TagTTL, keys.MaxStale, keys.MaxSize), func(t *testing.T) {
			w.start(t, w.config(t, pgOptions{content: keys})).Stop(t)
		})
	}
}

// TestContentWarmServeRewritesNothing: serving kept content reads the store; it does not
// write the kept manifest's files again (only the batched served times and staging may
// change). A rewrite per request costs milliseconds per warm GET and, with an unwritable
// store, an error line per request.
func TestContentWarmServeRewritesNothing(t *testing.T) {
	t.Parallel()
	w := newContentWorld(t)
	img := harness.ImageOf(t, harness.RandomLayer(t, 16<<10))
	d := w.signedOf(t, "quiet/app", img)
	root := storeDir(t)
	pg := w.start(t, w.config(t, pgOptions{content: harness.ContentKeys{Root: root, TagTTL: "1h"}}))
	skopeoPull(t, ref(pg, "quiet/app", ":v1"), d)

	before := harness.StoreFileTimes(t, root)
	time.Sleep(20 * time.Millisecond) // so that a rewrite shows in the modification times
	base := "http://" + pg.Host + "/v2/" + upstreamName + "/quiet/app/"
	for range 3 {
		call(t, http.MethodGet, base+"manifests/"+d.String()).served(t, "by digest", d)
		call(t, http.MethodGet, base+"manifests/v1").served(t, "by tag", d)
	}
	skopeoPull(t, ref(pg, "quiet/app", at(d)), d)
	for path, mt := range harness.StoreFileTimes(t, root) {
		if was, ok := before[path]; ok && !was.Equal(mt) {
			t.Errorf("a warm serve rewrote %s", path)
		}
	}
}
