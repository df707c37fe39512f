package enforce

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/admission"
)

const (
	victim   = "192.0.2.1:50000"
	attacker = "192.0.2.66:50000"
)

// admitFrom asks g about m requested as repo:ref by client.
func admitFrom(t *testing.T, g *Gate, client, repo, ref string, m manifest) admission.Decision {
	t.Helper()
	d, err := g.AdmitManifest(context.Background(), &admission.ManifestRequest{
		Target:    admission.Target{Registry: testRegistry, Repository: repo, ClientAddr: client},
		Reference: ref, Digest: m.digest, MediaType: m.mediaType, Bytes: m.bytes,
	})
	if err != nil {
		t.Fatalf("%s %s:%s: %v", client, repo, ref, err)
	}
	return d
}

// TestGateParentsPerClient (issue 8.4): the parent-index memory is per client and holds
// only served indexes; a child is vouched for only by an index accepted by its own
// signatures, under the identity it was accepted for.
func TestGateParentsPerClient(t *testing.T) {
	t.Run("an attacker's :poison index does not change the victim's verdict", func(t *testing.T) {
		for _, pol := range []string{matchExactTrusted, matchRepositoryTrusted} {
			w := newWorld(t)
			a, b := image(t, "amd64"), image(t, "arm64")
			idx := index(t, a, b)
			if pol == matchExactTrusted {
				w.sign(w.trusted, testRepo, a.digest, tagIdentity) // the children are signed for :1
			} else {
				w.sign(w.trusted, testRepo, idx.digest, testRegistry+"/"+testRepo) // only the index
			}
			g := w.gate(w.policy(pol), nil)
			if d := admitFrom(t, g, victim, testRepo, "1", idx); !d.Allow {
				t.Fatalf("victim's index: %s", d.Reason)
			}
			poison := index(t, a, image(t, "evil"))
			admitFrom(t, g, attacker, testRepo, "poison", poison)
			admitFrom(t, g, attacker, testRepo, "poison", idx)
			if d := admitFrom(t, g, victim, testRepo, a.digest.String(), a); !d.Allow {
				t.Fatalf("%s: victim's child after the attacker's :poison: %s", pol, d.Reason)
			}
		}
	})
	t.Run("tag-scoped policy: one client's :dev index does not vouch for another client", func(t *testing.T) {
		w := newWorld(t)
		x, y := image(t, "amd64"), image(t, "arm64")
		idx := index(t, x, y)
		g := w.gate(w.policy(`{"default":[{"type":"reject"}],"transports":{"docker":{
			"registry.test/org/app:dev":[{"type":"insecureAcceptAnything"}],
			"registry.test/org/app":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"$TRUSTED"}]}}}`), nil)
		if d := admitFrom(t, g, attacker, testRepo, "dev", idx); !d.Allow {
			t.Fatalf(":dev index: %s", d.Reason)
		}
		if d := admitFrom(t, g, attacker, testRepo, x.digest.String(), x); !d.Allow {
			t.Fatalf("the :dev client's own child: %s", d.Reason)
		}
		d := admitFrom(t, g, victim, testRepo, x.digest.String(), x)
		if d.Allow || d.Detail.(Detail).Identity != testRegistry+"/"+testRepo+"@"+x.digest.String() {
			t.Fatalf("another client's fetch of X: allow=%v %+v", d.Allow, d.Detail)
		}
		// The same IP with another port is the same client.
		if d := admitFrom(t, g, "192.0.2.66:1", testRepo, x.digest.String(), x); !d.Allow {
			t.Fatalf("the :dev client from another port: %s", d.Reason)
		}
	})
	t.Run("an index refused is not remembered", func(t *testing.T) {
		w := newWorld(t)
		a := image(t, "amd64")
		idx := index(t, a)
		w.sign(w.trusted, testRepo, a.digest, testRegistry+"/"+testRepo+":2") // for :2 only
		g := w.gate(w.policy(matchExactTrusted), nil)
		admitFrom(t, g, victim, testRepo, "1", idx) // refused: nothing signed for :1
		// Judged under its own digest identity only, not the refused index's :1.
		d := admitFrom(t, g, victim, testRepo, a.digest.String(), a)
		if d.Allow || d.Detail.(Detail).Identity != testRegistry+"/"+testRepo+"@"+a.digest.String() {
			t.Fatalf("allow=%v %+v", d.Allow, d.Detail)
		}
	})
	t.Run("an index served for a child does not vouch for the others", func(t *testing.T) {
		w := newWorld(t)
		a, b := image(t, "amd64"), image(t, "arm64")
		idx := index(t, a, b)
		w.sign(w.trusted, testRepo, a.digest, tagIdentity)
		g := w.gate(w.policy(signedByTrusted), nil)
		if d := admitFrom(t, g, victim, testRepo, "1", idx); !d.Allow {
			t.Fatal(d.Reason)
		}
		if d := admitFrom(t, g, victim, testRepo, b.digest.String(), b); d.Allow {
			t.Fatal("the unsigned child of an index served for its signed sibling was served")
		}
	})
}

// TestGateParentMemoryBounds: a child remembers at most maxParentsPerChild indexes per
// client, the newest; a client's memory holds at most maxParentChildrenPerClient children.
func TestGateParentMemoryBounds(t *testing.T) {
	ps, err := newParents()
	if err != nil {
		t.Fatal(err)
	}
	scope := Key{"1", testRegistry, testRepo, ""}
	child := digest.FromString("child")
	for i := range maxParentsPerChild + 3 {
		id, _ := requestIdentity(testRegistry, testRepo, fmt.Sprintf("t%d", i))
		ps.remember("c", scope, []digest.Digest{child}, parent{index: digest.FromString(fmt.Sprint(i)), identity: id}, admissionTTL)
	}
	got := ps.of("c", Key{"1", testRegistry, testRepo, child})
	if len(got) != maxParentsPerChild || !strings.HasSuffix(got[0].identity.String(), fmt.Sprintf(":t%d", maxParentsPerChild+2)) {
		t.Fatalf("%d parents, newest %v", len(got), got[0].identity)
	}
	if other := ps.of("d", Key{"1", testRegistry, testRepo, child}); len(other) != 0 {
		t.Fatal("another client sees the parents")
	}
	var many []digest.Digest
	for i := range maxParentChildrenPerClient + 10 {
		many = append(many, digest.FromString(fmt.Sprint("c", i)))
	}
	id, _ := requestIdentity(testRegistry, testRepo, "big")
	ps.remember("c", scope, many, parent{index: digest.FromString("big"), identity: id}, admissionTTL)
	mem, _ := ps.clients.Peek("c")
	if mem.Len() != maxParentChildrenPerClient {
		t.Fatalf("%d children remembered, want %d", mem.Len(), maxParentChildrenPerClient)
	}
	for i := range maxParentClients + 5 {
		ps.remember(fmt.Sprint("client", i), scope, []digest.Digest{child}, parent{index: child, identity: id}, admissionTTL)
	}
	if ps.clients.Len() != maxParentClients {
		t.Fatalf("%d clients remembered", ps.clients.Len())
	}
}

// bigImage is an image manifest listing n layers.
func bigImage(t *testing.T, name string, n int) manifest {
	t.Helper()
	cfg := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString(name + " config"), Size: 100}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg}
	m.SchemaVersion = 2
	for i := range n {
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString(fmt.Sprint(name, i)), Size: 10})
	}
	out := newManifest(t, ocispec.MediaTypeImageManifest, m)
	out.blobs = []digest.Digest{cfg.Digest}
	for _, l := range m.Layers {
		out.blobs = append(out.blobs, l.Digest)
	}
	return out
}

// TestGateAdmissionFlood (issue 8.5): admissions are derived from accepted manifests. A
// flood of accepted manifests listing many blobs in another repository evicts a pulling
// client's layers no faster than it evicts the manifest they belong to, and each of the
// client's blob requests refreshes that manifest.
func TestGateAdmissionFlood(t *testing.T) {
	const size = 8
	w := newWorld(t)
	victimImg := image(t, "victim")
	w.sign(w.trusted, testRepo, victimImg.digest, tagIdentity)
	g := w.gate(w.policy(`{"default":[{"type":"reject"}],"transports":{"docker":{
		"registry.test/flood":[{"type":"insecureAcceptAnything"}],
		"registry.test":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"$TRUSTED"}]}}}`), func(o *Options) { o.CacheSize = size })
	mustAdmit(t, g, testRepo, "1", victimImg, true)
	flood := func(round int) {
		for i := range size - 1 {
			mustAdmit(t, g, "flood/app", "x", bigImage(t, fmt.Sprint("flood", round, i), 1000), true)
		}
	}
	for round := range 5 {
		flood(round)
		// The victim's pull goes on: each blob request keeps its manifest.
		for _, b := range victimImg.blobs {
			if !blobAllowed(t, g, testRegistry, testRepo, b) {
				t.Fatalf("round %d: the victim's blob %s was evicted by another repository's flood", round, b)
			}
		}
	}
	if manifests, blobs := g.admitted.(*admissions).size(); manifests > size || blobs > max(size*admissionsPerVerdict, minAdmittedBlobs) {
		t.Fatalf("admission memory holds %d manifests and %d blobs", manifests, blobs)
	}
	// Beyond the bound of entries, the oldest manifest goes, and its blobs with it.
	for i := range size {
		mustAdmit(t, g, "flood/app", "x", image(t, fmt.Sprint("last", i)), true)
	}
	if blobAllowed(t, g, testRegistry, testRepo, victimImg.blobs[1]) {
		t.Fatal("a blob outlived its manifest's admission")
	}
	if n := len(g.admitted.(*admissions).refs); n > size*2 {
		t.Fatalf("reverse index holds %d blobs for %d manifests of 2 blobs", n, size)
	}
}

// TestGateManifestBlobBound: a manifest listing more than maxManifestBlobs blobs is refused
// before any policy work, whatever the policy.
func TestGateManifestBlobBound(t *testing.T) {
	w := newWorld(t)
	p := w.policy(`{"default":[{"type":"insecureAcceptAnything"}]}`)
	g := w.gate(p, nil)
	mustAdmit(t, g, testRepo, "ok", bigImage(t, "ok", maxManifestBlobs-1), true)
	d := mustAdmit(t, g, testRepo, "big", bigImage(t, "big", maxManifestBlobs), false)
	if !strings.Contains(d.Reason, fmt.Sprintf("lists %d blobs", maxManifestBlobs+1)) || p.calls.Load() != 1 {
		t.Fatalf("reason %q, %d evaluations", d.Reason, p.calls.Load())
	}
}

// blockingPolicy holds its first evaluation until released.
type blockingPolicy struct {
	*countingPolicy
	entered, release chan struct{}
}

func (p *blockingPolicy) Evaluate(ctx context.Context, img policy.Image, src policy.SignatureSource) (policy.Verdict, error) {
	if p.calls.Load() == 0 {
		close(p.entered)
		<-p.release
	}
	return p.countingPolicy.Evaluate(ctx, img, src)
}

// TestGateReloadDuringEvaluation (issue 15.6): a decision made under a policy that was
// replaced while it was being made is made again under the new one.
func TestGateReloadDuringEvaluation(t *testing.T) {
	w := newWorld(t)
	img := image(t, "app")
	old := &blockingPolicy{countingPolicy: w.policy(`{"default":[{"type":"insecureAcceptAnything"}]}`),
		entered: make(chan struct{}), release: make(chan struct{})}
	g := w.gate(old, nil)
	type result struct {
		d   admission.Decision
		err error
	}
	done := make(chan result, 1)
	go func() {
		d, err := admit(t, g, testRepo, "1", img)
		done <- result{d, err}
	}()
	<-old.entered
	newer := w.policy(`{"default":[{"type":"reject"}]}`)
	g.Reload(newer, w.newFinder())
	close(old.release)
	r := <-done
	if r.err != nil || r.d.Allow || !strings.Contains(r.d.Reason, "requirement [0] reject") || newer.calls.Load() != 1 {
		t.Fatalf("after a reload during the evaluation: %+v, %v; new policy evaluated %d times", r.d, r.err, newer.calls.Load())
	}
	if blobAllowed(t, g, testRegistry, testRepo, img.blobs[1]) {
		t.Fatal("a layer admitted under the old policy is served")
	}
}

// reloadingPolicy reloads the gate during each of its evaluations.
type reloadingPolicy struct {
	*countingPolicy
	g *Gate
	w *world
}

func (p *reloadingPolicy) Evaluate(ctx context.Context, img policy.Image, src policy.SignatureSource) (policy.Verdict, error) {
	p.g.Reload(p, p.w.newFinder())
	return p.countingPolicy.Evaluate(ctx, img, src)
}

// TestGateReloadStorm: a manifest whose decisions are overtaken by reloads every time is
// answered 503 after maxDecideAttempts decisions, never served.
func TestGateReloadStorm(t *testing.T) {
	w := newWorld(t)
	p := &reloadingPolicy{countingPolicy: w.policy(`{"default":[{"type":"insecureAcceptAnything"}]}`), w: w}
	g := w.gate(p, nil)
	p.g = g
	_, err := admit(t, g, testRepo, "1", image(t, "app"))
	pe := proxy.GateAnswer(err)
	if !errors.Is(err, ErrPolicyReloaded) || err == nil || pe.Code != errcode.ErrorCodeUnavailable || pe.HTTPStatus() != http.StatusServiceUnavailable {
		t.Fatalf("err = %v, want 503 wrapping ErrPolicyReloaded", err)
	}
	if n := p.calls.Load(); n != maxDecideAttempts {
		t.Fatalf("%d decisions, want %d", n, maxDecideAttempts)
	}
}

// TestGateNamesAcceptingRequirement (issue 8.10): an accepted decision names the scope and
// requirements that accepted, in its detail and its decision log line, also when a parent
// index or a child vouched.
func TestGateNamesAcceptingRequirement(t *testing.T) {
	w := newWorld(t)
	a, b := image(t, "amd64"), image(t, "arm64")
	idx := index(t, a, b)
	w.sign(w.trusted, testRepo, idx.digest, testRegistry+"/"+testRepo)
	w.sign(w.trusted, testRepo, b.digest, testRegistry+"/"+testRepo)
	g := w.gate(w.policy(matchRepositoryTrusted), nil)
	for _, step := range []struct {
		ref    string
		m      manifest
		reason string
	}{
		{"1", idx, "signed by key"},
		{a.digest.String(), a, "listed by index"},
		{b.digest.String(), b, "signed by key"},
	} {
		d := mustAdmit(t, g, testRepo, step.ref, step.m, true)
		detail := d.Detail.(Detail)
		rec := lastDecision(t, w.logs)
		if detail.Scope != scopeName || detail.Requirement != "[0] signedBy" || rec["requirement"] != "[0] signedBy" ||
			rec["scope"] != scopeName || !strings.Contains(detail.Reason, step.reason) {
			t.Fatalf("%s: detail %+v, logged %v", step.ref, detail, rec)
		}
	}
	// An index served for its accepted child names the child's requirement.
	w2 := newWorld(t)
	w2.sign(w2.trusted, testRepo, a.digest, tagIdentity)
	g2 := w2.gate(w2.policy(signedByTrusted), nil)
	d := mustAdmit(t, g2, testRepo, "1", idx, true)
	if detail := d.Detail.(Detail); detail.Requirement != "[0] signedBy" || detail.Scope != scopeName {
		t.Fatalf("index served for a child: %+v", detail)
	}
}
