package stored

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"sync"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/cache/store"
	"github.com/pullgate/pullgate/proxy/content"
	"github.com/pullgate/pullgate/proxy/upstream"
)

const (
	testRegistry = "reg.example"
	testRepo     = "team/app"
	ociManifest  = "application/vnd.oci.image.manifest.v1+json"
)

// fakeUpstream is an inner Source that counts its calls and can be switched off.
type fakeUpstream struct {
	mu        sync.Mutex
	calls     map[string]int
	manifests map[string]*content.Manifest // by tag and by digest
	blobs     map[digest.Digest][]byte
	down      bool
}

func newFakeUpstream() *fakeUpstream {
	return &fakeUpstream{calls: map[string]int{}, manifests: map[string]*content.Manifest{}, blobs: map[digest.Digest][]byte{}}
}

func (f *fakeUpstream) count(what string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[what]++
	if f.down {
		return &upstream.FailureError{Registry: testRegistry, Failure: upstream.FailureUnreachable, Err: errors.New("connection refused")}
	}
	return nil
}

func (f *fakeUpstream) n(what string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[what]
}

func (f *fakeUpstream) Manifest(ctx context.Context, repo, ref string, accept []string) (*content.Manifest, error) {
	if err := f.count("GET manifest"); err != nil {
		return nil, err
	}
	m, ok := f.manifests[ref]
	if !ok {
		return nil, &upstream.Error{Registry: testRegistry, StatusCode: 404, Status: "404 Not Found"}
	}
	return m, nil
}

func (f *fakeUpstream) HeadManifest(ctx context.Context, repo, ref string, accept []string) (content.Descriptor, error) {
	if err := f.count("HEAD manifest"); err != nil {
		return content.Descriptor{}, err
	}
	m, ok := f.manifests[ref]
	if !ok {
		return content.Descriptor{}, &upstream.Error{Registry: testRegistry, StatusCode: 404, Status: "404 Not Found"}
	}
	return content.Descriptor{ContentType: m.ContentType, Digest: m.Digest, Size: int64(len(m.Bytes))}, nil
}

func (f *fakeUpstream) Blob(ctx context.Context, repo string, d digest.Digest) (*content.Blob, error) {
	if err := f.count("GET blob"); err != nil {
		return nil, err
	}
	b, ok := f.blobs[d]
	if !ok {
		return nil, &upstream.Error{Registry: testRegistry, Endpoint: upstream.EndpointBlob, StatusCode: 404, Status: "404 Not Found"}
	}
	return &content.Blob{Body: io.NopCloser(bytes.NewReader(b)), Size: int64(len(b))}, nil
}

func (f *fakeUpstream) StatBlob(ctx context.Context, repo string, d digest.Digest) (content.Descriptor, error) {
	if err := f.count("HEAD blob"); err != nil {
		return content.Descriptor{}, err
	}
	return content.Descriptor{Digest: d, Size: int64(len(f.blobs[d]))}, nil
}

func (f *fakeUpstream) Tags(ctx context.Context, repo string, q url.Values) (*content.Listing, error) {
	return nil, f.count("tags")
}

func (f *fakeUpstream) Referrers(ctx context.Context, repo string, d digest.Digest, q url.Values) (*content.Listing, error) {
	return nil, f.count("referrers")
}

// testImage is one image in the fake upstream: a manifest listing one layer, tagged v1.
func testImage(t *testing.T, f *fakeUpstream) (*content.Manifest, []byte) {
	t.Helper()
	layer := []byte("layer bytes of the test image")
	ld := digest.FromBytes(layer)
	body := []byte(`{"schemaVersion":2,"mediaType":"` + ociManifest + `","layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + ld.String() + `","size":29}]}`)
	m := &content.Manifest{ContentType: ociManifest, Digest: digest.FromBytes(body), Bytes: body}
	f.manifests["v1"] = m
	f.manifests[m.Digest.String()] = m
	f.blobs[ld] = layer
	return m, layer
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// drivers remembers each test store's driver, for tests that reopen or damage it.
var drivers sync.Map // *store.Store → storagedriver.StorageDriver

func storeDriver(t *testing.T, st *store.Store) storagedriver.StorageDriver {
	d, ok := drivers.Load(st)
	if !ok {
		t.Fatal("no driver recorded for the store")
	}
	return d.(storagedriver.StorageDriver)
}

// flipKeptBlob flips one byte of kept blob d where the store keeps it.
func flipKeptBlob(t *testing.T, st *store.Store, d digest.Digest) {
	t.Helper()
	drv := storeDriver(t, st)
	p := "/docker/registry/v2/blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data"
	b, err := drv.GetContent(context.Background(), p)
	if err != nil {
		t.Fatalf("kept blob at %s: %v", p, err)
	}
	b[0] ^= 0xff
	if err := drv.PutContent(context.Background(), p, b); err != nil {
		t.Fatal(err)
	}
}

func newTestSource(t *testing.T, f *fakeUpstream, o Options) (*Source, *store.Store, *clock) {
	t.Helper()
	ctx := context.Background()
	clk := &clock{now: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)}
	drv := inmemory.New()
	st, err := store.Open(ctx, store.Options{Driver: drv, Now: clk.Now, SpoolDir: t.TempDir()})
	drivers.Store(st, storagedriver.StorageDriver(drv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	o.Registry, o.Store, o.Now = testRegistry, st, clk.Now
	if !o.Offline {
		o.Inner = f
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s, st, clk
}

// pull fetches the tag, keeps it as the handler does after the gate allowed, and reads
// the layer whole.
func pull(t *testing.T, s *Source, ref string, layer digest.Digest) *content.Manifest {
	t.Helper()
	ctx := context.Background()
	m, err := s.Manifest(ctx, testRepo, ref, nil)
	if err != nil {
		t.Fatalf("manifest %s: %v", ref, err)
	}
	s.KeepManifest(ctx, testRepo, ref, m)
	b, err := s.Blob(ctx, testRepo, layer)
	if err != nil {
		t.Fatalf("blob: %v", err)
	}
	if _, err := io.ReadAll(b.Body); err != nil {
		t.Fatalf("blob body: %v", err)
	}
	b.Body.Close()
	waitKept(t, s, layer)
	return m
}

// pullTestImage puts the test image in f and pulls it through s as v1.
func pullTestImage(t *testing.T, f *fakeUpstream, s *Source) (*content.Manifest, []byte) {
	t.Helper()
	m, layer := testImage(t, f)
	pull(t, s, "v1", digest.FromBytes(layer))
	return m, layer
}

// waitKept waits until the store committed blob d (a shared download commits after its
// last reader got the last byte).
func waitKept(t *testing.T, s *Source, d digest.Digest) {
	t.Helper()
	for range 1000 {
		if _, err := s.o.Store.StatBlob(context.Background(), d); err == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("blob %s was never committed", d)
}

func TestWarmPullsAskNothingUpstream(t *testing.T) {
	f := newFakeUpstream()
	s, _, clk := newTestSource(t, f, Options{TagTTL: time.Minute, MaxStale: time.Hour})
	m, layer := pullTestImage(t, f, s)
	ld := digest.FromBytes(layer)
	if f.n("GET manifest") != 1 || f.n("GET blob") != 1 {
		t.Fatalf("first pull: upstream calls %v", f.calls)
	}

	// Within tagTTL, by tag and by digest: nothing upstream.
	pull(t, s, "v1", ld)
	pull(t, s, m.Digest.String(), ld)
	if f.n("GET manifest") != 1 || f.n("HEAD manifest") != 0 || f.n("GET blob") != 1 {
		t.Fatalf("warm pulls: upstream calls %v", f.calls)
	}
	vb, err := s.OpenVerified(context.Background(), testRepo, ld)
	if err != nil {
		t.Fatalf("a blob read whole once is served as verified: %v", err)
	}
	vb.Body.Close()

	// Past tagTTL: a HEAD confirms the tag; the bytes come from the store.
	clk.advance(2 * time.Minute)
	got := pull(t, s, "v1", ld)
	if !got.Kept || f.n("HEAD manifest") != 1 || f.n("GET manifest") != 1 {
		t.Fatalf("after tagTTL: kept=%v upstream calls %v", got.Kept, f.calls)
	}
	pull(t, s, "v1", ld) // confirmed again by that HEAD
	if f.n("HEAD manifest") != 1 {
		t.Fatalf("the HEAD did not confirm the tag: %v", f.calls)
	}
}

func TestUnreachableUpstreamServesStaleTags(t *testing.T) {
	for _, tc := range []struct {
		name      string
		maxStale  time.Duration
		age       time.Duration
		wantStale bool
	}{
		{"within maxStale", time.Hour, 30 * time.Minute, true},
		{"forever", -1, 1000 * time.Hour, true},
		{"past maxStale", time.Hour, 2 * time.Hour, false},
		{"never", 0, 2 * time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeUpstream()
			s, _, clk := newTestSource(t, f, Options{TagTTL: time.Minute, MaxStale: tc.maxStale})
			m, _ := pullTestImage(t, f, s)
			f.down = true
			clk.advance(tc.age)
			ctx := context.Background()
			got, err := s.Manifest(ctx, testRepo, "v1", nil)
			if !tc.wantStale {
				if err == nil || !content.IsUnreachable(err) {
					t.Fatalf("Manifest = %v, %v; want the upstream's failure", got, err)
				}
				return
			}
			if err != nil || !got.Stale || got.Digest != m.Digest {
				t.Fatalf("Manifest = %+v, %v; want the kept manifest marked stale", got, err)
			}
			desc, err := s.HeadManifest(ctx, testRepo, "v1", nil)
			if err != nil || !desc.Stale || desc.Digest != m.Digest {
				t.Fatalf("HeadManifest = %+v, %v; want the kept digest marked stale", desc, err)
			}
			// By digest the store answers whatever the age.
			if got, err := s.Manifest(ctx, testRepo, m.Digest.String(), nil); err != nil || got.Stale {
				t.Fatalf("by digest = %+v, %v", got, err)
			}
		})
	}
}

func TestOfflineAnswersOnlyFromTheStore(t *testing.T) {
	f := newFakeUpstream()
	online, st, _ := newTestSource(t, f, Options{TagTTL: time.Minute, MaxStale: time.Hour})
	m, _ := pullTestImage(t, f, online)
	before := f.n("GET manifest") + f.n("HEAD manifest") + f.n("GET blob")

	offline, err := New(Options{Registry: testRegistry, Offline: true, Store: st, TagTTL: time.Minute, MaxStale: 0})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if got, err := offline.Manifest(ctx, testRepo, m.Digest.String(), nil); err != nil || got.Digest != m.Digest {
		t.Fatalf("kept by digest offline = %v, %v", got, err)
	}
	// MaxStale 0 and a confirmation older than TagTTL: an offline upstream's kept tag
	// still answers (what import confirmed does not age), not marked stale.
	offline.o.Now = func() time.Time { return time.Now().Add(24 * time.Hour) }
	if got, err := offline.Manifest(ctx, testRepo, "v1", nil); err != nil || got.Digest != m.Digest || got.Stale {
		t.Fatalf("kept tag offline = %+v, %v", got, err)
	}
	if d, err := offline.HeadManifest(ctx, testRepo, "v1", nil); err != nil || d.Digest != m.Digest || d.Stale {
		t.Fatalf("HEAD kept tag offline = %+v, %v", d, err)
	}
	for _, ref := range []string{"v2", digest.FromString("never seen").String()} {
		_, err := offline.Manifest(ctx, testRepo, ref, nil)
		if !content.IsNotFound(err) {
			t.Fatalf("never-seen %s offline: %v, want MANIFEST_UNKNOWN", ref, err)
		}
	}
	if _, err := offline.Blob(ctx, testRepo, digest.FromString("other")); !content.IsNotFound(err) {
		t.Fatalf("never-seen blob offline: %v, want BLOB_UNKNOWN", err)
	}
	if after := f.n("GET manifest") + f.n("HEAD manifest") + f.n("GET blob"); after != before {
		t.Fatalf("the offline source contacted the upstream: %v", f.calls)
	}
}

func TestClientAcceptDecidesWhetherTheKeptTagAnswers(t *testing.T) {
	f := newFakeUpstream()
	s, _, _ := newTestSource(t, f, Options{TagTTL: time.Hour, MaxStale: time.Hour})
	pullTestImage(t, f, s)
	if _, err := s.Manifest(context.Background(), testRepo, "v1", []string{"application/vnd.docker.distribution.manifest.v2+json"}); err != nil {
		t.Fatal(err)
	}
	if f.n("GET manifest") != 2 {
		t.Fatalf("a client that does not accept the kept media type must be asked upstream: %v", f.calls)
	}
	if _, err := s.Manifest(context.Background(), testRepo, "v1", []string{ociManifest + ", application/json"}); err != nil {
		t.Fatal(err)
	}
	if f.n("GET manifest") != 2 {
		t.Fatalf("a client that accepts the kept media type is answered from the store: %v", f.calls)
	}
}

func TestFlippedByteInAKeptBlobIsCaughtOnFirstServe(t *testing.T) {
	ctx := context.Background()
	f := newFakeUpstream()
	s, st, _ := newTestSource(t, f, Options{TagTTL: time.Minute})
	_, layer := pullTestImage(t, f, s)
	ld := digest.FromBytes(layer)

	// A new process on the same store (nothing checked yet) whose kept bytes rotted.
	st2, err := store.Open(ctx, store.Options{Driver: storeDriver(t, st), SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	flipKeptBlob(t, st, ld)
	s2, err := New(Options{Registry: testRegistry, Inner: f, Store: st2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.OpenVerified(ctx, testRepo, ld); !errors.Is(err, content.ErrNotHeld) {
		t.Fatalf("an unchecked blob must not be served as verified: %v", err)
	}
	b, err := s2.Blob(ctx, testRepo, ld)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(b.Body)
	b.Body.Close()
	if !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("reading a rotten kept blob = %v, want a digest mismatch", err)
	}
	// Dropped: the next read fetches it from the upstream again, right.
	b, err = s2.Blob(ctx, testRepo, ld)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(b.Body)
	b.Body.Close()
	if err != nil || !bytes.Equal(got, layer) || f.n("GET blob") != 2 {
		t.Fatalf("after the drop: %q, %v, upstream calls %v", got, err, f.calls)
	}
}

// writeCounter is a store that counts manifest writes and tag reads and writes.
type writeCounter struct {
	Store
	puts, tagGets, tagPuts int
}

func (w *writeCounter) PutManifest(ctx context.Context, registry, repo string, m store.Manifest, refs store.Refs) error {
	w.puts++
	return w.Store.PutManifest(ctx, registry, repo, m, refs)
}

func (w *writeCounter) GetTag(ctx context.Context, registry, repo, tag string) (store.Tag, error) {
	w.tagGets++
	return w.Store.GetTag(ctx, registry, repo, tag)
}

func (w *writeCounter) PutTag(ctx context.Context, registry, repo, tag string, d digest.Digest) error {
	w.tagPuts++
	return w.Store.PutTag(ctx, registry, repo, tag, d)
}

// A kept manifest served by tag was confirmed by the lookup that found it (within tagTTL,
// or by the HEAD just made): keeping it reads the confirmation no second time, and an
// offline upstream, which confirms nothing, never rewrites what import confirmed.
func TestServingAKeptTagConfirmsOnlyWhatTheUpstreamSaid(t *testing.T) {
	f := newFakeUpstream()
	first, st, clk := newTestSource(t, f, Options{TagTTL: time.Minute})
	_, layer := pullTestImage(t, f, first)

	for _, tc := range []struct {
		name             string
		opts             Options
		age              time.Duration
		tagGets, tagPuts int
	}{
		{"within tagTTL", Options{Inner: f, TagTTL: time.Hour}, 0, 1, 0},
		{"confirmed by a HEAD", Options{Inner: f, TagTTL: time.Minute}, 2 * time.Minute, 1, 1},
		{"offline", Options{Offline: true, TagTTL: time.Minute}, 48 * time.Hour, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk.advance(tc.age)
			wc := &writeCounter{Store: st}
			o := tc.opts
			o.Registry, o.Store, o.Now = testRegistry, wc, clk.Now
			s, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			m := pull(t, s, "v1", digest.FromBytes(layer))
			if !m.Kept || wc.tagGets != tc.tagGets || wc.tagPuts != tc.tagPuts {
				t.Fatalf("kept=%v, %d tag reads and %d tag writes; want %d and %d", m.Kept, wc.tagGets, wc.tagPuts, tc.tagGets, tc.tagPuts)
			}
		})
	}
}

// A manifest served again (from the in-memory manifest cache, which does not say it
// came from the store) is not written again.
func TestKeepingTwiceWritesOnce(t *testing.T) {
	f := newFakeUpstream()
	_, st, _ := newTestSource(t, f, Options{})
	wc := &writeCounter{Store: st}
	s, err := New(Options{Registry: testRegistry, Inner: f, Store: wc})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := testImage(t, f)
	for range 3 {
		s.KeepManifest(context.Background(), testRepo, m.Digest.String(), m)
	}
	if wc.puts != 1 {
		t.Fatalf("%d manifest writes, want 1", wc.puts)
	}
}

// Once the upstream was unreachable, the next tag requests are answered stale at once
// for a few seconds, not after the upstream client's retries fail again.
func TestUnreachableUpstreamIsNotAskedAgainAtOnce(t *testing.T) {
	f := newFakeUpstream()
	s, _, clk := newTestSource(t, f, Options{TagTTL: time.Minute, MaxStale: time.Hour})
	pullTestImage(t, f, s)
	f.down = true
	clk.advance(2 * time.Minute)
	ctx := context.Background()
	for range 3 {
		if m, err := s.Manifest(ctx, testRepo, "v1", nil); err != nil || !m.Stale {
			t.Fatalf("Manifest = %v, %v", m, err)
		}
	}
	if n := f.n("HEAD manifest") + f.n("GET manifest"); n != 2 { // the first pull's GET, one HEAD
		t.Fatalf("upstream asked %d times: %v", n, f.calls)
	}
	clk.advance(downFor + time.Second)
	if _, err := s.Manifest(ctx, testRepo, "v1", nil); err != nil {
		t.Fatal(err)
	}
	if f.n("HEAD manifest") != 2 {
		t.Fatalf("after downFor the upstream must be asked again: %v", f.calls)
	}
}
