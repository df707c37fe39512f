package enforce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// CacheSize bounds the default verdict store (entries); the default admission store
	// holds as many accepted manifests, with admissionsPerVerdict times as many blob
	// references.
	CacheSize int
	// Verdicts and Admissions hold the gate's memory; nil means the in-memory defaults
	// sized by CacheSize.
	Verdicts   VerdictStore
	Admissions AdmissionStore
	// Blobs reads the blobs of signature attachments so that they can be checked before
	// they are served without a policy check. Without it no manifest is served as an
	// attachment: every one is evaluated by the policy as an image.
	Blobs BlobReader
	// Kept, if set, decides on blobs whose manifests this process did not serve from the
	// manifests a content store kept (replicas, restarts).
	Kept   KeptManifests
	Logger *slog.Logger
	// OnDecision is told every decision; nil means LogDecisions(Logger).
	OnDecision DecisionObserver
	// Warn lists the scopes whose policy denials are served (and reported with
	// Enforced false); nil enforces every denial. Indeterminate decisions (503) and
	// refusals that are not the policy's (an unparsable manifest, a blob no served
	// manifest lists) are enforced in warn scopes too.
	Warn *policy.ScopeSet
}

// Gate is the policy-enforcing admission.Gate. Its decisions are in decide.go; what it
// remembers is in its stores (stores.go), the parent-index memory (parents.go) and the
// attachment and classification caches.
type Gate struct {
	state     atomic.Pointer[state]
	acceptTTL time.Duration
	denyTTL   time.Duration
	verdicts  VerdictStore
	flights   cache.Group[policy.Verdict]
	// admitted remembers the accepted manifests, the blobs each lists, and the digests
	// served or refused as manifests.
	admitted AdmissionStore
	// parents remembers, per client, the indexes served to it that list a child.
	parents *parents
	// attachments caches the content check of signature attachments ("" when it passed),
	// by attachment digest and kind: the check depends on the bytes alone.
	attachments      *cache.TTL[attachmentCheckKey, string]
	attachmentChecks cache.Group[string]
	// attachmentReads holds a token per attachment check reading blobs.
	attachmentReads chan struct{}
	blobReader      BlobReader
	kept            KeptManifests
	// parsed remembers how manifest bytes were classified.
	parsed *parseCache
	// local names this gate's policies that have no content ID (see policyKey).
	local string
	log   *slog.Logger
	// decisions is told every decision (Options.OnDecision).
	decisions DecisionObserver
	// warn is Options.Warn (a nil set matches nothing).
	warn *policy.ScopeSet
}

var _ admission.Gate = (*Gate)(nil)

// state is what a policy reload replaces as one unit.
type state struct {
	policy Evaluator
	finder Finder
	gen    uint64
	// key names the policy in every verdict and admission made under it.
	key string
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
	if opts.Verdicts == nil {
		verdicts, err := cache.NewTTL[VerdictKey, policy.Verdict](opts.CacheSize)
		if err != nil {
			return nil, err
		}
		opts.Verdicts = verdicts
	}
	if opts.Admissions == nil {
		admitted, err := newAdmissions(opts.CacheSize, max(opts.CacheSize*admissionsPerVerdict, minAdmittedBlobs),
			opts.CacheSize*admissionsPerVerdict)
		if err != nil {
			return nil, err
		}
		opts.Admissions = admitted
	}
	parents, err := newParents()
	if err != nil {
		return nil, err
	}
	attachments, err := cache.NewTTL[attachmentCheckKey, string](opts.CacheSize)
	if err != nil {
		return nil, err
	}
	parsed, err := newParseCache(opts.CacheSize)
	if err != nil {
		return nil, err
	}
	local, err := localName()
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
		verdicts:         opts.Verdicts,
		flights:          cache.Group[policy.Verdict]{Timeout: evaluationTimeout},
		admitted:         opts.Admissions,
		parents:          parents,
		attachments:      attachments,
		attachmentChecks: cache.Group[string]{Timeout: evaluationTimeout},
		attachmentReads:  make(chan struct{}, maxConcurrentAttachmentReads),
		blobReader:       opts.Blobs,
		kept:             opts.Kept,
		parsed:           parsed,
		local:            local,
		log:              log,
		decisions:        decisionObserver(opts.OnDecision, log),
		warn:             opts.Warn,
	}
	g.state.Store(g.newState(opts.Policy, opts.Finder, 1))
	return g, nil
}

// Reload puts a new policy and finder in force. Verdicts and admissions are keyed by the
// policy they were made under: after a reload to a different policy none made under the
// old one is used (the next request of every image is evaluated afresh), after a reload
// to the same files (equal IDs) they are kept.
func (g *Gate) Reload(p Evaluator, f Finder) {
	for {
		old := g.state.Load()
		if g.state.CompareAndSwap(old, g.newState(p, f, old.gen+1)) {
			return
		}
	}
}

// Generation is the number of policies put in force so far.
func (g *Gate) Generation() uint64 { return g.state.Load().gen }

// PolicyKey is the key naming the policy in force in the gate's stores.
func (g *Gate) PolicyKey() string { return g.state.Load().key }

func (g *Gate) newState(p Evaluator, f Finder, gen uint64) *state {
	return &state{policy: p, finder: f, gen: gen, key: policyKey(p, f, g.local, gen)}
}

// AdmitManifest implements admission.Gate.
//
// A decision is served only if the policy it was made under (its policy key) is still in
// force when it is made: otherwise it is made again under the new policy, at most
// maxDecideAttempts times, then answered 503.
func (g *Gate) AdmitManifest(ctx context.Context, m *admission.ManifestRequest) (admission.Decision, error) {
	start := time.Now()
	var out outcome
	var err error
	for attempt := 1; ; attempt++ {
		st := g.state.Load()
		out, err = g.decideManifest(ctx, st, m)
		if g.state.Load().key == st.key {
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
	if err == nil && !out.accepted && g.kept != nil && isDigestRef(m.Reference) && !fromKept(ctx) {
		// A child asked for by digest whose index this process did not serve to the
		// client (another replica did, or before a restart): the kept indexes that list
		// it are decided first, as the client would have fetched them.
		if g.admitKeptParents(ctx, m) {
			if again, aerr := g.decideManifest(ctx, g.state.Load(), m); aerr == nil && again.accepted {
				out = again
			}
		}
	}
	g.logDecision(ctx, m, out, err, time.Since(start))
	if err != nil {
		return admission.Decision{}, unavailable(err)
	}
	d := admission.Decision{Allow: out.accepted, Reason: out.detail.Reason, Detail: out.detail, Unenforced: out.warnScope != ""}
	if !out.accepted {
		d.Reason = denialMessage(out.detail)
	}
	return d, nil
}

// AdmitBlob implements admission.Gate: a blob is served only when an accepted manifest of the
// same repository references it as its config or a layer. A manifest's own digest is never
// such a blob, so /blobs/<manifest digest> (containerd's fallback) is refused too.
func (g *Gate) AdmitBlob(ctx context.Context, b *admission.BlobRequest) (admission.Decision, error) {
	st := g.state.Load()
	key := Key{st.key, b.Registry, b.Repository, b.Digest}
	reason := fmt.Sprintf("blob %s is not referenced by a manifest of %s/%s that pullgate accepted; fetch an accepted image's manifest first", b.Digest, b.Registry, b.Repository)
	if g.admitted.IsManifest(key) {
		reason = fmt.Sprintf("%s is a manifest of %s/%s: it is served only as a manifest, where the policy applies", b.Digest, b.Registry, b.Repository)
	} else if g.admitted.HasBlob(key) {
		return admission.Decision{Allow: true}, nil
	} else if ok, err := g.admitFromKept(ctx, b, key); ok {
		return admission.Decision{Allow: true}, nil
	} else if err != nil {
		return admission.Decision{}, err
	}
	g.logBlobDenial(ctx, b, reason)
	return admission.Decision{Reason: reason, Detail: Detail{Identity: b.Registry + "/" + b.Repository, Digest: b.Digest.String(), Verdict: "deny", Reason: reason}}, nil
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
