package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
)

const keptReg, keptRepo = "registry.test", "org/app"

// keepMany keeps n manifests in keptReg/keptRepo, each listing two blobs of its own, and
// returns their blobs (blobs[i] are manifest i's).
func keepMany(t testing.TB, s *Store, n int) (ms []Manifest, blobs [][]digest.Digest) {
	t.Helper()
	for i := range n {
		b := []digest.Digest{digest.FromString(fmt.Sprintf("config %d", i)), digest.FromString(fmt.Sprintf("layer %d", i))}
		m := testManifest(t, "application/vnd.oci.image.manifest.v1+json", b...)
		if err := s.PutManifest(ctx, keptReg, keptRepo, m, Refs{Blobs: b}); err != nil {
			t.Fatal(err)
		}
		ms, blobs = append(ms, m), append(blobs, b)
	}
	return ms, blobs
}

func randomDigest(t testing.TB) digest.Digest { return digest.FromBytes(randomBytes(t, 32)) }

// openCounting opens a store on a counting driver over d.
func openCounting(t *testing.T, d storagedriver.StorageDriver) (*Store, *testsupport.CountingDriver) {
	t.Helper()
	cd := &testsupport.CountingDriver{StorageDriver: d}
	f := openOn(t, cd, func() storagedriver.StorageDriver { return cd }, Options{}, newClock())
	cd.Reset() // Open's probe and purge
	return f.s, cd
}

// The attack the review found: a client asking for blobs no served manifest lists, in a
// repository with more kept manifests than the records cache holds, made every request
// read every record. After the first lookup, one costs one List and no read, and what
// another replica keeps in the meantime is still found.
func TestReferencingCostIsBounded(t *testing.T) {
	// The driver calls are the same whatever the driver; inmemory keeps the thousands of
	// manifests fast. TestReferencingSeesOtherReplicas runs on every driver.
	const n = MaxRecordsCached + 1000
	raw := inmemory.New()
	writer := openOn(t, raw, func() storagedriver.StorageDriver { return raw }, Options{}, newClock()).s // another replica
	ms, blobs := keepMany(t, writer, n)
	s, cd := openCounting(t, raw)

	if got, err := s.ManifestsReferencing(ctx, keptReg, keptRepo, randomDigest(t)); err != nil || len(got) != 0 {
		t.Fatalf("first lookup of an unknown digest = %v, %v", got, err)
	}
	t.Logf("first lookup: %s", cd)
	if cd.Reads() > n {
		t.Fatalf("first lookup read %d objects, more than the %d records", cd.Reads(), n)
	}

	const lookups = 100
	cd.Reset()
	for range lookups {
		if got, err := s.ManifestsReferencing(ctx, keptReg, keptRepo, randomDigest(t)); err != nil || len(got) != 0 {
			t.Fatalf("lookup of an unknown digest = %v, %v", got, err)
		}
	}
	t.Logf("%d more lookups of unknown digests: %s", lookups, cd)
	if cd.Reads() != 0 || cd.Stats.Load() != 0 || cd.Lists.Load() > lookups {
		t.Fatalf("%d lookups of unknown digests cost %s; want at most one List each and nothing else", lookups, cd)
	}

	// Known blobs are still found, from the index.
	cd.Reset()
	for _, i := range []int{0, n / 2, n - 1} {
		got, err := s.ManifestsReferencing(ctx, keptReg, keptRepo, blobs[i][1])
		if err != nil || !slices.Equal(got, []digest.Digest{ms[i].Digest}) {
			t.Fatalf("blob of manifest %d: %v, %v; want [%s]", i, got, err, ms[i].Digest)
		}
	}
	if cd.Reads() != 0 || cd.Stats.Load() > 3 {
		t.Fatalf("three lookups of kept blobs cost %s; want no read and one Stat each", cd)
	}

	// A manifest another replica keeps now is found by the next lookup: no stale
	// denial. Only its record is read.
	newBlob := randomDigest(t)
	m := testManifest(t, "application/vnd.oci.image.manifest.v1+json", newBlob)
	if err := writer.PutManifest(ctx, keptReg, keptRepo, m, Refs{Blobs: []digest.Digest{newBlob}}); err != nil {
		t.Fatal(err)
	}
	cd.Reset()
	got, err := s.ManifestsReferencing(ctx, keptReg, keptRepo, newBlob)
	if err != nil || !slices.Equal(got, []digest.Digest{m.Digest}) {
		t.Fatalf("blob of a manifest kept by another replica after the last lookup: %v, %v; want [%s]", got, err, m.Digest)
	}
	if cd.Reads() > 1 {
		t.Fatalf("finding a newly kept manifest cost %s; want its record read alone", cd)
	}
}

// Many concurrent lookups of unknown digests in one repository share the scan: every
// record is read once, whatever the number of callers, and the callers that arrived while
// a listing was under way share the next one.
func TestReferencingConcurrentLookupsShareOneScan(t *testing.T) {
	const n, callers = MaxRecordsCached + 1000, 64
	raw := inmemory.New()
	writer := openOn(t, raw, func() storagedriver.StorageDriver { return raw }, Options{}, newClock()).s
	keepMany(t, writer, n)
	s, cd := openCounting(t, raw)
	// The first listing waits until every caller waits for it.
	release := make(chan struct{})
	var listed atomic.Int64
	cd.HoldList = func() {
		if listed.Add(1) == 1 {
			<-release
		}
	}
	go func() {
		for s.keptWaiting(keptReg, keptRepo) < callers {
			runtime.Gosched()
		}
		close(release)
	}()

	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			got, err := s.ManifestsReferencing(ctx, keptReg, keptRepo, randomDigest(t))
			if err != nil || len(got) != 0 {
				errs <- fmt.Errorf("lookup = %v, %v", got, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d concurrent lookups: %s", callers, cd)
	if cd.Reads() != n {
		t.Fatalf("%d concurrent lookups read %d objects; want each of the %d records read once", callers, cd.Reads(), n)
	}
	// The first caller's listing, and one for all the callers that came while it ran.
	if cd.Lists.Load() != 2 {
		t.Fatalf("%d concurrent lookups made %d listings, want 2", callers, cd.Lists.Load())
	}
}

// A lookup always answers for what the store holds when it was asked, on every driver: a
// manifest kept by another replica is found at once, one it evicted or dropped is not.
func TestReferencingSeesOtherReplicas(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		raw, again := b.new(t)
		other := openOn(t, raw, again, Options{}, newClock()).s
		ms, blobs := keepMany(t, other, 20)
		s, cd := openCounting(t, again())

		wanted := randomDigest(t)
		if got, err := s.ManifestsReferencing(ctx, keptReg, keptRepo, wanted); err != nil || len(got) != 0 {
			t.Fatalf("before it is kept: %v, %v", got, err)
		}
		m := testManifest(t, "application/vnd.oci.image.manifest.v1+json", wanted)
		if err := other.PutManifest(ctx, keptReg, keptRepo, m, Refs{Blobs: []digest.Digest{wanted}}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ManifestsReferencing(ctx, keptReg, keptRepo, wanted); err != nil || !slices.Equal(got, []digest.Digest{m.Digest}) {
			t.Fatalf("kept by another replica: %v, %v; want [%s]", got, err, m.Digest)
		}

		// Evicted by another replica (its revision folder removed): no longer listed.
		if err := raw.Delete(ctx, revisionDir(keptReg, keptRepo, ms[3].Digest)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ManifestsReferencing(ctx, keptReg, keptRepo, blobs[3][0]); err != nil || len(got) != 0 {
			t.Fatalf("evicted manifest still listed: %v, %v", got, err)
		}
		// Dropped as corrupt (its link removed, the record left): no longer listed.
		if err := raw.Delete(ctx, revisionDir(keptReg, keptRepo, ms[4].Digest)+"/"+linkFile); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ManifestsReferencing(ctx, keptReg, keptRepo, blobs[4][0]); err != nil || len(got) != 0 {
			t.Fatalf("dropped manifest still listed: %v, %v", got, err)
		}
		// Kept again: found again.
		if err := other.PutManifest(ctx, keptReg, keptRepo, ms[3], Refs{Blobs: blobs[3]}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ManifestsReferencing(ctx, keptReg, keptRepo, blobs[3][0]); err != nil || !slices.Equal(got, []digest.Digest{ms[3].Digest}) {
			t.Fatalf("kept again: %v, %v", got, err)
		}
		// A blob listed by two manifests: both, sorted.
		shared := blobs[5][0]
		m2 := testManifest(t, "application/vnd.oci.image.manifest.v1+json", shared)
		if err := other.PutManifest(ctx, keptReg, keptRepo, m2, Refs{Blobs: []digest.Digest{shared}}); err != nil {
			t.Fatal(err)
		}
		want := []digest.Digest{ms[5].Digest, m2.Digest}
		slices.Sort(want)
		if got, err := s.ManifestsReferencing(ctx, keptReg, keptRepo, shared); err != nil || !slices.Equal(got, want) {
			t.Fatalf("shared blob: %v, %v; want %v", got, err, want)
		}
		// Another repository of the same store knows nothing of them.
		if got, err := s.ManifestsReferencing(ctx, keptReg, "org/other", shared); err != nil || len(got) != 0 {
			t.Fatalf("other repository: %v, %v", got, err)
		}
		t.Logf("driver calls: %s", cd)
	})
}

// A record that cannot be parsed is read again at the next few lookups (one being written
// is not there yet), then only after a delay: a corrupt store does not cost a read per
// record at every lookup. Rewritten (its manifest kept again), it is found.
func TestReferencingCorruptRecordsAreNotReadEveryTime(t *testing.T) {
	raw := inmemory.New()
	other := openOn(t, raw, func() storagedriver.StorageDriver { return raw }, Options{}, newClock()).s
	ms, blobs := keepMany(t, other, 10)
	for _, m := range ms[:5] {
		if err := raw.PutContent(ctx, revisionDir(keptReg, keptRepo, m.Digest)+"/"+recordFile, []byte("not JSON")); err != nil {
			t.Fatal(err)
		}
	}
	cd := &testsupport.CountingDriver{StorageDriver: raw}
	f := openOn(t, cd, func() storagedriver.StorageDriver { return cd }, Options{}, newClock())
	s := f.s
	cd.Reset()
	for range keptImmediateRetries {
		if got, err := s.ManifestsReferencing(ctx, keptReg, keptRepo, blobs[0][0]); err != nil || len(got) != 0 {
			t.Fatalf("blob of a manifest whose record is corrupt: %v, %v", got, err)
		}
	}
	if want := int64(10 + 5*(keptImmediateRetries-1)); cd.Reads() != want {
		t.Fatalf("first lookups read %d records, want %d", cd.Reads(), want)
	}
	cd.Reset()
	for range 50 {
		s.ManifestsReferencing(ctx, keptReg, keptRepo, randomDigest(t))
	}
	if cd.Reads() != 0 {
		t.Fatalf("50 lookups read %d corrupt records again, want none before their delay", cd.Reads())
	}
	// The manifest is kept again (its record rewritten): found once the delay is over.
	if err := other.PutManifest(ctx, keptReg, keptRepo, ms[0], Refs{Blobs: blobs[0]}); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Second)
	cd.Reset()
	if got, err := s.ManifestsReferencing(ctx, keptReg, keptRepo, blobs[0][0]); err != nil || !slices.Equal(got, []digest.Digest{ms[0].Digest}) {
		t.Fatalf("rewritten record: %v, %v", got, err)
	}
	if cd.Reads() != 5 {
		t.Fatalf("the lookup after the delay read %d records, want the 5 that failed", cd.Reads())
	}
	if got, _ := s.ManifestsReferencing(ctx, keptReg, keptRepo, blobs[7][1]); !slices.Equal(got, []digest.Digest{ms[7].Digest}) {
		t.Fatalf("sound record: %v", got)
	}
}

// A blob listed by many kept manifests (a base layer) costs a bounded number of link checks.
func TestReferencingSharedBlobIsBounded(t *testing.T) {
	raw := inmemory.New()
	other := openOn(t, raw, func() storagedriver.StorageDriver { return raw }, Options{}, newClock()).s
	base := randomDigest(t)
	var all []digest.Digest
	for range 200 {
		m := testManifest(t, "application/vnd.oci.image.manifest.v1+json", base)
		if err := other.PutManifest(ctx, keptReg, keptRepo, m, Refs{Blobs: []digest.Digest{base, randomDigest(t)}}); err != nil {
			t.Fatal(err)
		}
		all = append(all, m.Digest)
	}
	slices.Sort(all)
	s, cd := openCounting(t, raw)
	s.ManifestsReferencing(ctx, keptReg, keptRepo, randomDigest(t)) // builds the index
	cd.Reset()
	got, err := s.ManifestsReferencing(ctx, keptReg, keptRepo, base)
	if err != nil || !slices.Equal(got, all[:MaxReferencingResults]) {
		t.Fatalf("shared blob: %v, %v; want the first %d of %d", got, err, MaxReferencingResults, len(all))
	}
	if cd.Reads() != 0 || cd.Stats.Load() != MaxReferencingResults || cd.Lists.Load() != 1 {
		t.Fatalf("shared blob cost %s; want one List and %d Stat", cd, MaxReferencingResults)
	}
}

// The index is bounded: repositories beyond the bounds are forgotten least recent first
// (and found again by reading their records), made-up repositories take no room, and a
// repository larger than the whole index is indexed up to the bound with one warning.
func TestReferencingIndexIsBounded(t *testing.T) {
	raw := inmemory.New()
	other := openOn(t, raw, func() storagedriver.StorageDriver { return raw }, Options{}, newClock()).s
	keepIn := func(repo string, n int) (blobs []digest.Digest, ms []digest.Digest) {
		for range n {
			b := randomDigest(t)
			m := testManifest(t, "application/vnd.oci.image.manifest.v1+json", b)
			if err := other.PutManifest(ctx, keptReg, repo, m, Refs{Blobs: []digest.Digest{b}}); err != nil {
				t.Fatal(err)
			}
			blobs, ms = append(blobs, b), append(ms, m.Digest)
		}
		return blobs, ms
	}
	aBlobs, aMs := keepIn("org/a", 10)
	bBlobs, _ := keepIn("org/b", 10)
	bigBlobs, _ := keepIn("org/big", 30)
	cd := &testsupport.CountingDriver{StorageDriver: raw}
	f := openOn(t, cd, func() storagedriver.StorageDriver { return cd }, Options{}, newClock())
	s := f.s
	s.kept.maxCost, s.kept.maxRepos = 20*(1+keptRevisionCost), 2

	s.ManifestsReferencing(ctx, keptReg, "org/a", aBlobs[0])
	s.ManifestsReferencing(ctx, keptReg, "org/b", bBlobs[0])
	for range 20 {
		s.ManifestsReferencing(ctx, keptReg, "org/made-up", randomDigest(t))
	}
	cd.Reset()
	if got, _ := s.ManifestsReferencing(ctx, keptReg, "org/a", aBlobs[1]); !slices.Equal(got, aMs[1:2]) {
		t.Fatalf("org/a: %v", got)
	}
	if cd.Reads() != 0 {
		t.Fatalf("lookups in made-up repositories evicted org/a (%s)", cd)
	}
	// org/big does not fit: 20 of its 30 manifests are indexed, the others are not
	// looked up, with one warning; org/a and org/b are forgotten to make room.
	for range 3 {
		s.ManifestsReferencing(ctx, keptReg, "org/big", randomDigest(t))
	}
	if n := len(f.logs.Lines("the kept-manifest index is full")); n != 1 {
		t.Fatalf("%d warnings about the full index, want 1:\n%s", n, f.logs)
	}
	found := 0
	for _, b := range bigBlobs {
		if got, _ := s.ManifestsReferencing(ctx, keptReg, "org/big", b); len(got) == 1 {
			found++
		}
	}
	if found != 20 {
		t.Fatalf("%d manifests of org/big found, want the 20 the index holds", found)
	}
	if s.kept.cost > s.kept.maxCost {
		t.Fatalf("index costs %d, more than %d", s.kept.cost, s.kept.maxCost)
	}
	cd.Reset()
	if got, _ := s.ManifestsReferencing(ctx, keptReg, "org/a", aBlobs[2]); !slices.Equal(got, aMs[2:3]) {
		t.Fatalf("org/a after it was forgotten: %v", got)
	}
	if cd.Reads() != 10 {
		t.Fatalf("org/a read again with %s, want its 10 records", cd)
	}
}

// A lookup waits for a scan slot only as long as its context lasts, and the answer is an
// error, never an empty list that would read as "no kept manifest lists it".
func TestReferencingWaitEndsWithTheContext(t *testing.T) {
	raw := inmemory.New()
	other := openOn(t, raw, func() storagedriver.StorageDriver { return raw }, Options{}, newClock()).s
	_, blobs := keepMany(t, other, 3)
	s, _ := openCounting(t, raw)
	for range MaxConcurrentKeptScans {
		s.kept.sem <- struct{}{}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if got, err := s.ManifestsReferencing(cctx, keptReg, keptRepo, blobs[0][0]); !errors.Is(err, ErrUnavailable) || got != nil {
		t.Fatalf("lookup with every slot taken and its context ended: %v, %v", got, err)
	}
	for range MaxConcurrentKeptScans {
		<-s.kept.sem
	}
	if got, err := s.ManifestsReferencing(ctx, keptReg, keptRepo, blobs[0][0]); err != nil || len(got) != 1 {
		t.Fatalf("lookup with slots free: %v, %v", got, err)
	}
}
