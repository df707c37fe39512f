package enforce

import (
	"context"
	"log/slog"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy/admission"
)

// DecisionObserver sees every decision the gate reports: each manifest decision (accept,
// deny, or error when none could be made) and each refused blob. Metrics and audit plug
// in here. ObserveDecision runs on the request's goroutine before the answer is written,
// so it must be quick and must not block. LogDecisions, the default, writes today's
// "decision" log line.
type DecisionObserver interface {
	ObserveDecision(ctx context.Context, d DecisionRecord)
}

// DecisionRecord is one decision of the gate.
type DecisionRecord struct {
	// Kind is "manifest" or "blob".
	Kind string
	// Client is the client's address.
	Client string
	// User is the name the client authenticated as; empty without client authentication.
	User string
	// Registry and Repository name the upstream object (docker.io, library/alpine).
	Registry, Repository string
	// Reference is the tag or digest a manifest was asked by; empty for a blob.
	Reference string
	// Digest is the manifest's or the blob's.
	Digest digest.Digest
	// Identity is the policy identity the verdict is about; for a blob, the
	// repository's name.
	Identity string
	// Verdict is "accept", "deny", or "error" (Err says why no decision was made).
	Verdict string
	// Scope and Requirement are the policy scope that applied and the requirement that
	// refused (or, accepted, the requirements that accepted).
	Scope, Requirement string
	// Reason says why, in words.
	Reason string
	// Enforced is false for a denial that was served because its identity falls in a
	// warn scope (Options.Warn); WarnScope is that scope. Every other decision is
	// enforced.
	Enforced  bool
	WarnScope string
	// Cache is where a manifest's verdict came from: "hit" (the verdict cache), "miss"
	// (this request evaluated the policy), "shared" (it joined another request's
	// evaluation) or "none" (decided without the policy); empty for a blob and an error.
	Cache string
	// Duration is how long a manifest decision took; zero for a blob.
	Duration time.Duration
	// Err is why no decision could be made (Verdict "error").
	Err error
	// Stale is true when a tag was resolved from the content store's last confirmation
	// because the upstream could not be asked.
	Stale bool
}

// LogDecisions is the default DecisionObserver: one "decision" line on log per decision,
// INFO, or WARN when none could be made.
func LogDecisions(log *slog.Logger) DecisionObserver { return decisionLog{log: log} }

type decisionLog struct{ log *slog.Logger }

func (l decisionLog) ObserveDecision(ctx context.Context, d DecisionRecord) {
	attrs := []any{"kind", d.Kind, "client", d.Client, "upstream", d.Registry, "repository", d.Repository}
	if d.User != "" {
		attrs = append(attrs, "user", d.User)
	}
	switch {
	case d.Kind == "blob":
		l.log.InfoContext(ctx, "decision", append(attrs, "digest", d.Digest.String(), "verdict", d.Verdict, "reason", d.Reason)...)
		return
	case d.Err != nil:
		l.log.WarnContext(ctx, "decision", append(attrs, "reference", d.Reference, "digest", d.Digest.String(),
			"verdict", "error", "reason", d.Err.Error(), "duration", d.Duration)...)
		return
	}
	attrs = append(attrs, "reference", d.Reference, "digest", d.Digest.String(),
		"identity", d.Identity, "verdict", d.Verdict, "scope", d.Scope, "requirement", d.Requirement,
		"reason", d.Reason, "cache", d.Cache, "duration", d.Duration)
	if d.Stale {
		attrs = append(attrs, "stale", true)
	}
	if d.Verdict == "deny" {
		attrs = append(attrs, "enforced", d.Enforced)
		if !d.Enforced {
			attrs = append(attrs, "warnScope", d.WarnScope)
		}
	}
	l.log.InfoContext(ctx, "decision", attrs...)
}

// decisionObserver is the observer of Options.OnDecision, or the log line.
func decisionObserver(o DecisionObserver, log *slog.Logger) DecisionObserver {
	if o == nil {
		return LogDecisions(log)
	}
	return o
}

// logDecision reports one manifest decision.
func (g *Gate) logDecision(ctx context.Context, m *admission.ManifestRequest, out outcome, err error, took time.Duration) {
	d := DecisionRecord{Kind: "manifest", Client: m.ClientAddr, User: m.User, Registry: m.Registry, Repository: m.Repository,
		Reference: m.Reference, Digest: m.Digest, Duration: took, Enforced: true, Stale: m.Stale}
	if err != nil {
		d.Verdict, d.Reason, d.Err = "error", err.Error(), err
		g.decisions.ObserveDecision(ctx, d)
		return
	}
	d.Cache = out.cache
	if d.Cache == "" { // decided without the policy (artifacts, unrecognised manifests)
		d.Cache = "none"
	}
	d.Identity, d.Verdict, d.Scope = out.detail.Identity, out.detail.Verdict, out.detail.Scope
	d.Requirement, d.Reason = out.detail.Requirement, out.detail.Reason
	if out.warnScope != "" {
		d.Enforced, d.WarnScope = false, out.warnScope
	}
	g.decisions.ObserveDecision(ctx, d)
}

// logBlobDenial reports a refused blob.
func (g *Gate) logBlobDenial(ctx context.Context, b *admission.BlobRequest, reason string) {
	g.decisions.ObserveDecision(ctx, DecisionRecord{Kind: "blob", Client: b.ClientAddr, User: b.User, Registry: b.Registry,
		Repository: b.Repository, Digest: b.Digest, Identity: b.Registry + "/" + b.Repository, Verdict: "deny", Reason: reason,
		Enforced: true})
}
