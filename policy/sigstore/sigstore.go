// Package sigstore verifies cosign signatures offline: the legacy sha256-<hex>.sig
// attachments that containers/image reads (SPEC.md 5.2-5.4), with public keys, Fulcio
// certificates plus a Rekor signed entry timestamp, or a private PKI; and cosign v3 Sigstore
// bundles (SPEC.md 5.5).
//
// It checks cryptography, certificates and transparency-log promises and returns the
// signed claims; it does not decide whether those claims fit an image: comparing the
// digest and the identity is the caller's job (package policy). It imports nothing from
// policy, so that policy can import it.
//
// Nothing here talks to the network: Rekor is trusted through its public key (the signed
// entry timestamp, "SET"), Fulcio through its CA certificates.
package sigstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
)

// MIMETypeSimpleSigning is the layer media type of cosign signatures; other layers of a
// .sig manifest are not signatures for sigstoreSigned.
const MIMETypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"

// Layer annotations of a .sig attachment (SPEC.md 5.2). Only the signature key uses the
// dev.cosignproject.cosign/ prefix.
const (
	AnnotationSignature   = "dev.cosignproject.cosign/signature"
	AnnotationCertificate = "dev.sigstore.cosign/certificate"
	AnnotationChain       = "dev.sigstore.cosign/chain"
	AnnotationBundle      = "dev.sigstore.cosign/bundle"
)

// Trust is the key material of one sigstoreSigned requirement, parsed once at load time.
// Exactly one of PublicKeys, Fulcio and PKI is set. RekorKeys is required with Fulcio,
// optional with PublicKeys, and forbidden with PKI.
type Trust struct {
	PublicKeys []crypto.PublicKey
	Fulcio     *Fulcio
	PKI        *PKI
	RekorKeys  []*ecdsa.PublicKey
}

// Fulcio trusts certificates issued by a Fulcio-like CA, checked at the Rekor integrated time.
type Fulcio struct {
	// Roots are trust anchors, all of them (an intermediate listed here is an anchor too).
	Roots        []*x509.Certificate
	OIDCIssuer   string
	SubjectEmail string
}

// PKI trusts certificates chaining to a private CA, checked now.
type PKI struct {
	Roots           []*x509.Certificate
	Intermediates   []*x509.Certificate
	SubjectEmail    string
	SubjectHostname string
}

// ErrRejected is wrapped by every error that rejects one signature (as opposed to errors in
// the trust configuration). Its message is the precise reason, without a prefix.
var ErrRejected = errors.New("sigstore signature rejected")

// ErrNotSignatureLayer is wrapped (together with ErrRejected) by VerifyAttachment's error
// for a layer whose media type is not MIMETypeSimpleSigning: callers skip such layers
// rather than count them as bad signatures.
var ErrNotSignatureLayer = errors.New("not a cosign simple-signing layer")

// ErrInvalidTrust is wrapped by errors about an inconsistent Trust (a programming or
// configuration error, never the signature's fault).
var ErrInvalidTrust = errors.New("invalid sigstore trust configuration")

// rejection carries the reason a signature is rejected; errors.Is finds both ErrRejected
// and whatever the reason wraps.
type rejection struct{ err error }

func (r rejection) Error() string   { return r.err.Error() }
func (r rejection) Unwrap() []error { return []error{ErrRejected, r.err} }

// rejectf returns a rejection with a formatted reason (%w is allowed).
func rejectf(format string, args ...any) error {
	return rejection{err: fmt.Errorf(format, args...)}
}

// validate checks the invariants documented on Trust; policy parsing should make them
// impossible to break, so a failure here is a bug, reported as ErrInvalidTrust.
func (t *Trust) validate() error {
	sources := 0
	if len(t.PublicKeys) > 0 {
		sources++
	}
	if t.Fulcio != nil {
		sources++
	}
	if t.PKI != nil {
		sources++
	}
	switch {
	case sources != 1:
		return fmt.Errorf("%w: exactly one of public keys, Fulcio and PKI must be set, got %d", ErrInvalidTrust, sources)
	case t.Fulcio != nil && len(t.RekorKeys) == 0:
		return fmt.Errorf("%w: Fulcio requires a Rekor public key", ErrInvalidTrust)
	case t.PKI != nil && len(t.RekorKeys) > 0:
		return fmt.Errorf("%w: PKI cannot be combined with Rekor public keys", ErrInvalidTrust)
	case t.Fulcio != nil && (len(t.Fulcio.Roots) == 0 || t.Fulcio.OIDCIssuer == "" || t.Fulcio.SubjectEmail == ""):
		return fmt.Errorf("%w: Fulcio needs CA certificates, an OIDC issuer and a subject email", ErrInvalidTrust)
	case t.PKI != nil && len(t.PKI.Roots) == 0:
		return fmt.Errorf("%w: PKI needs CA root certificates", ErrInvalidTrust)
	case t.PKI != nil && t.PKI.SubjectEmail == "" && t.PKI.SubjectHostname == "":
		return fmt.Errorf("%w: PKI needs a subject email or a subject hostname", ErrInvalidTrust)
	}
	for i, k := range t.PublicKeys {
		if err := checkKeyType(k); err != nil {
			return fmt.Errorf("%w: public key %d: %w", ErrInvalidTrust, i+1, err)
		}
	}
	for i, k := range t.RekorKeys {
		if k == nil {
			return fmt.Errorf("%w: Rekor public key %d is nil", ErrInvalidTrust, i+1)
		}
	}
	return nil
}
