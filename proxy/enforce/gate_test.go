package enforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy/sigsource"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/content"
)

const (
	tagIdentity = testRegistry + "/" + testRepo + ":1"
	scopeName   = `transports.docker["registry.test"]`
)

// TestGateVerdicts: a manifest is served when its signatures satisfy the policy, refused
// when they do not, and undecided (an error, nothing cached) when they cannot be read.
func TestGateVerdicts(t *testing.T) {
	tests := []struct {
		name string
		ref  string // "" is the tag "1"; "digest" is the manifest's digest
		// sign stores signatures for img.
		sign   func(w *world, img manifest)
		policy string
		allow  bool
		reason string
	}{
		{name: "signed by the trusted key", allow: true, reason: "",
			sign: func(w *world, img manifest) { w.sign(w.trusted, testRepo, img.digest, tagIdentity) }},
		{name: "signed by another key", reason: "not trusted",
			sign: func(w *world, img manifest) { w.sign(w.other, testRepo, img.digest, tagIdentity) }},
		{name: "unsigned", reason: "no signature exists", sign: func(*world, manifest) {}},
		{name: "signed for another tag", reason: "not accepted",
			sign: func(w *world, img manifest) { w.sign(w.trusted, testRepo, img.digest, testRegistry+"/"+testRepo+":2") }},
		{name: "signed for another digest", reason: "does not match",
			sign: func(w *world, img manifest) {
				w.lookaside.add(testRepo, img.digest, pgptest.SimpleSignature(w.t, w.trusted, digest.FromString("x").String(), tagIdentity))
			}},
		{name: "pulled by digest, signed with the tag", ref: "digest", allow: true,
			sign: func(w *world, img manifest) { w.sign(w.trusted, testRepo, img.digest, tagIdentity) }},
		{name: "a bad signature, then a good one", allow: true,
			sign: func(w *world, img manifest) {
				w.sign(w.other, testRepo, img.digest, tagIdentity)
				w.sign(w.trusted, testRepo, img.digest, tagIdentity)
			}},
		{name: "insecureAcceptAnything needs no signature", allow: true, sign: func(*world, manifest) {},
			policy: `{"default":[{"type":"insecureAcceptAnything"}]}`},
		{name: "reject", reason: "requirement [0] reject rejected it", sign: func(w *world, img manifest) { w.sign(w.trusted, testRepo, img.digest, tagIdentity) },
			policy: `{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"registry.test/org":[{"type":"reject"}]}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			img := image(t, "app")
			tt.sign(w, img)
			text := signedByTrusted
			if tt.policy != "" {
				text = tt.policy
			}
			g := w.gate(w.policy(text), nil)
			ref := "1"
			if tt.ref == "digest" {
				ref = img.digest.String()
			}
			d := mustAdmit(t, g, testRepo, ref, img, tt.allow)
			if !strings.Contains(d.Reason, tt.reason) {
				t.Fatalf("reason %q, want it to contain %q", d.Reason, tt.reason)
			}
			detail := d.Detail.(Detail)
			wantVerdict := map[bool]string{true: "accept", false: "deny"}[tt.allow]
			if detail.Verdict != wantVerdict || detail.Digest != img.digest.String() ||
				detail.Identity != testRegistry+"/"+testRepo+map[bool]string{true: "@", false: ":"}[tt.ref == "digest"]+ref {
				t.Fatalf("detail %+v", detail)
			}
		})
	}
}

// TestGateIndeterminate: signatures that cannot be read make an error that wraps the
// cause, is logged with verdict=error, and is never cached: the next request evaluates
// afresh and, the lookaside having recovered, is accepted.
func TestGateIndeterminate(t *testing.T) {
	w, img := signedApp(t)
	w.lookaside.fail(testRepo, img.digest, 1, 1)
	p := w.policy(signedByTrusted)
	g := w.gate(p, nil)

	_, err := admit(t, g, testRepo, "1", img)
	var ie *IndeterminateError
	if !errors.As(err, &ie) || ie.Identity != tagIdentity || ie.Digest != img.digest {
		t.Fatalf("err = %v, want an *IndeterminateError for %s", err, tagIdentity)
	}
	if !errors.Is(err, sigsource.ErrLookasideFetch) || !errors.Is(err, policy.ErrIndeterminate) {
		t.Fatalf("err = %v does not wrap its cause", err)
	}
	rec := lastDecision(t, w.logs)
	if rec["verdict"] != "error" || rec["level"] != "WARN" || !strings.Contains(rec["reason"].(string), "lookaside") {
		t.Fatalf("logged %v", rec)
	}

	mustAdmit(t, g, testRepo, "1", img, true)
	if n := p.calls.Load(); n != 2 {
		t.Fatalf("%d evaluations, want 2 (errors are not cached)", n)
	}
	if rec := lastDecision(t, w.logs); rec["cache"] != "miss" {
		t.Fatalf("logged %v after an error, want cache=miss", rec)
	}
}

// TestGateVerdictCache: verdicts are reused for their TTL, accepted and rejected ones
// each with their own; the key holds the identity as well as the digest.
func TestGateVerdictCache(t *testing.T) {
	tests := []struct {
		name      string
		signed    bool
		acceptTTL time.Duration
		denyTTL   time.Duration
		wantCalls int32
		wantCache string // of the second request
	}{
		{"accepted, reused", true, time.Hour, time.Nanosecond, 1, "hit"},
		{"accepted, expired", true, time.Nanosecond, time.Hour, 2, "miss"},
		{"denied, reused", false, time.Nanosecond, time.Hour, 1, "hit"},
		{"denied, expired", false, time.Hour, time.Nanosecond, 2, "miss"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			img := image(t, "app")
			if tt.signed {
				w.sign(w.trusted, testRepo, img.digest, tagIdentity)
			}
			p := w.policy(signedByTrusted)
			g := w.gate(p, func(o *Options) { o.AcceptTTL, o.DenyTTL = tt.acceptTTL, tt.denyTTL })
			mustAdmit(t, g, testRepo, "1", img, tt.signed)
			if rec := lastDecision(t, w.logs); rec["cache"] != "miss" {
				t.Fatalf("first request logged cache=%v", rec["cache"])
			}
			second := mustAdmit(t, g, testRepo, "1", img, tt.signed)
			if rec := lastDecision(t, w.logs); rec["cache"] != tt.wantCache {
				t.Fatalf("second request logged cache=%v, want %s", rec["cache"], tt.wantCache)
			}
			if n := p.calls.Load(); n != tt.wantCalls {
				t.Fatalf("%d evaluations, want %d", n, tt.wantCalls)
			}
			if d := second.Detail.(Detail); d.Verdict != map[bool]string{true: "accept", false: "deny"}[tt.signed] {
				t.Fatalf("cached detail %+v", d)
			}
		})
	}

	t.Run("another identity is another verdict", func(t *testing.T) {
		w, img := signedApp(t)
		p := w.policy(signedByTrusted)
		g := w.gate(p, nil)
		mustAdmit(t, g, testRepo, "1", img, true)
		// The same bytes under tag 2: signed for tag 1 only.
		mustAdmit(t, g, testRepo, "2", img, false)
		if n := p.calls.Load(); n != 2 {
			t.Fatalf("%d evaluations, want 2", n)
		}
	})
}

// TestGateConcurrentEvaluation: identical concurrent requests share one evaluation.
func TestGateConcurrentEvaluation(t *testing.T) {
	w, img := signedApp(t)
	p := w.policy(signedByTrusted)
	p.hold = make(chan struct{})
	g := w.gate(p, nil)

	const callers = 8
	var wg sync.WaitGroup
	decisions := make([]admission.Decision, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			decisions[i], errs[i] = admit(t, g, testRepo, "1", img)
		}()
	}
	testsupport.WaitForCallers(t, "cache.(*Group[...]).Do(", callers)
	close(p.hold)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || !decisions[i].Allow {
			t.Fatalf("caller %d: %+v, %v", i, decisions[i], errs[i])
		}
	}
	if n := p.calls.Load(); n != 1 {
		t.Fatalf("%d evaluations for %d concurrent requests, want 1", n, callers)
	}
	// The decision log tells the one evaluation from the requests that shared it.
	states := map[any]int{}
	for _, d := range loggedDecisions(t, w.logs) {
		states[d["cache"]]++
	}
	if states["miss"] != 1 || states["shared"] != callers-1 {
		t.Fatalf("cache states in the decision log: %v, want 1 miss and %d shared", states, callers-1)
	}
}

// TestGateReload: a reload puts the new policy in force at once: the generation is
// bumped, verdicts are forgotten, and blobs admitted under the old policy are refused
// until their manifest is admitted again.
func TestGateReload(t *testing.T) {
	w, img := signedApp(t)
	old := w.policy(signedByTrusted)
	g := w.gate(old, nil)
	if g.Generation() != 1 {
		t.Fatalf("generation %d", g.Generation())
	}
	mustAdmit(t, g, testRepo, "1", img, true)
	if !blobAllowed(t, g, testRegistry, testRepo, img.blobs[1]) {
		t.Fatal("layer of an accepted image refused")
	}

	same := w.policy(signedByTrusted)
	g.Reload(same, w.newFinder())
	if g.Generation() != 2 {
		t.Fatalf("generation %d after reload", g.Generation())
	}
	if blobAllowed(t, g, testRegistry, testRepo, img.blobs[1]) {
		t.Fatal("a blob admitted under the old policy is still served after the reload")
	}
	mustAdmit(t, g, testRepo, "1", img, true)
	if rec := lastDecision(t, w.logs); rec["cache"] != "miss" || same.calls.Load() != 1 || old.calls.Load() != 1 {
		t.Fatalf("after reload: cache=%v, new policy %d evaluations, old %d", rec["cache"], same.calls.Load(), old.calls.Load())
	}
	if !blobAllowed(t, g, testRegistry, testRepo, img.blobs[1]) {
		t.Fatal("layer refused after its manifest was admitted again")
	}

	g.Reload(w.policy(`{"default":[{"type":"reject"}]}`), w.newFinder())
	mustAdmit(t, g, testRepo, "1", img, false)
	if blobAllowed(t, g, testRegistry, testRepo, img.blobs[0]) {
		t.Fatal("config served under a policy that rejects the image")
	}
}

// TestGateBlobs: a blob is served only when an accepted manifest of the same registry
// and repository referenced it.
func TestGateBlobs(t *testing.T) {
	w := newWorld(t)
	accepted, denied := image(t, "accepted"), image(t, "denied")
	w.sign(w.trusted, testRepo, accepted.digest, tagIdentity)
	g := w.gate(w.policy(signedByTrusted), nil)

	if blobAllowed(t, g, testRegistry, testRepo, accepted.blobs[0]) {
		t.Fatal("blob served before any manifest was admitted")
	}
	mustAdmit(t, g, testRepo, "1", accepted, true)
	mustAdmit(t, g, testRepo, "1", denied, false)
	tests := []struct {
		name           string
		registry, repo string
		blob           digest.Digest
		allow          bool
	}{
		{"config", testRegistry, testRepo, accepted.blobs[0], true},
		{"layer", testRegistry, testRepo, accepted.blobs[1], true},
		{"same layer, another repository", testRegistry, "org/other", accepted.blobs[1], false},
		{"same layer, parent namespace", testRegistry, "org", accepted.blobs[1], false},
		{"same layer, another registry", "other.test", testRepo, accepted.blobs[1], false},
		{"the manifest's own digest", testRegistry, testRepo, accepted.digest, false},
		{"a layer of a denied image", testRegistry, testRepo, denied.blobs[1], false},
		{"an unknown blob", testRegistry, testRepo, digest.FromString("nothing"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := g.AdmitBlob(context.Background(), &admission.BlobRequest{
				Target: admission.Target{Registry: tt.registry, Repository: tt.repo, ClientAddr: testClient}, Digest: tt.blob, Head: true})
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tt.allow {
				t.Fatalf("allow = %v, want %v", d.Allow, tt.allow)
			}
			if tt.allow {
				return
			}
			detail := d.Detail.(Detail)
			if !strings.Contains(d.Reason, tt.blob.String()) || !strings.Contains(d.Reason, tt.registry+"/"+tt.repo) ||
				detail.Identity != tt.registry+"/"+tt.repo || detail.Digest != tt.blob.String() || detail.Verdict != "deny" || detail.Reason != d.Reason {
				t.Fatalf("denial %q, detail %+v", d.Reason, detail)
			}
			rec := lastDecision(t, w.logs)
			if rec["kind"] != "blob" || rec["verdict"] != "deny" || rec["digest"] != tt.blob.String() ||
				rec["upstream"] != tt.registry || rec["repository"] != tt.repo || rec["client"] != testClient {
				t.Fatalf("logged %v", rec)
			}
		})
	}
}

// TestGateUnrecognisedManifest: what cannot be classified is not served and not
// evaluated.
func TestGateUnrecognisedManifest(t *testing.T) {
	for _, m := range []manifest{
		{mediaType: "application/vnd.example.thing+json", bytes: []byte(`{"schemaVersion":2}`)},
		{mediaType: content.MediaTypeOCIManifest, bytes: []byte(`<html>`)},
		{mediaType: content.MediaTypeOCIManifest, bytes: []byte(`{"schemaVersion":2,"layers":[]}`)},
	} {
		m.digest = digest.FromBytes(m.bytes)
		w := newWorld(t)
		p := w.policy(`{"default":[{"type":"insecureAcceptAnything"}]}`)
		g := w.gate(p, nil)
		d := mustAdmit(t, g, testRepo, "1", m, false)
		if !strings.Contains(d.Reason, "unrecognised manifest") || p.calls.Load() != 0 {
			t.Fatalf("%s: reason %q, %d evaluations", m.bytes, d.Reason, p.calls.Load())
		}
		if detail := d.Detail.(Detail); detail.Verdict != "deny" || detail.Identity != tagIdentity {
			t.Fatalf("detail %+v", detail)
		}
	}
}

// TestGateDenial: the DENIED message names the identity, the digest, the scope and
// requirement that failed and why; the detail carries the same fields apart.
func TestGateDenial(t *testing.T) {
	w := newWorld(t)
	img := image(t, "app")
	w.sign(w.other, testRepo, img.digest, tagIdentity)
	g := w.gate(w.policy(signedByTrusted), nil)
	d := mustAdmit(t, g, testRepo, "1", img, false)
	detail, ok := d.Detail.(Detail)
	if !ok {
		t.Fatalf("detail is %T", d.Detail)
	}
	if detail.Identity != tagIdentity || detail.Digest != img.digest.String() || detail.Verdict != "deny" ||
		detail.Scope != scopeName || detail.Requirement != "[0] signedBy" || !strings.Contains(detail.Reason, "signature 1") {
		t.Fatalf("detail %+v", detail)
	}
	want := tagIdentity + " (" + img.digest.String() + `) is not trusted: policy ` + scopeName + " requirement [0] signedBy rejected it: " + detail.Reason
	if d.Reason != want {
		t.Fatalf("message\n%q\nwant\n%q", d.Reason, want)
	}
	b := testsupport.JSON(t, d.Detail)
	var fields map[string]string
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"identity", "digest", "verdict", "scope", "requirement", "reason"} {
		if fields[k] == "" {
			t.Fatalf("detail JSON %s lacks %q", b, k)
		}
	}
}

// TestGateDecisionLog: one structured line per manifest decision, with every field.
func TestGateDecisionLog(t *testing.T) {
	w, img := signedApp(t)
	unsigned := image(t, "unsigned")
	g := w.gate(w.policy(signedByTrusted), nil)

	check := func(rec map[string]any, want map[string]string) {
		t.Helper()
		for k, v := range want {
			if got, _ := rec[k].(string); got != v {
				t.Fatalf("%s = %v, want %q in %v", k, rec[k], v, rec)
			}
		}
		if _, ok := rec["duration"]; !ok {
			t.Fatalf("no duration in %v", rec)
		}
	}
	mustAdmit(t, g, testRepo, "1", img, true)
	recs := loggedDecisions(t, w.logs)
	if len(recs) != 1 {
		t.Fatalf("%d decision lines for one request", len(recs))
	}
	check(recs[0], map[string]string{"level": "INFO", "kind": "manifest", "client": testClient, "upstream": testRegistry,
		"repository": testRepo, "reference": "1", "digest": img.digest.String(), "identity": tagIdentity, "verdict": "accept",
		"scope": scopeName, "requirement": "[0] signedBy", "cache": "miss"})
	if !strings.Contains(recs[0]["reason"].(string), "signature") {
		t.Fatalf("accept reason %v", recs[0]["reason"])
	}
	mustAdmit(t, g, testRepo, "1", img, true)
	check(lastDecision(t, w.logs), map[string]string{"verdict": "accept", "cache": "hit"})

	mustAdmit(t, g, testRepo, unsigned.digest.String(), unsigned, false)
	rec := lastDecision(t, w.logs)
	check(rec, map[string]string{"verdict": "deny", "reference": unsigned.digest.String(),
		"identity": testRegistry + "/" + testRepo + "@" + unsigned.digest.String(), "scope": scopeName,
		"requirement": "[0] signedBy", "cache": "miss"})
	if !strings.Contains(rec["reason"].(string), "no signature exists") {
		t.Fatalf("deny reason %v", rec["reason"])
	}
}

// TestGateManifestNeverServedAsBlob: a manifest digest is refused on /blobs/ even when an
// artifact lists it as one of its layers (a forged "signature" artifact pushed next to an
// unsigned image must not open containerd's /blobs/<manifest> fallback). The forged .sig
// itself is an image now (its subject is not accepted): refused.
func TestGateManifestNeverServedAsBlob(t *testing.T) {
	w := newWorld(t)
	unsigned := image(t, "unsigned")
	forged := newManifest(t, content.MediaTypeOCIManifest, map[string]any{"schemaVersion": 2, "mediaType": content.MediaTypeOCIManifest,
		"config": map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest.FromString("{}").String(), "size": 2},
		"layers": []any{map[string]any{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
			"digest": unsigned.digest.String(), "size": len(unsigned.bytes)}}})
	g := w.gate(w.policy(signedByTrusted), nil)
	mustAdmit(t, g, testRepo, unsigned.digest.String(), unsigned, false)
	mustAdmit(t, g, testRepo, "sha256-"+unsigned.digest.Encoded()+".sig", forged, false)
	if blobAllowed(t, g, testRegistry, testRepo, unsigned.digest) {
		t.Fatal("a refused manifest was admitted as a blob through a forged artifact")
	}
	last := lastDecision(t, w.logs)
	if last["kind"] != "blob" || !strings.Contains(last["reason"].(string), "served only as a manifest") {
		t.Fatalf("decision %v", last)
	}
}

// TestGateBoundsChildEvaluations: an unaccepted index with very many children is not
// turned into as many signature lookups; the ones beyond the bound are left to be gated
// when fetched.
func TestGateBoundsChildEvaluations(t *testing.T) {
	w := newWorld(t)
	var children []manifest
	for i := range maxChildrenEvaluated + 3 {
		children = append(children, image(t, fmt.Sprintf("child %d", i)))
	}
	idx := index(t, children...)
	p := w.policy(signedByTrusted)
	g := w.gate(p, nil)
	d := mustAdmit(t, g, testRepo, "1", idx, false)
	if n := p.calls.Load(); n != maxChildrenEvaluated+1 {
		t.Fatalf("%d evaluations, want the index and %d children", n, maxChildrenEvaluated)
	}
	if !strings.Contains(d.Reason, "the other 3 children were not evaluated") {
		t.Fatalf("reason %q", d.Reason)
	}
}
