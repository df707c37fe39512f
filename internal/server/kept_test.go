package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/cache/store"
	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/enforce"
	"github.com/pullgate/pullgate/proxy/upstream"
)

type noSignatures struct{}

func (noSignatures) Signatures(context.Context, string, string, reference.Named, digest.Digest) ([]policy.Signature, error) {
	return nil, nil
}

// ociImage is an OCI image manifest listing a config and one layer.
func ociImage(name string) (store.Manifest, []digest.Digest) {
	config, layer := digest.FromString("config of "+name), digest.FromString("layer of "+name)
	b := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":10},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":20}]}`, config, layer))
	return store.Manifest{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digest.FromBytes(b), Bytes: b},
		[]digest.Digest{config, layer}
}

// The attack through the handler: unauthenticated GETs of random blob digests in a
// repository with thousands of kept manifests. Concurrent first requests share one scan
// of the records, later ones read no record, none reaches the upstream, and the blob of an
// image another replica keeps afterwards is admitted at once.
func TestKeptLookupsOfRandomBlobsAreCheap(t *testing.T) {
	const (
		reg, repo = "registry.test", "org/app"
		kept      = store.MaxRecordsCached + 1000
		requests  = 100
	)
	ctx := context.Background()
	raw := inmemory.New()
	other, err := store.Open(ctx, store.Options{Driver: raw}) // another replica on the same storage
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := range kept {
		m, blobs := ociImage(fmt.Sprint(i))
		if err := other.PutManifest(ctx, reg, repo, m, store.Refs{Blobs: blobs}); err != nil {
			t.Fatal(err)
		}
	}
	counted := &testsupport.CountingDriver{StorageDriver: raw}
	st, err := store.Open(ctx, store.Options{Driver: counted})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	pol, err := policy.Parse([]byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), "policy.json")
	if err != nil {
		t.Fatal(err)
	}
	gate, err := enforce.New(enforce.Options{Policy: pol, Finder: noSignatures{}, Kept: keptManifests{store: st}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var upstreamHits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamHits.Add(1)
		http.NotFound(w, r)
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	client, err := upstream.New(upstream.Options{Registry: reg, URL: u, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	h, err := proxy.New(proxy.Options{Upstreams: []proxy.Upstream{{Registry: reg, Source: client}}, Gate: gate,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	get := func(d digest.Digest) (int, error) {
		resp, err := http.Get(srv.URL + "/v2/" + reg + "/" + repo + "/blobs/" + d.String())
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	random := func() digest.Digest {
		var b [32]byte
		rand.Read(b[:])
		return digest.FromBytes(b[:])
	}
	denyAll := func(parallel bool) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, requests)
		for range requests {
			one := func() {
				if code, err := get(random()); err != nil || code != http.StatusForbidden {
					errs <- fmt.Errorf("GET of a random blob: %d, %v; want 403", code, err)
				}
			}
			if parallel {
				wg.Go(one)
			} else {
				one()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}

	counted.Reset()
	denyAll(true)
	t.Logf("%d concurrent GETs of random blobs: %d List, %d reads", requests, counted.Lists.Load(), counted.Reads())
	if counted.Reads() > kept {
		t.Fatalf("%d concurrent GETs read %d objects; want each of the %d records read at most once", requests, counted.Reads(), kept)
	}
	counted.Reset()
	denyAll(false)
	t.Logf("%d more GETs of random blobs: %d List, %d reads", requests, counted.Lists.Load(), counted.Reads())
	if counted.Reads() != 0 || counted.Lists.Load() > requests {
		t.Fatalf("%d GETs of random blobs cost %d List and %d reads; want at most one List each and no read", requests, counted.Lists.Load(), counted.Reads())
	}
	if n := upstreamHits.Load(); n != 0 {
		t.Fatalf("denied blobs reached the upstream %d times", n)
	}

	// An image another replica keeps now: its blob is admitted by this one at once (the
	// upstream's 404 answers, not a 403).
	m, blobs := ociImage("kept just now")
	if err := other.PutManifest(ctx, reg, repo, m, store.Refs{Blobs: blobs}); err != nil {
		t.Fatal(err)
	}
	if code, err := get(blobs[1]); err != nil || code == http.StatusForbidden {
		t.Fatalf("GET of a blob of an image another replica kept: %d, %v; want it admitted", code, err)
	}
	if upstreamHits.Load() == 0 {
		t.Fatal("the admitted blob was not asked of the upstream")
	}
}
