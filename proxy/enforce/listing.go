package enforce

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/distribution/reference"

	"github.com/pullgate/pullgate/proxy/admission"
)

// RepositoryPolicy is implemented by an Evaluator that can tell whether it rejects every
// image of a repository (*policy.Policy does). The Gate finds it by type assertion.
type RepositoryPolicy interface {
	RejectsRepository(named reference.Named) (scope string, rejected bool)
}

var _ admission.ListingGate = (*Gate)(nil)

// AdmitListing refuses the tags and referrers of a repository whose policy scope rejects
// every image of it: a reject scope must not disclose the tags and digests of the images
// it refuses. It needs no signatures and no upstream. An Evaluator that cannot say
// (no RepositoryPolicy) leaves listings open, as they were.
func (g *Gate) AdmitListing(ctx context.Context, t admission.Target) (admission.Decision, error) {
	rp, ok := g.currentPolicy().(RepositoryPolicy)
	if !ok {
		return admission.Decision{Allow: true}, nil
	}
	named, err := reference.ParseNormalizedNamed(t.Registry + "/" + t.Repository)
	if err != nil {
		// The router only passes valid names; refuse rather than guess.
		return admission.Decision{Reason: fmt.Sprintf("invalid repository name %s/%s", t.Registry, t.Repository)}, nil
	}
	scope, rejected := rp.RejectsRepository(named)
	if !rejected {
		return admission.Decision{Allow: true}, nil
	}
	d := Detail{Identity: named.String(), Verdict: "deny", Scope: scope,
		Reason: fmt.Sprintf("policy %s rejects every image of %s, so its tags and referrers are not listed", scope, named)}
	g.log.LogAttrs(ctx, slog.LevelInfo, "listing refused",
		slog.String("identity", named.String()), slog.String("scope", scope), slog.String("client", t.ClientAddr))
	return admission.Decision{Reason: d.Reason, Detail: d}, nil
}

// currentPolicy is the Evaluator in force.
func (g *Gate) currentPolicy() Evaluator { return g.state.Load().policy }
