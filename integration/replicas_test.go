package integration

// Replicas (DESIGN.md, "Replicas (contract)"): three pullgate processes built from this
// module, one configuration file, one shared content store (distribution's s3 driver on a
// versitygw bucket on 127.0.0.1), distribution's registry upstream with GPG simple-signing
// signatures in a lookaside, and clients sent round-robin over the replicas.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullgate/pullgate/cache/store"
	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/atonce"
	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/internal/testsupport/versitygw"
)

// replicaCount is how many replicas share the store.
const replicaCount = 3

// burstClients is how many clients pull one image at once for the first time.
const burstClients = 30

func TestReplicasSharedStore(t *testing.T) {
	t.Parallel()
	up := &upstreamControl{}
	down := &downSwitch{}
	w := &enforceWorld{reg: harness.StartRegistry(t, harness.WithMiddleware(down.middleware), harness.WithMiddleware(up.middleware)),
		sig: harness.NewSimpleSigning(t)}
	w.trusted = w.sig.Key(t, "trusted")
	w.untrusted = w.sig.Key(t, "untrusted")
	w.policy = filepath.Join(t.TempDir(), "policy.json")
	testsupport.WriteFile(t, w.policy, w.policyJSON())

	s3 := versitygw.Start(t)
	s3.CreateBucket(t, "pullgate")
	params := s3.DriverParams("pullgate", "/replicas")

	imgs := map[string]v1.Hash{}
	var mu sync.Mutex
	push := func(repo string, layers int, size int64, signed bool) func(*testing.T) {
		return func(t *testing.T) {
			img := harness.OCIImage(t, layers, size, harness.LinuxAMD64)
			var d v1.Hash
			if signed {
				w.reg.Push(t, "src/"+repo+":v1", img)
				w.copySigned(t, w.trusted, fullName(repo)+":v1", "src/"+repo+":v1", repo+":v1")
				d = w.digest(t, repo+":v1")
			} else {
				d = w.reg.Push(t, repo+":v1", img)
			}
			mu.Lock()
			imgs[repo] = d
			mu.Unlock()
		}
	}
	parallel(t, "set-up", map[string]func(*testing.T){
		"build":    w.build(t.TempDir()),
		"spread":   push("spread/app", 3, 256<<10, true),
		"rejected": push("rejected/app", 2, 64<<10, true),
		"unsigned": push("unsigned/app", 2, 64<<10, false),
		"burst":    push("burst/app", 3, 1<<20, true),
		"slow":     push("slow/app", 1, 4<<20, true),
		"reload":   push("reload/app", 2, 64<<10, true),
		// Only the index is signed (cosign without --recursive): its children are accepted
		// through it (DESIGN difference 1), here on replicas that never served it.
		"index": func(t *testing.T) {
			d := w.reg.PushIndex(t, "multi/app:v1", harness.OCIIndex(t, 64<<10, harness.LinuxAMD64, harness.LinuxARM64))
			w.signIndexAlone(t, "multi/app")
			mu.Lock()
			imgs["multi/app"] = d
			mu.Unlock()
		},
	})

	rw := &replicaWorld{enforceWorld: w, up: up, down: down, params: params, imgs: imgs, top: t}
	rw.config = harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams:       []harness.Upstream{{Registry: upstreamName, URL: w.reg.URL}},
		DefaultUpstream: upstreamName, Policy: w.policy, RegistriesD: w.sig.RegistriesD,
		Extra: harness.ContentKeys{S3: params}.YAML(),
	})
	for range replicaCount {
		rw.replicas = append(rw.replicas, rw.startReplica(t))
	}
	rw.lb = startBalancer(t, rw.replicas)

	t.Run("manifest from one replica, each blob from another", rw.testSpread)
	t.Run("index on one replica, child on another, its blobs on a third", rw.testIndex)
	t.Run("rejected is 403 on every replica, blobs too", rw.testRejected)
	t.Run("kept by one is not fetched again by another", rw.testKeptShared)
	t.Run("concurrent first pulls over the replicas", rw.testBurst)
	t.Run("kill -9 mid-pull", rw.testKill)
	t.Run("kept signatures decide on a replica that never saw the image", rw.testKeptSignatures)
	t.Run("policy reload applies to the shared store", rw.testReload)
}

type replicaWorld struct {
	*enforceWorld
	top      *testing.T // replicas started by a subtest outlive it
	up       *upstreamControl
	down     *downSwitch
	params   map[string]any
	imgs     map[string]v1.Hash
	config   string
	replicas []*harness.Pullgate
	lb       *balancer
}

// startReplica starts one more replica, its spool folder (TMPDIR) the test's, so that a
// killed one leaves no debris behind the test.
func (rw *replicaWorld) startReplica(t *testing.T) *harness.Pullgate {
	t.Helper()
	return harness.StartPullgate(t, rw.bin, rw.config, "TMPDIR="+t.TempDir())
}

// manifestURL and blobURL address repo on replica host (prefix routing).
func manifestURL(host, repo, ref string) string {
	return "http://" + host + "/v2/" + fullName(repo) + "/manifests/" + ref
}

func blobURL(host, repo string, d v1.Hash) string {
	return "http://" + host + "/v2/" + fullName(repo) + "/blobs/" + d.String()
}

// blobsOf reads the config and layer digests of repo:v1 from the registry itself.
func (rw *replicaWorld) blobsOf(t *testing.T, repo string) []v1.Hash {
	t.Helper()
	return harness.ImageBlobs(t, rw.reg.Image(t, repo+":v1"))
}

// upstreamBlobGETs counts the registry's GETs of blob d in repo (the set-up's copies read
// the blobs from src/<repo>, which are not counted).
func (rw *replicaWorld) upstreamBlobGETs(repo string, d v1.Hash) int {
	return rw.reg.CountRequests(http.MethodGet, "/v2/"+repo+"/blobs/"+d.String())
}

// testSpread: replica 0 serves the manifest; replicas 1 and 2, which never saw it, serve
// the blobs, each fetched upstream once; a real client pulls through the balancer.
func (rw *replicaWorld) testSpread(t *testing.T) {
	repo, want := "spread/app", rw.imgs["spread/app"]
	r := rw.replicas
	call(t, http.MethodGet, manifestURL(r[0].Host, repo, "v1")).served(t, "manifest on replica 0", want)
	blobs := rw.blobsOf(t, repo)
	for i, d := range blobs {
		host := r[1+i%2].Host
		call(t, http.MethodGet, blobURL(host, repo, d)).served(t, fmt.Sprintf("blob %d on replica %d", i, 1+i%2), d)
		if n := rw.upstreamBlobGETs(repo, d); n != 1 {
			t.Errorf("blob %s fetched upstream %d times, want 1", d, n)
		}
	}
	// skopeo through the round-robin balancer: every request goes to the next replica.
	harness.SkopeoPullOK(t, harness.SkopeoOptions{}, want, "--src-tls-verify=false", "docker://"+rw.lb.host+"/"+fullName(repo)+":v1")
	if used := rw.lb.backendsFor(fullName(repo)); len(used) != replicaCount {
		t.Errorf("skopeo's requests reached replicas %v, want all %d", used, replicaCount)
	}
	for _, d := range blobs {
		if n := rw.upstreamBlobGETs(repo, d); n != 1 {
			t.Errorf("after the pull through the balancer, blob %s was fetched upstream %d times, want 1", d, n)
		}
	}
}

// testIndex: replica 0 serves the signed index; replica 1, which never saw it, serves a
// child by digest (accepted through the kept index); replica 2, which saw neither, serves
// the child's blobs (through the child replica 1 kept and the index replica 0 kept). A
// skopeo pull of the index through the balancer succeeds.
func (rw *replicaWorld) testIndex(t *testing.T) {
	repo, want := "multi/app", rw.imgs["multi/app"]
	r := rw.replicas
	call(t, http.MethodGet, manifestURL(r[0].Host, repo, "v1")).served(t, "index on replica 0", want)
	idx := rw.reg.Index(t, repo+":v1")
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, child := range im.Manifests {
		call(t, http.MethodGet, manifestURL(r[1].Host, repo, child.Digest.String())).served(t, "child on replica 1", child.Digest)
		img, err := idx.Image(child.Digest)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range harness.ImageBlobs(t, img) {
			call(t, http.MethodGet, blobURL(r[2].Host, repo, b)).served(t, "child's blob on replica 2", b)
		}
	}
	harness.SkopeoPullOK(t, harness.SkopeoOptions{}, want, "--all", "--src-tls-verify=false", "docker://"+rw.lb.host+"/"+fullName(repo)+":v1")
}

// testRejected: an image the policy rejects (a reject scope; no signature) is 403 on
// every replica, by tag and digest, and so is each of its blobs asked for directly, and
// an accepted image's blob asked for through a rejected repository. Nothing of them is
// fetched upstream.
func (rw *replicaWorld) testRejected(t *testing.T) {
	for _, repo := range []string{"rejected/app", "unsigned/app"} {
		d := rw.imgs[repo]
		blobs := rw.blobsOf(t, repo)
		for i, r := range rw.replicas {
			what := fmt.Sprintf("%s on replica %d", repo, i)
			call(t, http.MethodGet, manifestURL(r.Host, repo, "v1")).denied(t, what+" by tag")
			call(t, http.MethodGet, manifestURL(r.Host, repo, d.String())).denied(t, what+" by digest")
			if a := call(t, http.MethodHead, manifestURL(r.Host, repo, d.String())); a.status != http.StatusForbidden {
				t.Errorf("%s: HEAD by digest %d, want 403", what, a.status)
			}
			for _, b := range blobs {
				call(t, http.MethodGet, blobURL(r.Host, repo, b)).denied(t, what+" blob "+b.String())
				if a := call(t, http.MethodHead, blobURL(r.Host, repo, b)); a.status != http.StatusForbidden {
					t.Errorf("%s: blob HEAD %s: %d, want 403", what, b, a.status)
				}
			}
		}
		for _, b := range blobs {
			if n := rw.upstreamBlobGETs(repo, b); n != 0 {
				t.Errorf("%s: blob %s of a rejected image fetched upstream %d times", repo, b, n)
			}
		}
	}
	// A kept, accepted blob asked for through another repository, one whose scope rejects.
	kept := rw.blobsOf(t, "spread/app")[1]
	for i, r := range rw.replicas {
		call(t, http.MethodGet, blobURL(r.Host, "rejected/app", kept)).denied(t, fmt.Sprintf("kept blob via rejected/app on replica %d", i))
	}
}

// testKeptShared: what replicas 1 and 2 kept is served by all three with no upstream blob
// or manifest GET; the tag replica 0 confirmed answers on the others within tagTTL.
func (rw *replicaWorld) testKeptShared(t *testing.T) {
	repo, want := "spread/app", rw.imgs["spread/app"]
	blobs := rw.blobsOf(t, repo)
	manifestGETs := rw.reg.CountRequests(http.MethodGet, "/manifests/")
	manifestHEADs := rw.reg.CountRequests(http.MethodHead, "/manifests/")
	for i, r := range rw.replicas {
		call(t, http.MethodGet, manifestURL(r.Host, repo, "v1")).served(t, fmt.Sprintf("by tag on replica %d", i), want)
		call(t, http.MethodGet, manifestURL(r.Host, repo, want.String())).served(t, fmt.Sprintf("by digest on replica %d", i), want)
		for _, d := range blobs {
			call(t, http.MethodGet, blobURL(r.Host, repo, d)).served(t, fmt.Sprintf("blob on replica %d", i), d)
		}
	}
	for _, d := range blobs {
		if n := rw.upstreamBlobGETs(repo, d); n != 1 {
			t.Errorf("blob %s fetched upstream %d times in all, want 1", d, n)
		}
	}
	if n := rw.reg.CountRequests(http.MethodGet, "/manifests/") - manifestGETs; n != 0 {
		t.Errorf("%d upstream manifest GETs for kept content", n)
	}
	if n := rw.reg.CountRequests(http.MethodHead, "/manifests/") - manifestHEADs; n != 0 {
		t.Errorf("%d upstream manifest HEADs for a tag confirmed within tagTTL", n)
	}
}

// testBurst: 30 clients pull one image for the first time at once, through the balancer
// (each request to the next replica). Every upstream blob answer is held until all 30
// clients' requests for that blob reached a replica, so every replica has it in flight at
// once: the worst case. Each blob must be fetched upstream at most once per replica; the
// figure is logged. Every client gets verified bytes.
func (rw *replicaWorld) testBurst(t *testing.T) {
	repo, want := "burst/app", rw.imgs["burst/app"]
	blobs := rw.blobsOf(t, repo)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for _, d := range blobs {
		rw.up.holdUntil(d, func(rctx context.Context) {
			rw.lb.waitCount(rctx, ctx, http.MethodGet, "/blobs/"+d.String(), burstClients)
		})
	}
	ref := harness.ParseRef(t, rw.lb.host+"/"+fullName(repo)+":v1")
	_, errs := atonce.Run(burstClients, func(<-chan struct{}) error {
		img, err := remote.Image(ref, remote.WithContext(ctx))
		if err != nil {
			return err
		}
		return readWhole(img, want)
	})
	for _, err := range errs {
		t.Error(err)
	}
	var counts []string
	for _, d := range blobs {
		n := rw.upstreamBlobGETs(repo, d)
		reached := len(rw.lb.backendsFor("/blobs/" + d.String()))
		counts = append(counts, fmt.Sprintf("%s:%d", d.Hex[:12], n))
		if n < 1 || n > reached {
			t.Errorf("blob %s fetched upstream %d times; its requests reached %d replicas (at most once per replica)", d, n, reached)
		}
	}
	t.Logf("REPLICAS-BURST: %d clients over %d replicas, upstream GETs per blob: %s", burstClients, replicaCount, strings.Join(counts, " "))
	// Whatever was committed, and however often, is the blob's exact bytes.
	rw.checkBucket(t)
}

// getDigest GETs url and checks that the body hashes to want.
func getDigest(ctx context.Context, url string, want v1.Hash) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	got, _, err := v1.SHA256(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if got != want {
		return fmt.Errorf("GET %s: body hashes to %s", url, got)
	}
	return nil
}

// readWhole reads an image's config and layers through go-containerregistry, which
// checks each digest.
func readWhole(img v1.Image, want v1.Hash) error {
	p, err := harness.ReadWhole(img)
	if err != nil {
		return err
	}
	if p.Manifest != want {
		return fmt.Errorf("pulled %s, want %s", p.Manifest, want)
	}
	return nil
}

// testKill: replica 1 keeps the manifest and the tag, starts streaming a layer whose
// upstream stalls after its first MiB (replica 1 holds the download lease), and is killed
// with SIGKILL while another client waits for the layer on replica 2. Nothing
// half-written is in the store, the first client's body did not end cleanly, replica 2
// takes the dead holder's lease over and both its waiting client and the first client's
// retry complete with one more upstream GET, and replica 0 answers the tag replica 1
// confirmed. A replacement replica joins after.
func (rw *replicaWorld) testKill(t *testing.T) {
	repo, want := "slow/app", rw.imgs["slow/app"]
	blobs := rw.blobsOf(t, repo)
	layer := blobs[1]
	victim := rw.replicas[1]
	call(t, http.MethodGet, manifestURL(victim.Host, repo, "v1")).served(t, "manifest on the victim", want)
	stalled := rw.up.stallOnce(layer, 1<<20)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, blobURL(victim.Host, repo, layer), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("blob on the victim: %s", resp.Status)
	}
	buf := make([]byte, 64<<10)
	got := 0
	for got == 0 {
		n, err := resp.Body.Read(buf)
		got += n
		if err != nil {
			t.Fatalf("reading the first bytes: %v", err)
		}
	}
	<-stalled // the upstream sent its first MiB and waits
	// Any later upstream GET of the layer waits until the store was inspected.
	inspected := make(chan struct{})
	rw.up.holdUntil(layer, func(ctx context.Context) {
		select {
		case <-inspected:
		case <-ctx.Done():
		}
	})
	// Another client asks replica 2 meanwhile: it waits on the victim's download lease
	// (or finds it stale, if it arrives after the kill) and must complete either way.
	waiting := make(chan error, 1)
	fetched := rw.upstreamBlobGETs(repo, layer)
	go func() { waiting <- getDigest(t.Context(), blobURL(rw.replicas[2].Host, repo, layer), layer) }()
	victim.Kill(t)
	rest, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("the body from the killed replica ended cleanly after %d bytes", got+len(rest))
	}
	rw.lb.remove(1)

	// Nothing of the layer is in the store, and everything there is whole.
	if kept := rw.checkBucket(t); kept[layer.String()] {
		t.Errorf("layer %s is in the store after its only download was killed", layer)
	}
	close(inspected)

	// The killed replica's download lease stops changing; replica 2 (which never saw the
	// manifest) takes it over and fetches for the waiting client, and for the first
	// client retrying there.
	if err := <-waiting; err != nil {
		t.Errorf("the client waiting on replica 2 while the lease holder was killed: %v", err)
	}
	call(t, http.MethodGet, blobURL(rw.replicas[2].Host, repo, layer)).served(t, "retry on replica 2", layer)
	if n := rw.upstreamBlobGETs(repo, layer) - fetched; n != 1 {
		t.Errorf("the retry fetched the layer upstream %d times, want 1", n)
	}
	if len(rw.replicas[2].LogEntries("content store: taking over a download whose holder stopped")) != 1 {
		t.Errorf("replica 2 did not log taking over the killed replica's download")
	}
	call(t, http.MethodGet, blobURL(rw.replicas[0].Host, repo, layer)).served(t, "then on replica 0", layer)
	heads := rw.reg.CountRequests(http.MethodHead, "/"+repo+"/manifests/")
	gets := rw.reg.CountRequests(http.MethodGet, "/"+repo+"/manifests/")
	call(t, http.MethodGet, manifestURL(rw.replicas[0].Host, repo, "v1")).served(t, "the victim's tag on replica 0", want)
	if rw.reg.CountRequests(http.MethodHead, "/"+repo+"/manifests/") != heads || rw.reg.CountRequests(http.MethodGet, "/"+repo+"/manifests/") != gets {
		t.Errorf("the tag the killed replica confirmed was asked upstream again")
	}
	if kept := rw.checkBucket(t); !kept[layer.String()] {
		t.Errorf("layer %s not kept after the retry", layer)
	}

	// A replacement joins on the same store and configuration.
	rw.replicas[1] = rw.startReplica(rw.top)
	rw.lb.replace(1, rw.replicas[1].Host)
	before := rw.upstreamBlobGETs(repo, layer)
	call(t, http.MethodGet, blobURL(rw.replicas[1].Host, repo, layer)).served(t, "on the replacement", layer)
	if rw.upstreamBlobGETs(repo, layer) != before {
		t.Errorf("the replacement fetched a kept layer upstream")
	}
}

// testKeptSignatures: with the lookaside failing and the upstream cut off, the
// replacement replica (which never served spread/app, so it has no verdict for it)
// decides the kept image with the signatures replica 0 kept in the store, serves it by
// digest and its blobs, and still refuses what a reject scope names.
func (rw *replicaWorld) testKeptSignatures(t *testing.T) {
	repo, want := "spread/app", rw.imgs["spread/app"]
	fresh := rw.replicas[1]
	blobs := rw.blobsOf(t, repo)
	rw.sig.Lookaside.SetMode(harness.LookasideError)
	rw.down.down.Store(true)
	defer func() {
		rw.sig.Lookaside.SetMode(harness.LookasideServe)
		rw.down.down.Store(false)
	}()
	call(t, http.MethodGet, manifestURL(fresh.Host, repo, want.String())).served(t, "by digest, sources down", want)
	for _, d := range blobs {
		call(t, http.MethodGet, blobURL(fresh.Host, repo, d)).served(t, "blob, sources down", d)
	}
	kept := 0
	for _, e := range fresh.LogEntries("decision") {
		if e["repository"] == repo && e["verdict"] == "accept" && strings.Contains(fmt.Sprint(e["reason"]), "kept: ") {
			kept++
		}
	}
	if kept == 0 {
		t.Errorf("no decision on the fresh replica was made with kept signatures:\n%s", fresh.Logs)
	}
	// A reject scope needs no signatures: 403 with everything down (contract item 10).
	call(t, http.MethodGet, manifestURL(fresh.Host, "rejected/app", "v1")).denied(t, "rejected, sources down")
}

// testReload: a stricter policy, loaded by SIGHUP on each replica, applies to everything
// in the shared store at once: a kept image is 403 on every replica, blobs included,
// while another kept image the new policy still accepts is served.
func (rw *replicaWorld) testReload(t *testing.T) {
	repo, want := "reload/app", rw.imgs["reload/app"]
	blobs := rw.blobsOf(t, repo)
	call(t, http.MethodGet, manifestURL(rw.replicas[0].Host, repo, "v1")).served(t, "before the reload", want)
	for i, d := range blobs {
		call(t, http.MethodGet, blobURL(rw.replicas[i%replicaCount].Host, repo, d)).served(t, "blob before the reload", d)
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(rw.policyJSON()), &p); err != nil {
		t.Fatal(err)
	}
	p["transports"].(map[string]any)["docker"].(map[string]any)[fullName(repo)] = []any{map[string]any{"type": "reject"}}
	b, _ := json.Marshal(p)
	testsupport.WriteFile(t, rw.policy, string(b))
	for _, r := range rw.replicas {
		r.Reload(t)
	}
	for i, r := range rw.replicas {
		what := fmt.Sprintf("replica %d after the reload", i)
		call(t, http.MethodGet, manifestURL(r.Host, repo, "v1")).denied(t, what+" by tag")
		call(t, http.MethodGet, manifestURL(r.Host, repo, want.String())).denied(t, what+" by digest")
		for _, d := range blobs {
			call(t, http.MethodGet, blobURL(r.Host, repo, d)).denied(t, what+" blob "+d.String())
		}
		call(t, http.MethodGet, manifestURL(r.Host, "spread/app", "v1")).served(t, what+": an image still accepted", rw.imgs["spread/app"])
	}
}

// checkBucket reads every content object of the shared store straight from the bucket
// and fails on one whose bytes do not hash to its digest (what a torn or interleaved
// commit would leave). It returns the digests kept.
func (rw *replicaWorld) checkBucket(t *testing.T) map[string]bool {
	t.Helper()
	ctx := t.Context()
	d, err := store.NewDriver(ctx, map[string]any{"s3": rw.params}, "")
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	err = d.Walk(ctx, "/docker/registry/v2/blobs", func(fi storagedriver.FileInfo) error {
		if fi.IsDir() || !strings.HasSuffix(fi.Path(), "/data") {
			return nil
		}
		hexd := filepath.Base(filepath.Dir(fi.Path()))
		r, err := d.Reader(ctx, fi.Path(), 0)
		if err != nil {
			return err
		}
		defer r.Close()
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != hexd {
			t.Errorf("store object %s (%d bytes) hashes to %s", fi.Path(), fi.Size(), got)
		}
		kept["sha256:"+hexd] = true
		return nil
	})
	if err != nil {
		t.Fatalf("walking the bucket: %v", err)
	}
	return kept
}

// upstreamControl makes the registry hold or stall chosen blob answers.
type upstreamControl struct {
	mu    sync.Mutex
	holds map[string]func(context.Context)
	stall map[string]*stallSpec
}

type stallSpec struct {
	after   int64
	reached chan struct{}
}

// holdUntil makes every GET of blob d wait for wait(request context) before it is served.
func (u *upstreamControl) holdUntil(d v1.Hash, wait func(context.Context)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.holds == nil {
		u.holds = map[string]func(context.Context){}
	}
	u.holds[d.String()] = wait
}

// stallOnce makes the next GET of blob d send after bytes and then wait until the client
// goes away; the channel is closed once those bytes were sent.
func (u *upstreamControl) stallOnce(d v1.Hash, after int64) <-chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stall == nil {
		u.stall = map[string]*stallSpec{}
	}
	s := &stallSpec{after: after, reached: make(chan struct{})}
	u.stall[d.String()] = s
	return s.reached
}

func (u *upstreamControl) middleware(next http.Handler) http.Handler {
	return harness.InterceptBlobGETs(next, func(w http.ResponseWriter, r *http.Request, d string) {
		u.mu.Lock()
		hold := u.holds[d]
		st := u.stall[d]
		delete(u.stall, d)
		u.mu.Unlock()
		if hold != nil {
			hold(r.Context())
		}
		if st != nil {
			w = &stallingWriter{ResponseWriter: w, left: st.after, spec: st, ctx: r.Context()}
		}
		next.ServeHTTP(w, r)
	})
}

// stallingWriter passes on the first bytes of a body, flushes, and then blocks until the
// request's context ends.
type stallingWriter struct {
	http.ResponseWriter
	left int64
	spec *stallSpec
	ctx  context.Context
	done bool
}

func (s *stallingWriter) Write(p []byte) (int, error) {
	if s.left > 0 {
		n := int64(len(p))
		if n > s.left {
			n = s.left
		}
		w, err := s.ResponseWriter.Write(p[:n])
		s.left -= int64(w)
		if err != nil || int64(len(p)) == n {
			return w, err
		}
		p = p[n:]
	}
	if !s.done {
		s.done = true
		if f, ok := s.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		close(s.spec.reached)
	}
	<-s.ctx.Done()
	return 0, s.ctx.Err()
}

// balancer is an HTTP load balancer on 127.0.0.1 that sends each request to the next
// replica, as an L7 balancer in round-robin mode does, and records where each went.
type balancer struct {
	host string

	mu       sync.Mutex
	backends []string // "" = removed
	next     atomic.Uint64
	log      []routed
	changed  chan struct{}
}

type routed struct {
	backend      int
	method, path string
}

func startBalancer(t *testing.T, replicas []*harness.Pullgate) *balancer {
	t.Helper()
	b := &balancer{changed: make(chan struct{})}
	for _, r := range replicas {
		b.backends = append(b.backends, r.Host)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			i, host := b.pick()
			pr.SetURL(&url.URL{Scheme: "http", Host: host})
			pr.Out.Host = host
			b.record(routed{backend: i, method: pr.In.Method, path: pr.In.URL.Path})
		},
		FlushInterval: -1,
		ErrorLog:      nil,
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	b.host = strings.TrimPrefix(srv.URL, "http://")
	return b
}

func (b *balancer) pick() (int, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		i := int(b.next.Add(1)-1) % len(b.backends)
		if b.backends[i] != "" {
			return i, b.backends[i]
		}
	}
}

func (b *balancer) record(r routed) {
	b.mu.Lock()
	b.log = append(b.log, r)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

func (b *balancer) remove(i int) {
	b.mu.Lock()
	b.backends[i] = ""
	b.mu.Unlock()
}

func (b *balancer) replace(i int, host string) {
	b.mu.Lock()
	b.backends[i] = host
	b.mu.Unlock()
}

// count counts the requests forwarded with method whose path contains part.
func (b *balancer) count(method, part string) (int, chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, r := range b.log {
		if r.method == method && strings.Contains(r.path, part) {
			n++
		}
	}
	return n, b.changed
}

// waitCount waits until n such requests were forwarded, or either context ends.
func (b *balancer) waitCount(ctx1, ctx2 context.Context, method, part string, n int) {
	for {
		got, ch := b.count(method, part)
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-ctx1.Done():
			return
		case <-ctx2.Done():
			return
		}
	}
}

// backendsFor lists the replicas that received a request whose path contains part.
func (b *balancer) backendsFor(part string) []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	seen := map[int]bool{}
	for _, r := range b.log {
		if strings.Contains(r.path, part) {
			seen[r.backend] = true
		}
	}
	var out []int
	for i := range seen {
		out = append(out, i)
	}
	sort.Ints(out)
	return out
}
