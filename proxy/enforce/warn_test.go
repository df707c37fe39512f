package enforce

import (
	"errors"
	"testing"

	"github.com/pullgate/pullgate/policy"
)

// TestGateWarn: a policy denial in a warn scope is served and reported enforced=false,
// its blobs with it; a denial outside is enforced; an indeterminate decision stays an
// error (503) in a warn scope; an index's children are served under the index's tag scope.
func TestGateWarn(t *testing.T) {
	w := newWorld(t)
	warned, other := image(t, "warned"), image(t, "other")
	child := image(t, "child")
	idx := index(t, child)
	set, err := policy.NewScopeSet([]string{testRegistry + "/" + testRepo + ":1", testRegistry + "/team"})
	if err != nil {
		t.Fatal(err)
	}
	g := w.gate(w.policy(signedByTrusted), func(o *Options) { o.Warn = set })

	if blobAllowed(t, g, testRegistry, testRepo, warned.blobs[1]) {
		t.Fatal("blob served before its manifest")
	}
	mustAdmit(t, g, testRepo, "1", warned, true)
	rec := lastDecision(t, w.logs)
	if rec["verdict"] != "deny" || rec["enforced"] != false || rec["warnScope"] != testRegistry+"/"+testRepo+":1" {
		t.Fatalf("logged %v", rec)
	}
	if !blobAllowed(t, g, testRegistry, testRepo, warned.blobs[1]) {
		t.Fatal("a layer of a warn-served image is refused")
	}
	// Another tag of the same repository is outside the tag scope: enforced.
	mustAdmit(t, g, testRepo, "2", other, false)
	if rec := lastDecision(t, w.logs); rec["verdict"] != "deny" || rec["enforced"] != true {
		t.Fatalf("logged %v", rec)
	}
	if blobAllowed(t, g, testRegistry, testRepo, other.blobs[1]) {
		t.Fatal("a layer of an enforced denial is served")
	}

	// An index served under warn by tag: its child, fetched by digest, is served too.
	mustAdmit(t, g, "team/app", "v1", idx, true)
	mustAdmit(t, g, "team/app", child.digest.String(), child, true)
	if !blobAllowed(t, g, testRegistry, "team/app", child.blobs[0]) {
		t.Fatal("a child's blob of a warn-served index is refused")
	}

	// Could not decide: 503 even in a warn scope (fail closed).
	undecided := image(t, "undecided")
	w.sign(w.trusted, "team/down", undecided.digest, testRegistry+"/team/down:1")
	w.lookaside.fail("team/down", undecided.digest, 1, 1)
	_, err = admit(t, g, "team/down", "1", undecided)
	var ie *IndeterminateError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v, want an indeterminate error in a warn scope", err)
	}
	if blobAllowed(t, g, testRegistry, "team/down", undecided.blobs[1]) {
		t.Fatal("a blob of an undecided image is served")
	}
}
