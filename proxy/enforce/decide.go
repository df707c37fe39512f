package enforce

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy/admission"
)

// The decisions: what the gate answers for one manifest, given the policy in force (st)
// and what its stores remember. They keep no state of their own.

// Detail is the "detail" of a DENIED error and what `pullgate verify --json` prints.
type Detail struct {
	Identity    string `json:"identity"`
	Digest      string `json:"digest"`
	Verdict     string `json:"verdict"`
	Scope       string `json:"scope,omitempty"`
	Requirement string `json:"requirement,omitempty"`
	Reason      string `json:"reason"`
}

// outcome is one manifest decision before it is logged and returned.
type outcome struct {
	accepted bool
	detail   Detail
	// cache says where the verdict came from: "hit" (the verdict cache), "miss" (this
	// request evaluated the policy) or "shared" (it joined another request's evaluation).
	cache string
	// ownSignatures is true when the manifest's own verdict accepted it (not a child's or
	// a parent's).
	ownSignatures bool
	// warnScope, when set, is the warn scope (Options.Warn) of a denial that is served
	// anyway: accepted is true, detail.Verdict stays "deny".
	warnScope string
}

// denialMessage is the DENIED message: the identity, then which requirement of which
// scope failed, then why.
func denialMessage(d Detail) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s) is not trusted", d.Identity, d.Digest)
	if d.Scope != "" {
		fmt.Fprintf(&b, ": policy %s", d.Scope)
		if d.Requirement != "" {
			fmt.Fprintf(&b, " requirement %s", d.Requirement)
		}
		b.WriteString(" rejected it")
	}
	if d.Reason != "" {
		b.WriteString(": ")
		b.WriteString(d.Reason)
	}
	return b.String()
}

func (g *Gate) decideManifest(ctx context.Context, st *state, m *admission.ManifestRequest) (outcome, error) {
	g.admitted.SeenManifest(Key{st.key, m.Registry, m.Repository, m.Digest}, admissionTTL)
	identity, err := requestIdentity(m.Registry, m.Repository, m.Reference)
	if err != nil {
		return outcome{}, err
	}
	deny := func(reason string) (outcome, error) {
		return outcome{detail: Detail{Identity: identity.String(), Digest: m.Digest.String(), Verdict: "deny", Reason: reason}}, nil
	}
	parsed, err := g.parsed.parse(m.MediaType, m.Bytes)
	if err != nil {
		// An unrecognised manifest is not served: it cannot be checked for what it references.
		return deny(err.Error())
	}
	if len(parsed.blobs) > maxManifestBlobs {
		return deny(fmt.Sprintf("the manifest lists %d blobs; pullgate serves images of at most %d", len(parsed.blobs), maxManifestBlobs))
	}
	var notAttachment string // why a claimed attachment is evaluated as an image instead
	if a, claimed := claimedAttachment(m.Reference, parsed); claimed {
		out, ok, err := g.decideAttachment(ctx, st, m, identity, parsed, a)
		if err != nil || ok {
			return out, err
		}
		notAttachment = out.detail.Reason
	}
	var out outcome
	if parsed.kind == kindIndex {
		out, err = g.decideIndex(ctx, st, m, identity, parsed)
	} else {
		out, err = g.decideImage(ctx, st, m, identity, parsed)
	}
	if err == nil && !out.accepted && notAttachment != "" {
		out.detail.Reason += "; it is not served as a signature attachment: " + notAttachment
	}
	return out, err
}

// decideAttachment decides on a manifest that claims to be a signature attachment of
// subject. It is served without a policy check only if it really is one of an accepted
// manifest: the subject was accepted in this repository under this policy, and the
// attachment's layers are of its kind's media types and signature-sized, its config cannot
// be run, and each blob's bytes are the JSON document its media type promises (a tar or
// gzip layer never is). Its blobs are then admitted for it alone. ok is false, with the
// reason in the outcome, when it is not such an attachment: it is then an image.
func (g *Gate) decideAttachment(ctx context.Context, st *state, m *admission.ManifestRequest, identity reference.Named, parsed parsedManifest, a attachment) (out outcome, ok bool, err error) {
	not := func(err error) (outcome, bool, error) {
		return outcome{detail: Detail{Reason: err.Error()}}, false, nil
	}
	if g.blobReader == nil {
		return not(notAttachment("pullgate cannot read attachment blobs to check them"))
	}
	checks, err := checkAttachmentShape(a, parsed)
	if err != nil {
		return not(err)
	}
	accepted, err := g.subjectAccepted(ctx, st, m.Target, a.subject)
	if err != nil {
		return outcome{}, false, err
	}
	if !accepted {
		return not(notAttachment("its subject %s is not a manifest pullgate accepted in %s/%s", a.subject, m.Registry, m.Repository))
	}
	if len(checks) > 0 {
		if reason, err := g.checkAttachment(ctx, m.Target, m.Digest, a.kind, checks); err != nil {
			return outcome{}, false, &IndeterminateError{Identity: identity.String(), Digest: m.Digest, Err: err}
		} else if reason != "" {
			return not(errors.New(reason))
		}
	}
	blobs := make([]digest.Digest, len(checks))
	for i, c := range checks {
		blobs[i] = c.desc.Digest
	}
	g.admitted.Admit(Key{st.key, m.Registry, m.Repository, m.Digest}, blobs, false, admissionTTL)
	return outcome{accepted: true, detail: Detail{Identity: identity.String(), Digest: m.Digest.String(), Verdict: "accept",
		Reason: fmt.Sprintf("%s of %s, which pullgate accepted in this repository: served without a policy check (%d signature blobs checked)",
			a.kind, a.subject, len(checks))}}, true, nil
}

// subjectAccepted reports whether subject was accepted as a manifest of t's repository
// under st's policy: served to some client, or accepted when evaluated by its digest now
// (cosign verify names the image by digest and reads only its attachments).
func (g *Gate) subjectAccepted(ctx context.Context, st *state, t admission.Target, subject digest.Digest) (bool, error) {
	if g.admitted.Accepted(Key{st.key, t.Registry, t.Repository, subject}) {
		return true, nil
	}
	identity, err := requestIdentity(t.Registry, t.Repository, subject.String())
	if err != nil {
		return false, err
	}
	v, _, err := g.evaluate(ctx, st, t, identity, subject, nil)
	if err != nil {
		return false, err
	}
	return v.Accepted, nil
}

// candidate is one identity a manifest is judged under, with the parent index it comes
// from (nil for the request's own identity).
type candidate struct {
	identity reference.Named
	parent   *parent
}

// decideImage decides on an image manifest: its own signatures, else an accepted parent
// index (DESIGN.md differences 1 and 3). Fetched by digest, it is judged under the
// identities of the indexes served to the same client that list it (newest first), then
// under its own digest identity: accepted if any accepts.
func (g *Gate) decideImage(ctx context.Context, st *state, m *admission.ManifestRequest, identity reference.Named, parsed parsedManifest) (outcome, error) {
	var candidates []candidate
	if _, byDigest := identity.(reference.Digested); byDigest {
		seen := map[string]int{}
		for _, p := range g.parents.of(clientKey(m.ClientAddr), Key{st.key, m.Registry, m.Repository, m.Digest}) {
			if i, dup := seen[p.identity.String()]; dup {
				if p.accepted && !candidates[i].parent.accepted {
					candidates[i].parent = &p
				}
				continue
			}
			seen[p.identity.String()] = len(candidates)
			candidates = append(candidates, candidate{identity: p.identity, parent: &p})
		}
		if _, dup := seen[identity.String()]; !dup {
			candidates = append(candidates, candidate{identity: identity})
		}
	} else {
		candidates = []candidate{{identity: identity}}
	}
	var first, warned outcome
	for i, c := range candidates {
		v, cacheState, err := g.evaluate(ctx, st, m.Target, c.identity, m.Digest, m.Bytes)
		if err != nil {
			return outcome{}, err
		}
		out := outcome{accepted: v.Accepted, detail: detailOf(v), cache: cacheState}
		// The index vouches for its children only under the identity it was accepted for:
		// the same manifest requested by another tag is judged by that tag's own scope.
		if !v.Accepted && c.parent != nil && c.parent.accepted {
			out.accepted = true
			out.detail.Verdict = "accept"
			out.detail.Scope, out.detail.Requirement = c.parent.scope, c.parent.requirement
			out.detail.Reason = fmt.Sprintf("listed by index %s, whose signatures the policy accepts for %s", c.parent.index, c.parent.identity)
		}
		if out.accepted {
			g.admitted.Admit(Key{st.key, m.Registry, m.Repository, m.Digest}, parsed.blobs, true, admissionTTL)
			return out, nil
		}
		if i == 0 {
			first = out
		}
		if warned.warnScope == "" {
			if scope, ok := g.warn.Match(c.identity); ok {
				warned, warned.warnScope = out, scope
			}
		}
	}
	if warned.warnScope != "" {
		// A denial in a warn scope is served, and so are its blobs: otherwise the warning
		// would break the pull it is meant to let through. It is not remembered as
		// accepted, so it vouches for no signature attachment.
		warned.accepted = true
		g.admitted.Admit(Key{st.key, m.Registry, m.Repository, m.Digest}, parsed.blobs, false, admissionTTL)
		return warned, nil
	}
	return first, nil
}

// decideIndex decides on an index: served when its own signatures are accepted or when
// one of its children is (DESIGN.md difference 2). Once served, the client it was served
// to remembers it for its children, so that each is judged under this identity too when
// that client fetches it by digest.
func (g *Gate) decideIndex(ctx context.Context, st *state, m *admission.ManifestRequest, identity reference.Named, parsed parsedManifest) (outcome, error) {
	out, err := g.judgeIndex(ctx, st, m, identity, parsed)
	if err != nil {
		return out, err
	}
	if !out.accepted {
		scope, ok := g.warn.Match(identity)
		if !ok {
			return out, nil
		}
		// Served under warn: its children are judged when fetched, each under this
		// identity too (so a tag-scoped warn covers them), never as accepted by it.
		out.accepted, out.warnScope = true, scope
		g.parents.remember(clientKey(m.ClientAddr), Key{st.key, m.Registry, m.Repository, ""}, parsed.children,
			parent{index: m.Digest, identity: identity}, admissionTTL)
		g.admitted.Admit(Key{st.key, m.Registry, m.Repository, m.Digest}, nil, false, admissionTTL)
		return out, nil
	}
	g.parents.remember(clientKey(m.ClientAddr), Key{st.key, m.Registry, m.Repository, ""}, parsed.children,
		parent{index: m.Digest, identity: identity, accepted: out.ownSignatures, scope: out.detail.Scope, requirement: out.detail.Requirement},
		admissionTTL)
	g.admitted.Admit(Key{st.key, m.Registry, m.Repository, m.Digest}, nil, true, admissionTTL)
	return out, nil
}

func (g *Gate) judgeIndex(ctx context.Context, st *state, m *admission.ManifestRequest, identity reference.Named, parsed parsedManifest) (outcome, error) {
	v, cacheState, err := g.evaluate(ctx, st, m.Target, identity, m.Digest, m.Bytes)
	if err != nil {
		return outcome{}, err
	}
	out := outcome{accepted: v.Accepted, ownSignatures: v.Accepted, detail: detailOf(v), cache: cacheState}
	if v.Accepted {
		return out, nil
	}
	var childReasons []string
	for i, c := range parsed.children {
		if i == maxChildrenEvaluated {
			childReasons = append(childReasons, fmt.Sprintf("the other %d children were not evaluated (at most %d are)", len(parsed.children)-i, maxChildrenEvaluated))
			break
		}
		if c.Algorithm() != digest.SHA256 {
			// Without its bytes the engine can only take a sha256 digest as the manifest's;
			// this child is gated when it is fetched.
			childReasons = append(childReasons, fmt.Sprintf("child %s: not evaluated before it is fetched (not a sha256 digest)", c))
			continue
		}
		cv, _, err := g.evaluate(ctx, st, m.Target, identity, c, nil)
		if err != nil {
			return outcome{}, err
		}
		if cv.Accepted {
			out.accepted = true
			out.detail.Verdict = "accept"
			out.detail.Scope, out.detail.Requirement = cv.Scope, cv.AcceptedBy
			out.detail.Reason = fmt.Sprintf("the index is unsigned for this policy, but its child %s is accepted; every child is checked when fetched", c)
			return out, nil
		}
		childReasons = append(childReasons, fmt.Sprintf("child %s: %s", c, cv.Reason))
	}
	if len(childReasons) > 0 {
		out.detail.Reason += "; no child is accepted either (" + strings.Join(childReasons, "; ") + ")"
	}
	return out, nil
}

// evaluate returns the verdict for (identity, digest), from the cache or by running the
// policy once for all concurrent callers, and where it came from ("hit", "miss" or
// "shared"). Indeterminate outcomes are returned as errors and never cached.
func (g *Gate) evaluate(ctx context.Context, st *state, t admission.Target, identity reference.Named, d digest.Digest, manifest []byte) (policy.Verdict, string, error) {
	key := VerdictKey{Policy: st.key, Identity: identity.String(), Digest: d}
	if v, ok := g.verdicts.Get(key); ok {
		return v, "hit", nil
	}
	flightKey := key.Policy + "\x00" + key.Identity + "\x00" + key.Digest.String()
	cacheState := "shared" // unless this caller's own function is the one that runs
	v, _, err := g.flights.Do(ctx, flightKey, func(ctx context.Context) (policy.Verdict, error) {
		cacheState = "miss"
		if v, ok := g.verdicts.Get(key); ok { // decided while this call was being set up
			cacheState = "hit"
			return v, nil
		}
		src := policy.SignatureSourceFunc(func(ctx context.Context, img policy.Image) ([]policy.Signature, error) {
			return st.finder.Signatures(ctx, t.Registry, t.Repository, identity, d)
		})
		v, err := st.policy.Evaluate(ctx, policy.Image{Identity: identity, Digest: d, Manifest: manifest}, src)
		if err != nil {
			return policy.Verdict{}, err
		}
		if v.Identity == "" {
			v.Identity = identity.String()
		}
		if v.Digest == "" {
			v.Digest = d
		}
		ttl := g.denyTTL
		if v.Accepted {
			ttl = g.acceptTTL
		}
		// Stored under the policy it was made under even if a reload happened meanwhile:
		// the key keeps it from being used under another.
		g.verdicts.Add(key, v, ttl)
		return v, nil
	})
	if err != nil {
		return policy.Verdict{}, cacheState, &IndeterminateError{Identity: identity.String(), Digest: d, Err: err}
	}
	return v, cacheState, nil
}

func detailOf(v policy.Verdict) Detail {
	verdict := "deny"
	if v.Accepted {
		verdict = "accept"
	}
	requirement := v.Requirement
	if v.Accepted {
		requirement = v.AcceptedBy // the requirements that accepted
	}
	return Detail{Identity: v.Identity, Digest: v.Digest.String(), Verdict: verdict, Scope: v.Scope,
		Requirement: requirement, Reason: v.Reason}
}

// requestIdentity is the policy identity of a request: the upstream name with the tag or
// digest the client asked for.
func requestIdentity(registry, repository, ref string) (reference.Named, error) {
	named, err := reference.ParseNormalizedNamed(registry + "/" + repository)
	if err != nil {
		return nil, fmt.Errorf("enforce: invalid image name %s/%s: %w", registry, repository, err)
	}
	if d, err := digest.Parse(ref); err == nil {
		return reference.WithDigest(named, d)
	}
	return reference.WithTag(named, ref)
}
