package enforce

import (
	"context"
	"strings"
	"testing"

	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy/admission"
)

// plainEvaluator hides every method of a policy but Evaluate.
type plainEvaluator struct{ p *policy.Policy }

func (e plainEvaluator) Evaluate(ctx context.Context, img policy.Image, src policy.SignatureSource) (policy.Verdict, error) {
	return e.p.Evaluate(ctx, img, src)
}

func TestAdmitListing(t *testing.T) {
	w := newWorld(t)
	const text = `{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{
		"registry.test/closed":[{"type":"reject"}],
		"registry.test/mixed":[{"type":"reject"}],
		"registry.test/mixed:good":[{"type":"insecureAcceptAnything"}]}}}`
	p := w.policy(text)
	g := w.gate(p, nil)
	listing := func(g *Gate, repo string) admission.Decision {
		t.Helper()
		d, err := g.AdmitListing(context.Background(), admission.Target{Registry: testRegistry, Repository: repo, ClientAddr: testClient})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	tests := []struct {
		repo  string
		allow bool
	}{
		{"closed", false},
		{"mixed", true}, // a tag scope of it accepts
		{"org/app", true},
	}
	for _, tt := range tests {
		d := listing(g, tt.repo)
		if d.Allow != tt.allow {
			t.Errorf("%s: allow %v (%s), want %v", tt.repo, d.Allow, d.Reason, tt.allow)
		}
		if !d.Allow && (!strings.Contains(d.Reason, `transports.docker["registry.test/closed"]`) || !strings.Contains(d.Reason, "registry.test/closed")) {
			t.Errorf("%s: the reason does not name the scope: %q", tt.repo, d.Reason)
		}
	}
	if p.calls.Load() != 0 {
		t.Errorf("deciding on listings evaluated the policy %d times", p.calls.Load())
	}
	// The policy in force decides: after a reload that opens the repository, it is listed.
	g.Reload(w.policy(`{"default":[{"type":"insecureAcceptAnything"}]}`), w.finder)
	if d := listing(g, "closed"); !d.Allow {
		t.Errorf("after the reload: %s", d.Reason)
	}
	// An Evaluator that cannot say leaves listings open.
	plain := w.gate(plainEvaluator{p.Policy}, nil)
	if d := listing(plain, "closed"); !d.Allow {
		t.Errorf("an evaluator without RejectsRepository refused a listing: %s", d.Reason)
	}
}
