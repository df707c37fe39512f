package enforce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/cache"
	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy/admission"
)

// Evaluator applies a policy (*policy.Policy implements it).
type Evaluator interface {
	Evaluate(ctx context.Context, img policy.Image, src policy.SignatureSource) (policy.Verdict, error)
}

// Finder fetches the signatures of manifest d of registry/repository (docker.io,
// library/alpine) from wherever they are stored; identity is the policy identity, by
// which registries.d is looked up. An error means they could not be obtained: the
// decision is then indeterminate. *sigsource.Finder implements it.
type Finder interface {
	Signatures(ctx context.Context, registry, repository string, identity reference.Named, d digest.Digest) ([]policy.Signature, error)
}

// Options configures a Gate.
type Options struct {
	Policy Evaluator
	Finder Finder
	// AcceptTTL and DenyTTL are how long accepted and rejected verdicts are reused.
	AcceptTTL time.Duration
	DenyTTL   time.Duration
	// CacheSize bounds the verdict cache (entries); the admission memory holds as many
	// accepted manifests, with admissionsPerVerdict times as many blob references.
	CacheSize int
	// Blobs reads the blobs of signature attachments so that they can be checked before
	// they are served without a policy check. Without it no manifest is served as an
	// attachment: every one is evaluated by the policy as an image.
	Blobs  BlobReader
	Logger *slog.Logger
}

// Gate is the policy-enforcing admission.Gate.
type Gate struct {
	state     atomic.Pointer[state]
	acceptTTL time.Duration
	denyTTL   time.Duration
	verdicts  *cache.TTL[verdictKey, policy.Verdict]
	flights   cache.Group[policy.Verdict]
	// admitted remembers the accepted manifests and the blobs each lists.
	admitted *admissions
	// parents remembers, per client, the indexes served to it that list a child.
	parents *parents
	// attachments caches the content check of signature attachments ("" when it passed),
	// by attachment digest and kind: the check depends on the bytes alone.
	attachments      *cache.TTL[attachmentCheckKey, string]
	attachmentChecks cache.Group[string]
	// attachmentReads holds a token per attachment check reading blobs.
	attachmentReads chan struct{}
	blobReader      BlobReader
	// manifests remembers the digests served or refused as manifests: they are never
	// served as blobs, whatever an artifact lists (containerd falls back to
	// /blobs/<digest> for a manifest).
	manifests *cache.TTL[blobKey, struct{}]
	// parsed remembers how manifest bytes were classified.
	parsed *parseCache
	log    *slog.Logger
}

var _ admission.Gate = (*Gate)(nil)

// state is what a policy reload replaces as one unit.
type state struct {
	policy Evaluator
	finder Finder
	gen    uint64
}

type verdictKey struct {
	gen      uint64
	identity string // includes registry and repository
	digest   digest.Digest
}

// blobKey names a digest inside one repository of one upstream.
type blobKey struct {
	gen        uint64
	registry   string
	repository string
	digest     digest.Digest
}

type attachmentCheckKey struct {
	digest digest.Digest
	kind   attachmentKind
}

// ErrPolicyReloaded is wrapped by the error of a decision that was overtaken by policy
// reloads maxDecideAttempts times in a row: it is answered 503, never served under an
// old policy.
var ErrPolicyReloaded = errors.New("the policy was reloaded while the decision was made")

// New returns a Gate. Policy and Finder are required.
func New(opts Options) (*Gate, error) {
	if opts.Policy == nil || opts.Finder == nil {
		return nil, errors.New("enforce: a policy and a signature finder are required")
	}
	if opts.AcceptTTL == 0 {
		opts.AcceptTTL = defaultAcceptTTL
	}
	if opts.DenyTTL == 0 {
		opts.DenyTTL = defaultDenyTTL
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = defaultCacheSize
	}
	if opts.AcceptTTL < 0 || opts.DenyTTL < 0 || opts.CacheSize < 0 {
		return nil, errors.New("enforce: TTLs and cache size must not be negative")
	}
	verdicts, err := cache.NewTTL[verdictKey, policy.Verdict](opts.CacheSize)
	if err != nil {
		return nil, err
	}
	admitted, err := newAdmissions(opts.CacheSize, max(opts.CacheSize*admissionsPerVerdict, minAdmittedBlobs))
	if err != nil {
		return nil, err
	}
	parents, err := newParents()
	if err != nil {
		return nil, err
	}
	attachments, err := cache.NewTTL[attachmentCheckKey, string](opts.CacheSize)
	if err != nil {
		return nil, err
	}
	manifests, err := cache.NewTTL[blobKey, struct{}](opts.CacheSize * admissionsPerVerdict)
	if err != nil {
		return nil, err
	}
	parsed, err := newParseCache(opts.CacheSize)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gate{
		acceptTTL:        opts.AcceptTTL,
		denyTTL:          opts.DenyTTL,
		verdicts:         verdicts,
		flights:          cache.Group[policy.Verdict]{Timeout: evaluationTimeout},
		admitted:         admitted,
		parents:          parents,
		attachments:      attachments,
		attachmentChecks: cache.Group[string]{Timeout: evaluationTimeout},
		attachmentReads:  make(chan struct{}, maxConcurrentAttachmentReads),
		blobReader:       opts.Blobs,
		manifests:        manifests,
		parsed:           parsed,
		log:              log,
	}
	g.state.Store(&state{policy: opts.Policy, finder: opts.Finder, gen: 1})
	return g, nil
}

// Reload puts a new policy and finder in force. Cached verdicts and admissions made under
// the old policy are dropped: the next request of every image is evaluated afresh.
func (g *Gate) Reload(p Evaluator, f Finder) {
	for {
		old := g.state.Load()
		if g.state.CompareAndSwap(old, &state{policy: p, finder: f, gen: old.gen + 1}) {
			break
		}
	}
	g.verdicts.Purge()
	g.admitted.purge()
	g.parents.purge()
	g.manifests.Purge()
}

// Generation is the number of policies put in force so far.
func (g *Gate) Generation() uint64 { return g.state.Load().gen }

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
}

// AdmitManifest implements admission.Gate.
//
// A decision is served only if the policy generation it was made under is still current
// when it is made: otherwise it is made again under the new policy, at most
// maxDecideAttempts times, then answered 503.
func (g *Gate) AdmitManifest(ctx context.Context, m *admission.ManifestRequest) (admission.Decision, error) {
	start := time.Now()
	var out outcome
	var err error
	for attempt := 1; ; attempt++ {
		st := g.state.Load()
		out, err = g.decideManifest(ctx, st, m)
		if g.state.Load().gen == st.gen {
			break
		}
		if attempt == maxDecideAttempts {
			identity := m.Registry + "/" + m.Repository + ":" + m.Reference
			if id, ierr := requestIdentity(m.Registry, m.Repository, m.Reference); ierr == nil {
				identity = id.String()
			}
			out, err = outcome{}, &IndeterminateError{Identity: identity, Digest: m.Digest,
				Err: fmt.Errorf("%w %d times in a row", ErrPolicyReloaded, maxDecideAttempts)}
			break
		}
	}
	g.logDecision(m, out, err, time.Since(start))
	if err != nil {
		return admission.Decision{}, unavailable(err)
	}
	d := admission.Decision{Allow: out.accepted, Reason: out.detail.Reason, Detail: out.detail}
	if !out.accepted {
		d.Reason = denialMessage(out.detail)
	}
	return d, nil
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
	g.manifests.Add(blobKey{st.gen, m.Registry, m.Repository, m.Digest}, struct{}{}, admissionTTL)
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
	g.admitted.add(manifestKey{st.gen, m.Registry, m.Repository, m.Digest}, blobs, false, admissionTTL)
	return outcome{accepted: true, detail: Detail{Identity: identity.String(), Digest: m.Digest.String(), Verdict: "accept",
		Reason: fmt.Sprintf("%s of %s, which pullgate accepted in this repository: served without a policy check (%d signature blobs checked)",
			a.kind, a.subject, len(checks))}}, true, nil
}

// subjectAccepted reports whether subject was accepted as a manifest of t's repository
// under st's policy: served to some client, or accepted when evaluated by its digest now
// (cosign verify names the image by digest and reads only its attachments).
func (g *Gate) subjectAccepted(ctx context.Context, st *state, t admission.Target, subject digest.Digest) (bool, error) {
	if g.admitted.accepted(manifestKey{st.gen, t.Registry, t.Repository, subject}) {
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

// checkAttachment reads and checks an attachment's blobs once for all concurrent callers,
// caching the result by the attachment's digest (the check depends on its bytes alone).
// It returns why the blobs are not an attachment's ("" when they are), or an error when
// they could not be read.
func (g *Gate) checkAttachment(ctx context.Context, t admission.Target, d digest.Digest, kind attachmentKind, checks []blobCheck) (string, error) {
	key := attachmentCheckKey{d, kind}
	if reason, ok := g.attachments.Get(key); ok {
		return reason, nil
	}
	reason, _, err := g.attachmentChecks.Do(ctx, d.String()+"\x00"+string(kind), func(ctx context.Context) (string, error) {
		select {
		case g.attachmentReads <- struct{}{}:
			defer func() { <-g.attachmentReads }()
		case <-ctx.Done():
			return "", fmt.Errorf("waiting to read the blobs of signature attachment %s: %w", d, ctx.Err())
		}
		err := checkAttachmentBlobs(ctx, g.blobReader, t, checks)
		if err != nil && !isNotAttachment(err) {
			return "", err
		}
		reason := ""
		if err != nil {
			reason = err.Error()
		}
		g.attachments.Add(key, reason, admissionTTL)
		return reason, nil
	})
	return reason, err
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
		for _, p := range g.parents.of(clientKey(m.ClientAddr), blobKey{st.gen, m.Registry, m.Repository, m.Digest}) {
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
	var first outcome
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
			g.admitted.add(manifestKey{st.gen, m.Registry, m.Repository, m.Digest}, parsed.blobs, true, admissionTTL)
			return out, nil
		}
		if i == 0 {
			first = out
		}
	}
	return first, nil
}

// decideIndex decides on an index: served when its own signatures are accepted or when
// one of its children is (DESIGN.md difference 2). Once served, the client it was served
// to remembers it for its children, so that each is judged under this identity too when
// that client fetches it by digest.
func (g *Gate) decideIndex(ctx context.Context, st *state, m *admission.ManifestRequest, identity reference.Named, parsed parsedManifest) (outcome, error) {
	out, err := g.judgeIndex(ctx, st, m, identity, parsed)
	if err != nil || !out.accepted {
		return out, err
	}
	g.parents.remember(clientKey(m.ClientAddr), blobKey{st.gen, m.Registry, m.Repository, ""}, parsed.children,
		parent{index: m.Digest, identity: identity, accepted: out.ownSignatures, scope: out.detail.Scope, requirement: out.detail.Requirement},
		admissionTTL)
	g.admitted.add(manifestKey{st.gen, m.Registry, m.Repository, m.Digest}, nil, true, admissionTTL)
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
	key := verdictKey{gen: st.gen, identity: identity.String(), digest: d}
	if v, ok := g.verdicts.Get(key); ok {
		return v, "hit", nil
	}
	flightKey := fmt.Sprintf("%d\x00%s\x00%s", key.gen, key.identity, key.digest)
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
		if g.state.Load().gen == st.gen { // a reload happened meanwhile: don't cache under the old policy
			g.verdicts.Add(key, v, ttl)
		}
		return v, nil
	})
	if err != nil {
		return policy.Verdict{}, cacheState, &IndeterminateError{Identity: identity.String(), Digest: d, Err: err}
	}
	return v, cacheState, nil
}

// IndeterminateError says that a manifest's trust could not be decided (signatures could
// not be fetched). The proxy answers 503; nothing is cached.
type IndeterminateError struct {
	Identity string
	Digest   digest.Digest
	Err      error
}

func (e *IndeterminateError) Error() string {
	return fmt.Sprintf("could not decide whether %s (%s) is trusted: %v", e.Identity, e.Digest, e.Err)
}

func (e *IndeterminateError) Unwrap() error { return e.Err }

// unavailable is the error of a manifest that could not be decided. The handler answers
// it 503 UNAVAILABLE whatever upstream answer caused it: an upstream's own answer while
// signatures were read (403 on a .sig tag, 404 on a listed referrer) must not reach the
// client as if it were about the manifest it asked for. The cause stays in the chain for
// logs and errors.As.
func unavailable(err error) error {
	return &admission.UnreadableError{Err: err}
}

// AdmitBlob implements admission.Gate: a blob is served only when an accepted manifest of the
// same repository references it as its config or a layer. A manifest's own digest is never
// such a blob, so /blobs/<manifest digest> (containerd's fallback) is refused too.
func (g *Gate) AdmitBlob(ctx context.Context, b *admission.BlobRequest) (admission.Decision, error) {
	st := g.state.Load()
	key := blobKey{st.gen, b.Registry, b.Repository, b.Digest}
	reason := fmt.Sprintf("blob %s is not referenced by a manifest of %s/%s that pullgate accepted; fetch an accepted image's manifest first", b.Digest, b.Registry, b.Repository)
	if _, isManifest := g.manifests.Get(key); isManifest {
		reason = fmt.Sprintf("%s is a manifest of %s/%s: it is served only as a manifest, where the policy applies", b.Digest, b.Registry, b.Repository)
	} else if g.admitted.blob(key) {
		return admission.Decision{Allow: true}, nil
	}
	g.log.Info("decision", "kind", "blob", "client", b.ClientAddr, "upstream", b.Registry, "repository", b.Repository,
		"digest", b.Digest.String(), "verdict", "deny", "reason", reason)
	return admission.Decision{Reason: reason, Detail: Detail{Identity: b.Registry + "/" + b.Repository, Digest: b.Digest.String(), Verdict: "deny", Reason: reason}}, nil
}

func (g *Gate) logDecision(m *admission.ManifestRequest, out outcome, err error, took time.Duration) {
	attrs := []any{"kind", "manifest", "client", m.ClientAddr, "upstream", m.Registry, "repository", m.Repository,
		"reference", m.Reference, "digest", m.Digest.String()}
	if err != nil {
		g.log.Warn("decision", append(attrs, "verdict", "error", "reason", err.Error(), "duration", took)...)
		return
	}
	cacheState := out.cache
	if cacheState == "" { // decided without the policy (artifacts, unrecognised manifests)
		cacheState = "none"
	}
	g.log.Info("decision", append(attrs, "identity", out.detail.Identity, "verdict", out.detail.Verdict,
		"scope", out.detail.Scope, "requirement", out.detail.Requirement, "reason", out.detail.Reason,
		"cache", cacheState, "duration", took)...)
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
