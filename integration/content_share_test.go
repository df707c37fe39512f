package integration

// Sharing in the content store (contract 5, 8): concurrent first pulls of one image make
// one upstream GET per blob; eviction beyond maxSize removes the least recently served
// image and keeps a blob another kept image references.

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/atonce"
)

// concurrentPulls is how many clients pull the same image at once.
const concurrentPulls = 20

// TestContentConcurrentFirstPulls: 20 go-containerregistry clients (each checks every
// digest it reads) pull one never-seen image at once through pullgate; the layers come
// slowly from the upstream so that the downloads overlap. The upstream sees one GET per
// blob.
func TestContentConcurrentFirstPulls(t *testing.T) {
	t.Parallel()
	th := harness.NewThrottle()
	w := newContentWorld(t, harness.WithMiddleware(th.Middleware))
	t.Cleanup(th.Release)
	layers := []v1.Layer{harness.RandomLayer(t, 1<<20), harness.RandomLayer(t, 512<<10), harness.RandomLayer(t, 256<<10)}
	img := harness.ImageOf(t, layers...)
	d := w.signedOf(t, "crowd/app", img)
	blobs := harness.ImageBlobs(t, img)
	for _, l := range layers {
		ld, _ := l.Digest()
		th.Pace(ld.String(), 20*time.Millisecond)
	}
	pg := w.start(t, w.config(t, pgOptions{content: harness.ContentKeys{Root: storeDir(t)}}))

	r, err := name.ParseReference(ref(pg, "crowd/app", ":v1"), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	n := len(w.reg.Requests())
	_, errs := atonce.Run(concurrentPulls, func(start <-chan struct{}) error {
		<-start
		return pullWhole(r, d, len(layers))
	})
	for _, err := range errs {
		t.Error(err)
	}
	reqs := w.reg.RequestsSince(n)
	if got := blobGETs(reqs, v1.Hash{}); got != len(blobs) {
		t.Errorf("%d concurrent first pulls made %d blob GETs upstream, want %d (one per blob)", concurrentPulls, got, len(blobs))
	}
	for _, b := range blobs {
		if got := blobGETs(reqs, b); got != 1 {
			t.Errorf("blob %s fetched %d times from the upstream", b, got)
		}
	}
}

// pullWhole pulls r whole (manifest, config, every layer read to the end, digests checked
// by go-containerregistry) and checks its digest; for goroutines, so it returns errors.
func pullWhole(r name.Reference, want v1.Hash, layers int) error {
	img, err := remote.Image(r)
	if err != nil {
		return fmt.Errorf("pull %s: %w", r, err)
	}
	if d, err := img.Digest(); err != nil || d != want {
		return fmt.Errorf("pull %s: digest %s (%v), want %s", r, d, err, want)
	}
	if _, err := img.RawConfigFile(); err != nil {
		return fmt.Errorf("pull %s: config: %w", r, err)
	}
	ls, err := img.Layers()
	if err != nil || len(ls) != layers {
		return fmt.Errorf("pull %s: %d layers (%v), want %d", r, len(ls), err, layers)
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("pull %s: layer: %w", r, err)
		}
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("pull %s: reading a layer: %w", r, err)
		}
	}
	return nil
}

// evictionWait bounds the wait for an eviction pass to have run after the pull that
// went beyond maxSize.
const evictionWait = 60 * time.Second

// TestContentEviction: maxSize holds one image and a bit; A (evict/a) and B (evict/b,
// another repository) share a 2 MiB layer and each has one of its own. After A then B
// are pulled, A's own content is removed, the shared layer stays (B references it), and B
// is served from the store.
func TestContentEviction(t *testing.T) {
	t.Parallel()
	w := newContentWorld(t)
	shared := harness.RandomLayer(t, 2<<20)
	imgA := harness.ImageOf(t, shared, harness.RandomLayer(t, 2<<20))
	imgB := harness.ImageOf(t, shared, harness.RandomLayer(t, 2<<20))
	dA := w.signedOf(t, "evict/a", imgA)
	dB := w.signedOf(t, "evict/b", imgB)
	sharedD, _ := shared.Digest()
	blobsA := harness.ImageBlobs(t, imgA)
	ownA := []v1.Hash{dA, blobsA[0], blobsA[2]} // manifest, config, own layer
	root := storeDir(t)
	pg := w.start(t, w.config(t, pgOptions{content: harness.ContentKeys{Root: root, MaxSize: "5MiB"}}))

	skopeoPull(t, ref(pg, "evict/a", ":v1"), dA)
	if m := missing(t, root, digestsOf(t, dA, imgA)...); len(m) != 0 {
		t.Fatalf("A (4 MiB, under maxSize 5 MiB) is not kept whole: missing %v", m)
	}
	skopeoPull(t, ref(pg, "evict/b", ":v1"), dB)

	deadline := time.Now().Add(evictionWait)
	for len(present(t, root, ownA...)) != 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if p := present(t, root, ownA...); len(p) != 0 {
		t.Errorf("%s after B went beyond maxSize, A's own content is still kept: %v", evictionWait, p)
	}
	if m := missing(t, root, digestsOf(t, dB, imgB)...); len(m) != 0 {
		t.Errorf("B, the most recently served image, lost %v (the shared layer is %s)", m, sharedD)
	}
	harness.CheckStoreFiles(t, root)

	n := len(w.reg.Requests())
	skopeoPull(t, ref(pg, "evict/b", at(dB)), dB)
	noUpstream(t, w, n, "B by digest after A was evicted")

	// A comes back from the upstream whole, and the store stays within bounds.
	skopeoPull(t, ref(pg, "evict/a", at(dA)), dA)
}
