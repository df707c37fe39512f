package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/policy/strictjson"
)

// ErrInvalidImage is wrapped (with ErrIndeterminate) when Evaluate is given an image it
// cannot evaluate: no identity, a name-only identity, one with both a tag and a digest, or
// a digest that does not match the manifest bytes.
var ErrInvalidImage = errors.New("invalid image for policy evaluation")

// Evaluate decides whether img may be pulled (containers/image IsRunningImageAllowed):
// it selects the requirement list for img.Identity (Scope), and every requirement in it
// must allow, in order; the first denial decides. A signature-checking requirement is
// satisfied by any one fully valid signature; a bad signature only rejects itself.
// Signatures are read from src at most once, and only if a requirement needs them.
//
// It returns (Verdict, nil) for a decision, accepted or not, and an error wrapping
// ErrIndeterminate when no decision could be made (src failed); such errors must not be
// cached as denials.
func (p *Policy) Evaluate(ctx context.Context, img Image, src SignatureSource) (Verdict, error) {
	if err := validateImage(img); err != nil {
		return Verdict{}, fmt.Errorf("%w: %w", ErrIndeterminate, err)
	}
	list := p.requirementsFor(img.Identity)
	v := Verdict{Identity: img.Identity.String(), Digest: img.Digest, Scope: list.scope}
	ev := &evaluation{img: img, src: src, now: p.now()}
	if len(list.reqs) == 0 { // cannot happen with a parsed policy; never accept by default
		v.Reason = "the requirement list is empty"
		return v, nil
	}
	var accepted, names []string
	for i, r := range list.reqs {
		name := strictjson.Index(i) + " " + r.typeName()
		out, err := r.evaluate(ctx, ev)
		if err != nil {
			return Verdict{}, err
		}
		if !out.allowed {
			v.Requirement = name
			v.Reason = out.reason
			return v, nil
		}
		v.SignaturesVerified = v.SignaturesVerified || out.verified
		accepted = append(accepted, name+": "+out.reason)
		names = append(names, name)
	}
	v.Accepted = true
	v.AcceptedBy = strings.Join(names, ", ")
	v.Reason = strings.Join(accepted, "; ")
	return v, nil
}

func validateImage(img Image) error {
	if img.Identity == nil {
		return fmt.Errorf("%w: no identity", ErrInvalidImage)
	}
	if _, ok := policyIdentity(img.Identity); !ok {
		return fmt.Errorf("%w: identity %s must have exactly one of a tag and a digest", ErrInvalidImage, img.Identity)
	}
	if err := img.Digest.Validate(); err != nil {
		return fmt.Errorf("%w: digest %q: %w", ErrInvalidImage, img.Digest, err)
	}
	if img.Manifest == nil {
		if img.Digest.Algorithm() != digest.SHA256 {
			return fmt.Errorf("%w: without manifest bytes the digest must be sha256, got %s", ErrInvalidImage, img.Digest)
		}
		return nil
	}
	if img.Digest.Algorithm().FromBytes(img.Manifest) == img.Digest {
		return nil
	}
	// A signed schema1 manifest is known by the digest of its payload.
	if d, err := manifestDigest(img.Manifest); err == nil && d == img.Digest {
		return nil
	}
	return fmt.Errorf("%w: the manifest bytes do not match digest %s", ErrInvalidImage, img.Digest)
}

// evaluation is the state of one Evaluate call.
type evaluation struct {
	img Image
	src SignatureSource
	now time.Time

	once    sync.Once
	sigs    []Signature
	sigsErr error
}

// signatures returns the image's signatures, fetching them on first use. A fetch error is
// returned wrapped in ErrIndeterminate, every time.
func (ev *evaluation) signatures(ctx context.Context) ([]Signature, error) {
	ev.once.Do(func() {
		if ev.src == nil {
			ev.sigsErr = fmt.Errorf("%w: the policy requires signatures but no signature source was given", ErrIndeterminate)
			return
		}
		sigs, err := ev.src.Signatures(ctx, ev.img)
		if err != nil {
			ev.sigsErr = fmt.Errorf("%w: reading the signatures of %s (%s): %w", ErrIndeterminate, ev.img.Identity, ev.img.Digest, err)
			return
		}
		ev.sigs = sigs
	})
	return ev.sigs, ev.sigsErr
}

// checkDigest compares a signed manifest digest with the manifest being evaluated
// (SPEC 2.5).
func (ev *evaluation) checkDigest(signed digest.Digest) error {
	if ev.img.Manifest == nil { // digest-only evaluation (see Image.Manifest)
		if signed != ev.img.Digest {
			return fmt.Errorf("signature for digest %s does not match the manifest", signed)
		}
		return nil
	}
	ok, err := manifestMatchesDigest(ev.img.Manifest, signed)
	if err != nil {
		return fmt.Errorf("computing the manifest digest: %w", err)
	}
	if !ok {
		return fmt.Errorf("signature for digest %s does not match the manifest", signed)
	}
	return nil
}
