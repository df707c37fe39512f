package policy

import (
	"context"
	"errors"
	"fmt"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Image is the subject of one evaluation.
type Image struct {
	// Identity is the policy identity: the image's upstream (logical) name with the tag or
	// digest it was requested by, normalised as docker does (docker.io/library/alpine:3.20).
	// It is a reference.NamedTagged or a reference.Canonical, never name-only.
	// For a platform manifest reached through an index, it is the reference the index
	// was requested by (SPEC 6.1).
	Identity reference.Named
	// Digest is the digest of Manifest, the manifest being evaluated.
	Digest digest.Digest
	// Manifest holds the exact manifest bytes (schema1 signatures cover a payload digest
	// computed from them). It may be nil when only the digest is at hand, for a child
	// manifest listed by an index: Digest must then be a sha256 digest, taken to be the
	// sha256 of the bytes the caller will verify before serving them (children of an
	// index are never schema1).
	Manifest []byte
}

// SignatureFormat says how a Signature's Data is to be read.
type SignatureFormat string

const (
	// FormatSimpleSigning is an OpenPGP signed message wrapping an "atomic container
	// signature" payload (lookaside files, the registry signature API).
	FormatSimpleSigning SignatureFormat = "simple-signing"
	// FormatCosign is one layer of a cosign sha256-<hex>.sig attachment (or c/image's
	// sigstore-json lookaside form): Data is the payload, the signature and certificates
	// are in Annotations, MIMEType is the layer media type.
	FormatCosign SignatureFormat = "cosign"
	// FormatSigstoreBundle is a Sigstore bundle JSON (cosign v3) found through the OCI
	// referrers API or the referrers tag schema.
	FormatSigstoreBundle SignatureFormat = "sigstore-bundle"
)

// Signature is one signature as found, before any verification: nothing in it is trusted.
type Signature struct {
	Format      SignatureFormat
	Data        []byte
	MIMEType    string
	Annotations map[string]string
	// Origin says where the signature was found ("lookaside http://…/signature-2",
	// "sha256-<hex>.sig layer 1"), for messages only.
	Origin string
}

// SignatureSource supplies the signatures stored for an image's manifest digest. The
// engine calls it at most once per evaluation, and only when a requirement needs
// signatures (Policy.NeedsSignatures). An error means the signatures could not be obtained
// (a lookaside or an upstream failed, or a stored blob is in no known format, see
// ParseSignatureBlob): the evaluation is then indeterminate, never a denial. A signature
// that is merely invalid must be returned, not dropped: it rejects only itself.
type SignatureSource interface {
	Signatures(ctx context.Context, img Image) ([]Signature, error)
}

// SignatureSourceFunc adapts a function to SignatureSource.
type SignatureSourceFunc func(ctx context.Context, img Image) ([]Signature, error)

// Signatures calls f.
func (f SignatureSourceFunc) Signatures(ctx context.Context, img Image) ([]Signature, error) {
	return f(ctx, img)
}

// ErrIndeterminate is wrapped by every error Evaluate returns: the policy could not be
// applied (signatures could not be fetched). Such outcomes are never cached.
var ErrIndeterminate = errors.New("policy: could not decide")

// Verdict is a decision. The zero value rejects.
type Verdict struct {
	Accepted bool
	// Identity is the policy identity evaluated, as a string.
	Identity string
	// Digest is the manifest digest evaluated.
	Digest digest.Digest
	// Scope names the requirement list that applied, as written in the policy file:
	// `transports.docker["docker.io/library"]`, `transports.docker[""]` or `default`.
	Scope string
	// Requirement names the requirement that rejected the image by its index in the list
	// (as in the JSON path) and type: `[0] signedBy`; empty when accepted.
	Requirement string
	// AcceptedBy names, when accepted, the requirements of the applied list that accepted
	// the image (every one of them must), as Requirement names them: `[0] signedBy`, or
	// `[0] signedBy, [1] sigstoreSigned`. Empty when rejected.
	AcceptedBy string
	// Reason says why the requirement rejected the image, naming each signature and why it
	// failed ("signature 2 (lookaside http://…/signature-2): signed by key ID 3F2A…, which
	// is not trusted"), or, when accepted, what each requirement accepted. Scope and
	// Requirement complete it; Summary joins them into one sentence.
	Reason string
	// SignaturesVerified is true when at least one requirement in the applied list
	// verified signatures (signedBy, sigstoreSigned) and was satisfied.
	SignaturesVerified bool
}

// Summary is the verdict as one sentence: the identity and digest, the scope and
// requirement that decided, and the reason.
func (v Verdict) Summary() string {
	word := "rejected"
	if v.Accepted {
		word = "accepted"
	}
	s := fmt.Sprintf("%s (%s) %s by policy %s", v.Identity, v.Digest, word, v.Scope)
	if v.Requirement != "" {
		s += " requirement " + v.Requirement
	}
	if v.Reason != "" {
		s += ": " + v.Reason
	}
	return s
}
