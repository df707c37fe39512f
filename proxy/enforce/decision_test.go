package enforce

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy/sigsource"
)

// recordingDecisions keeps every decision it is told.
type recordingDecisions struct {
	mu   sync.Mutex
	recs []DecisionRecord
}

func (r *recordingDecisions) ObserveDecision(_ context.Context, d DecisionRecord) {
	r.mu.Lock()
	r.recs = append(r.recs, d)
	r.mu.Unlock()
}

// TestGateOnDecision: a DecisionObserver is told each decision, accept, deny and error,
// with the fields of the decision line, and replaces that line.
func TestGateOnDecision(t *testing.T) {
	w := newWorld(t)
	signed, unsigned, unreadable := image(t, "app"), image(t, "unsigned"), image(t, "unreadable")
	w.sign(w.trusted, testRepo, signed.digest, tagIdentity)
	w.sign(w.trusted, testRepo, unreadable.digest, tagIdentity)
	w.lookaside.fail(testRepo, unreadable.digest, 1, 1)
	obs := &recordingDecisions{}
	g := w.gate(w.policy(signedByTrusted), func(o *Options) { o.OnDecision = obs })

	mustAdmit(t, g, testRepo, "1", signed, true)
	mustAdmit(t, g, testRepo, unsigned.digest.String(), unsigned, false)
	if _, err := admit(t, g, testRepo, "1", unreadable); err == nil {
		t.Fatal("a manifest whose signatures cannot be read was decided")
	}
	other := digest.FromString("not referenced")
	if blobAllowed(t, g, testRegistry, testRepo, other) {
		t.Fatal("an unreferenced blob was allowed")
	}
	if !blobAllowed(t, g, testRegistry, testRepo, signed.blobs[0]) {
		t.Fatal("a blob of the accepted image was refused")
	}

	if len(obs.recs) != 4 {
		t.Fatalf("%d decisions, want 4 (accept, deny, error, refused blob): %+v", len(obs.recs), obs.recs)
	}
	accept, deny, fail, blob := obs.recs[0], obs.recs[1], obs.recs[2], obs.recs[3]
	for _, d := range []DecisionRecord{accept, deny, fail} {
		if d.Kind != "manifest" || d.Client != testClient || d.Registry != testRegistry || d.Repository != testRepo || d.Duration <= 0 {
			t.Errorf("manifest decision %+v", d)
		}
	}
	if accept.Verdict != "accept" || accept.Reference != "1" || accept.Digest != signed.digest || accept.Identity != tagIdentity ||
		accept.Scope != scopeName || accept.Requirement != "[0] signedBy" || accept.Cache != "miss" || accept.Err != nil {
		t.Errorf("accept %+v", accept)
	}
	if deny.Verdict != "deny" || deny.Digest != unsigned.digest || deny.Identity != testRegistry+"/"+testRepo+"@"+unsigned.digest.String() ||
		!strings.Contains(deny.Reason, "no signature exists") || deny.Cache != "miss" {
		t.Errorf("deny %+v", deny)
	}
	if fail.Verdict != "error" || fail.Digest != unreadable.digest || !errors.Is(fail.Err, sigsource.ErrLookasideFetch) || fail.Reason != fail.Err.Error() {
		t.Errorf("error %+v", fail)
	}
	if blob.Kind != "blob" || blob.Verdict != "deny" || blob.Digest != other || blob.Client != testClient ||
		blob.Registry != testRegistry || blob.Repository != testRepo || !strings.Contains(blob.Reason, "not referenced") {
		t.Errorf("blob %+v", blob)
	}
	if recs := loggedDecisions(t, w.logs); len(recs) != 0 {
		t.Errorf("with OnDecision set, %d decision lines were still logged", len(recs))
	}
}
