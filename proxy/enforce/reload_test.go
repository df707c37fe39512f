package enforce

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pullgate/pullgate/cache"
	"github.com/pullgate/pullgate/policy"
)

// loadPolicy writes text (with $TRUSTED the trusted key's file) as the world's policy.json
// and loads it as serve does, so that it has an ID.
func (w *world) loadPolicy(text string) *countingPolicy {
	w.t.Helper()
	path := w.write("policy.json", []byte(strings.ReplaceAll(text, "$TRUSTED", filepath.Join(w.dir, "trusted.gpg"))))
	p, err := policy.LoadFile(path)
	if err != nil {
		w.t.Fatal(err)
	}
	return &countingPolicy{Policy: p}
}

// TestGateReloadSameFiles: a reload to the same policy, key and registries.d files keeps
// the verdicts and admissions made before it (the policy key is a digest of the files).
func TestGateReloadSameFiles(t *testing.T) {
	w, img := signedApp(t)
	old := w.loadPolicy(signedByTrusted)
	g := w.gate(old, nil)
	mustAdmit(t, g, testRepo, "1", img, true)
	key := g.PolicyKey()

	same := w.loadPolicy(signedByTrusted)
	g.Reload(same, w.newFinder())
	if g.Generation() != 2 || g.PolicyKey() != key {
		t.Fatalf("generation %d, policy key %s after a reload to the same files, was %s", g.Generation(), g.PolicyKey(), key)
	}
	if !blobAllowed(t, g, testRegistry, testRepo, img.blobs[1]) {
		t.Fatal("a layer admitted before a reload to the same files is refused")
	}
	mustAdmit(t, g, testRepo, "1", img, true)
	if rec := lastDecision(t, w.logs); rec["cache"] != "hit" || same.calls.Load() != 0 || old.calls.Load() != 1 {
		t.Fatalf("after a reload to the same files: cache=%v, new policy %d evaluations, old %d", rec["cache"], same.calls.Load(), old.calls.Load())
	}
}

// TestGateReloadChangedFiles: after a reload to a changed policy file, key file or
// registries.d, no verdict or admission made under the old files is used, even when the
// new policy decides alike.
func TestGateReloadChangedFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(w *world)
		accept bool // whether the image is accepted under the new files
	}{
		{"policy file", func(w *world) { w.loadPolicy(signedByTrusted + "\n") }, true},
		{"key file", func(w *world) { w.write("trusted.gpg", w.other.Public(t)) }, false},
		{"registries.d", func(w *world) {
			w.write("registries.d/other.yaml", []byte("docker:\n  other.test:\n    lookaside: http://127.0.0.1:1/x\n"))
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, img := signedApp(t)
			old := w.loadPolicy(signedByTrusted)
			g := w.gate(old, nil)
			mustAdmit(t, g, testRepo, "1", img, true)
			key := g.PolicyKey()

			tc.change(w)
			pol, err := policy.LoadFile(filepath.Join(w.dir, "policy.json"))
			if err != nil {
				t.Fatal(err)
			}
			newer := &countingPolicy{Policy: pol}
			g.Reload(newer, w.newFinder())
			if g.PolicyKey() == key {
				t.Fatalf("the policy key %s outlived a change of the %s", key, tc.name)
			}
			if blobAllowed(t, g, testRegistry, testRepo, img.blobs[1]) {
				t.Fatal("a blob admitted under the old files is served after the reload")
			}
			mustAdmit(t, g, testRepo, "1", img, tc.accept)
			if rec := lastDecision(t, w.logs); rec["cache"] != "miss" || newer.calls.Load() != 1 || old.calls.Load() != 1 {
				t.Fatalf("after the reload: cache=%v, new policy %d evaluations, old %d", rec["cache"], newer.calls.Load(), old.calls.Load())
			}
		})
	}
}

// TestGatesShareStores: two gates (replicas) that load the same files name their policy
// alike, so that a verdict store they share serves one's verdict to the other, and an
// admission store they share serves the layers one admitted from the other.
func TestGatesShareStores(t *testing.T) {
	w, img := signedApp(t)
	verdicts, err := cache.NewTTL[VerdictKey, policy.Verdict](16)
	if err != nil {
		t.Fatal(err)
	}
	admitted, err := newAdmissions(16, minAdmittedBlobs, 16)
	if err != nil {
		t.Fatal(err)
	}
	share := func(o *Options) { o.Verdicts, o.Admissions = verdicts, admitted }
	first, second := w.loadPolicy(signedByTrusted), w.loadPolicy(signedByTrusted)
	a, b := w.gate(first, share), w.gate(second, share)
	if a.PolicyKey() != b.PolicyKey() {
		t.Fatalf("the same files give the policy keys %s and %s", a.PolicyKey(), b.PolicyKey())
	}
	mustAdmit(t, a, testRepo, "1", img, true)
	if !blobAllowed(t, b, testRegistry, testRepo, img.blobs[1]) {
		t.Fatal("a layer one replica admitted is refused by the other")
	}
	mustAdmit(t, b, testRepo, "1", img, true)
	if rec := lastDecision(t, w.logs); rec["cache"] != "hit" || second.calls.Load() != 0 {
		t.Fatalf("second replica: cache=%v, %d evaluations", rec["cache"], second.calls.Load())
	}

	// A policy without an ID (parsed, not loaded from files) is never shared.
	c := w.gate(w.policy(signedByTrusted), share)
	if c.PolicyKey() == a.PolicyKey() || blobAllowed(t, c, testRegistry, testRepo, img.blobs[1]) {
		t.Fatal("a gate whose policy has no ID uses another gate's admissions")
	}
}
