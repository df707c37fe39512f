// Package sigstore verifies cosign signatures offline: the legacy sha256-<hex>.sig
// attachments that containers/image reads (SPEC.md 5.2-5.4), with public keys, Fulcio
// certificates plus a Rekor signed entry timestamp, or a private PKI; and cosign v3 Sigstore
// bundles (SPEC.md 5.5).
//
// It checks cryptography, certificates and transparency-log promises and returns the
// signed claims; it does not decide whether those claims fit an image: comparing the
// digest and the identity is the caller's job (package policy). It imports nothing from
// policy, so that policy can import it.
package sigstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/policy/payload"
)

// MIMETypeSimpleSigning is the layer media type of cosign signatures; other layers of a
// .sig manifest are not signatures for sigstoreSigned.
const MIMETypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"

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
// the trust configuration).
var ErrRejected = errors.New("sigstore signature rejected")

// ErrNotImplemented is returned until verification is implemented.
var ErrNotImplemented = errors.New("sigstore verification is not implemented")

// ParsePublicKey parses the first PEM block of pemData: PUBLIC KEY (PKIX: ECDSA, RSA,
// Ed25519) or RSA PUBLIC KEY (PKCS#1). Later blocks are ignored, as in containers/image.
func ParsePublicKey(pemData []byte) (crypto.PublicKey, error) { return nil, ErrNotImplemented }

// ParseCertificates parses every CERTIFICATE block of a PEM bundle; at least one is required.
func ParseCertificates(pemData []byte) ([]*x509.Certificate, error) { return nil, ErrNotImplemented }

// ParseRekorPublicKey parses a Rekor public key, which must be ECDSA.
func ParseRekorPublicKey(pemData []byte) (*ecdsa.PublicKey, error) { return nil, ErrNotImplemented }

// VerifyAttachment verifies one layer of a cosign .sig attachment: mimeType must be
// MIMETypeSimpleSigning, the signature and certificates come from annotations, now is the
// time for PKI checks. It returns the parsed payload (type "cosign container image
// signature"), whose digest and identity the caller must still check.
func (t *Trust) VerifyAttachment(mimeType string, layer []byte, annotations map[string]string, now time.Time) (payload.Untrusted, error) {
	return payload.Untrusted{}, ErrNotImplemented
}

// BundleClaims is what a verified Sigstore bundle says: the digests it signs. A bundle
// carries no docker-reference identity.
type BundleClaims struct {
	Subjects []digest.Digest
}

// VerifyBundle verifies a Sigstore bundle (media types application/vnd.dev.sigstore.bundle
// v0.1-v0.3+json) offline against t.
func (t *Trust) VerifyBundle(bundle []byte, now time.Time) (BundleClaims, error) {
	return BundleClaims{}, ErrNotImplemented
}
