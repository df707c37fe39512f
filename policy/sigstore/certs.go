package sigstore

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"slices"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// Fulcio's OIDC issuer extensions: v1 holds the issuer as raw bytes (deprecated, still
// written), v2 as a DER UTF8String.
var (
	oidFulcioIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidFulcioIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// parseLeafPEM parses the certificate annotation, which must hold exactly one certificate.
func parseLeafPEM(certPEM []byte) (*x509.Certificate, error) {
	certs, err := cryptoutils.UnmarshalCertificatesFromPEMLimited(certPEM, maxChainCertificates)
	if err != nil {
		return nil, rejectf("invalid %s annotation: %w", AnnotationCertificate, err)
	}
	switch len(certs) {
	case 0:
		return nil, rejectf("no certificate in the %s annotation", AnnotationCertificate)
	case 1:
		return certs[0], nil
	default:
		return nil, rejectf("the %s annotation holds %d certificates, expected exactly one", AnnotationCertificate, len(certs))
	}
}

// chainIntermediates returns the certificates of a chain annotation except the last one:
// cosign writes the chain up to the root, and containers/image drops the last certificate
// as the presumed root (so a chain that omits the root loses its only intermediate).
func chainIntermediates(chainPEM []byte) ([]*x509.Certificate, error) {
	if len(chainPEM) == 0 {
		return nil, nil
	}
	certs, err := cryptoutils.UnmarshalCertificatesFromPEMLimited(chainPEM, maxChainCertificates)
	if err != nil {
		return nil, rejectf("invalid %s annotation: %w", AnnotationChain, err)
	}
	if len(certs) <= 1 {
		return nil, nil
	}
	return certs[:len(certs)-1], nil
}

// verifyChain checks that leaf chains to roots through intermediates at the given time,
// with the code-signing extended key usage.
func verifyChain(leaf *x509.Certificate, roots, intermediates []*x509.Certificate, at time.Time) error {
	// Go refuses a critical SAN extension with no names it knows (Fulcio may issue one,
	// e.g. with only an OtherName); subjects are matched here, so tolerate it as
	// containers/image does. leaf is freshly parsed from the signature, never shared.
	if len(leaf.UnhandledCriticalExtensions) > 0 {
		leaf.UnhandledCriticalExtensions = slices.DeleteFunc(slices.Clone(leaf.UnhandledCriticalExtensions),
			func(oid asn1.ObjectIdentifier) bool { return oid.Equal(cryptoutils.SANOID) })
	}
	rootPool := x509.NewCertPool()
	for _, c := range roots {
		rootPool.AddCert(c)
	}
	intermediatePool := x509.NewCertPool()
	for _, c := range intermediates {
		intermediatePool.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         rootPool,
		Intermediates: intermediatePool,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}); err != nil {
		return rejectf("verifying the signing certificate at %s failed: %w", at.UTC().Format(time.RFC3339), err)
	}
	return nil
}

// verifyLeaf checks a Fulcio-issued leaf at the Rekor integrated time, then its OIDC
// issuer and email (fulcio_cert.go in containers/image).
func (f *Fulcio) verifyLeaf(leaf *x509.Certificate, intermediates []*x509.Certificate, integratedTime time.Time) (crypto.PublicKey, error) {
	if err := verifyChain(leaf, f.Roots, intermediates, integratedTime); err != nil {
		return nil, err
	}
	issuer, err := fulcioIssuer(leaf)
	if err != nil {
		return nil, err
	}
	if issuer != f.OIDCIssuer {
		return nil, rejectf("the certificate's OIDC issuer is %q, expected %q", issuer, f.OIDCIssuer)
	}
	// Only email SANs: URI SANs (e.g. CI workflow identities) are not subjects here.
	if !slices.Contains(leaf.EmailAddresses, f.SubjectEmail) {
		return nil, rejectf("the certificate's email addresses %q do not include %q", leaf.EmailAddresses, f.SubjectEmail)
	}
	return leaf.PublicKey, nil
}

// fulcioIssuer reads the OIDC issuer from either Fulcio extension; when both are present
// they must agree.
func fulcioIssuer(cert *x509.Certificate) (string, error) {
	var v1, v2 string
	var gotV1, gotV2 bool
	for _, ext := range cert.Extensions { // Go rejects duplicate extensions when parsing
		switch {
		case ext.Id.Equal(oidFulcioIssuerV1):
			v1, gotV1 = string(ext.Value), true
		case ext.Id.Equal(oidFulcioIssuerV2):
			rest, err := asn1.Unmarshal(ext.Value, &v2)
			if err != nil {
				return "", rejectf("invalid ASN.1 in the certificate's OIDC issuer (v2) extension: %w", err)
			}
			if len(rest) != 0 {
				return "", rejectf("trailing data in the certificate's OIDC issuer (v2) extension")
			}
			gotV2 = true
		}
	}
	switch {
	case gotV1 && gotV2 && v1 != v2:
		return "", rejectf("the certificate's OIDC issuer extensions disagree: v1 %q, v2 %q", v1, v2)
	case gotV1:
		return v1, nil
	case gotV2:
		return v2, nil
	}
	return "", rejectf("the certificate has no Fulcio OIDC issuer extension")
}

// verifyLeaf checks a leaf issued by the private CA, now, with the configured subject
// (pki_cert.go in containers/image). extraIntermediates come from the signature.
func (p *PKI) verifyLeaf(leaf *x509.Certificate, extraIntermediates []*x509.Certificate, now time.Time) (crypto.PublicKey, error) {
	if p.SubjectEmail != "" && !slices.Contains(leaf.EmailAddresses, p.SubjectEmail) {
		return nil, rejectf("the certificate's email addresses %q do not include %q", leaf.EmailAddresses, p.SubjectEmail)
	}
	if p.SubjectHostname != "" {
		if err := leaf.VerifyHostname(p.SubjectHostname); err != nil {
			return nil, rejectf("the certificate does not match the subject hostname: %w", err)
		}
	}
	intermediates := append(slices.Clip(p.Intermediates), extraIntermediates...)
	if err := verifyChain(leaf, p.Roots, intermediates, now); err != nil {
		return nil, err
	}
	return leaf.PublicKey, nil
}
