package sigstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// fulcioCase describes one Fulcio-signed layer.
type fulcioCase struct {
	name           string
	leaf           leafOptions
	integratedTime time.Time // zero: testNow
	certAnnotation func(leaf *x509.Certificate, ca *testCA) string
	chain          func(ca *testCA) string // nil: intermediate + root, as cosign writes
	noChain        bool
	roots          func(ca *testCA) []*x509.Certificate // nil: the root
	want           string
}

// SPEC.md 10.5 #42.
func TestVerifyAttachmentFulcio(t *testing.T) {
	ca, rekor, key, layer, sig := newKeylessSigning(t)
	expiredLeaf := leafOptions{notBefore: testNow.Add(-2 * time.Hour), notAfter: testNow.Add(-time.Hour)}
	tests := []fulcioCase{
		{name: "valid", want: ""},
		{name: "expired now, valid at integratedTime", leaf: expiredLeaf, integratedTime: testNow.Add(-90 * time.Minute)},
		{name: "integratedTime after the validity", leaf: expiredLeaf, want: "certificate has expired or is not yet valid"},
		{name: "integratedTime before the validity", integratedTime: testNow.Add(-time.Hour), want: "certificate has expired or is not yet valid"},
		{name: "wrong issuer", leaf: leafOptions{issuerV1: strPtr("https://evil.test"), issuerV2: strPtr("https://evil.test")}, want: `OIDC issuer is "https://evil.test"`},
		{name: "issuer only in v2 (.1.8)", leaf: leafOptions{noIssuerV1: true}},
		{name: "issuer only in v1 (.1.1)", leaf: leafOptions{noIssuerV2: true}},
		{name: "v1 and v2 disagree", leaf: leafOptions{issuerV2: strPtr("https://other.test")}, want: "extensions disagree"},
		{name: "no issuer extension", leaf: leafOptions{noIssuerV1: true, noIssuerV2: true}, want: "no Fulcio OIDC issuer extension"},
		{name: "wrong email", leaf: leafOptions{emails: []string{"other@example.test"}}, want: `do not include "signer@example.test"`},
		{name: "email only as a URI SAN", leaf: leafOptions{uris: []string{"mailto:" + testEmail}}, want: `do not include "signer@example.test"`},
		{name: "no code-signing EKU", leaf: leafOptions{extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, want: "incompatible key usage"},
		{name: "two certificates in the certificate annotation",
			certAnnotation: func(leaf *x509.Certificate, ca *testCA) string { return certPEM(leaf, ca.intermediate) },
			want:           "data after its first PEM block"},
		{name: "certificate annotation with trailing text",
			certAnnotation: func(leaf *x509.Certificate, ca *testCA) string { return certPEM(leaf) + "x" },
			want:           "data after its first PEM block"},
		{name: "chain of the intermediate only (root omitted)", chain: func(ca *testCA) string { return certPEM(ca.intermediate) },
			want: "certificate signed by unknown authority"},
		{name: "no chain annotation", noChain: true, want: "certificate signed by unknown authority"},
		{name: "CA file holding the intermediate, empty chain", chain: func(*testCA) string { return "" },
			roots: func(ca *testCA) []*x509.Certificate { return []*x509.Certificate{ca.root, ca.intermediate} }},
		{name: "CA file holding only the intermediate, no chain", noChain: true,
			roots: func(ca *testCA) []*x509.Certificate { return []*x509.Certificate{ca.intermediate} }},
		{name: "leaf issued by the root, chain of root only", leaf: leafOptions{signedByRoot: true}, chain: func(ca *testCA) string { return certPEM(ca.root) }},
		{name: "untrusted CA", roots: func(*testCA) []*x509.Certificate { return newTestCA(t).Roots() }, want: "unknown authority"},
		{name: "invalid chain annotation", chain: func(*testCA) string { return "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" },
			want: "invalid dev.sigstore.cosign/chain annotation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leaf := ca.issueLeaf(t, key, tc.leaf)
			cert := certPEM(leaf)
			if tc.certAnnotation != nil {
				cert = tc.certAnnotation(leaf, ca)
			}
			when := tc.integratedTime
			if when.IsZero() {
				when = testNow
			}
			body := testsupport.JSON(t, hashedRekordBody([]byte(cert), sig, sha256Of(layer)))
			ann := map[string]string{
				AnnotationSignature:   base64.StdEncoding.EncodeToString(sig),
				AnnotationCertificate: cert,
				AnnotationBundle:      rekor.setAnnotation(t, body, when, nil),
			}
			switch {
			case tc.noChain:
			case tc.chain != nil:
				ann[AnnotationChain] = tc.chain(ca)
			default:
				ann[AnnotationChain] = certPEM(ca.intermediate, ca.root)
			}
			roots := ca.Roots()
			if tc.roots != nil {
				roots = tc.roots(ca)
			}
			trust := &Trust{
				Fulcio:    &Fulcio{Roots: roots, OIDCIssuer: testIssuer, SubjectEmail: testEmail},
				RekorKeys: []*ecdsa.PublicKey{rekor.public()},
			}
			// "now" is far from testNow: only integratedTime may matter.
			_, err := trust.VerifyAttachment(MIMETypeSimpleSigning, layer, ann, testNow.AddDate(5, 0, 0))
			checkResult(t, err, tc.want)
		})
	}
}

// Fulcio signatures fail without a Rekor entry that binds the certificate.
func TestVerifyAttachmentFulcioRekor(t *testing.T) {
	ca, rekor, key, layer, sig := newKeylessSigning(t)
	leaf := ca.issueLeaf(t, key, leafOptions{})
	other := ca.issueLeaf(t, key, leafOptions{})
	trust := &Trust{
		Fulcio:    &Fulcio{Roots: ca.Roots(), OIDCIssuer: testIssuer, SubjectEmail: testEmail},
		RekorKeys: []*ecdsa.PublicKey{rekor.public()},
	}
	base := func() map[string]string {
		return map[string]string{
			AnnotationSignature:   base64.StdEncoding.EncodeToString(sig),
			AnnotationCertificate: certPEM(leaf),
			AnnotationChain:       certPEM(ca.intermediate, ca.root),
		}
	}
	tests := []struct {
		name string
		edit func(map[string]string)
		want string
	}{
		{"no bundle", func(map[string]string) {}, "missing dev.sigstore.cosign/bundle annotation"},
		{"no certificate", func(a map[string]string) {
			a[AnnotationBundle] = rekor.setAnnotation(t, testsupport.JSON(t, hashedRekordBody([]byte(certPEM(leaf)), sig, sha256Of(layer))), testNow, nil)
			delete(a, AnnotationCertificate)
		}, "missing dev.sigstore.cosign/certificate annotation"},
		{"entry logs the public key, not the certificate", func(a map[string]string) {
			a[AnnotationBundle] = rekor.setAnnotation(t, testsupport.JSON(t, hashedRekordBody(key.publicPEM(t), sig, sha256Of(layer))), testNow, nil)
		}, "not the signer's"},
		{"entry logs another certificate of the same key", func(a map[string]string) {
			a[AnnotationBundle] = rekor.setAnnotation(t, testsupport.JSON(t, hashedRekordBody([]byte(certPEM(other)), sig, sha256Of(layer))), testNow, nil)
		}, "not the signer's"},
		{"SET by an unknown Rekor", func(a map[string]string) {
			a[AnnotationBundle] = newFakeRekor(t).setAnnotation(t, testsupport.JSON(t, hashedRekordBody([]byte(certPEM(leaf)), sig, sha256Of(layer))), testNow, nil)
		}, "does not verify with any configured Rekor public key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ann := base()
			tc.edit(ann)
			_, err := trust.VerifyAttachment(MIMETypeSimpleSigning, layer, ann, testNow)
			checkResult(t, err, tc.want)
		})
	}
}

// SPEC.md 10.5 #43.
func TestVerifyAttachmentPKI(t *testing.T) {
	ca := newTestCA(t)
	key := newECDSAKey(t, elliptic.P256())
	layer := cosignPayload(testManifestDigest)
	sig := key.sign(t, layer)
	dummy := newTestCA(t).root
	tests := []struct {
		name          string
		leaf          leafOptions
		chain         string
		intermediates []*x509.Certificate
		email, host   string
		noCert        bool
		twoCerts      bool
		want          string
	}{
		{name: "valid, email", chain: certPEM(ca.intermediate, ca.root), email: testEmail},
		{name: "valid, hostname", leaf: leafOptions{dnsNames: []string{"signer.example.test"}}, chain: certPEM(ca.intermediate, ca.root), host: "signer.example.test"},
		{name: "valid, email and hostname", leaf: leafOptions{emails: []string{testEmail}, dnsNames: []string{"signer.example.test"}},
			chain: certPEM(ca.intermediate, ca.root), email: testEmail, host: "signer.example.test"},
		{name: "hostname mismatch", leaf: leafOptions{dnsNames: []string{"signer.example.test"}}, chain: certPEM(ca.intermediate, ca.root), host: "other.example.test", want: "does not match the subject hostname"},
		{name: "email mismatch", chain: certPEM(ca.intermediate, ca.root), email: "other@example.test", want: "do not include"},
		{name: "expired now", leaf: leafOptions{notBefore: testNow.Add(-2 * time.Hour), notAfter: testNow.Add(-time.Hour)}, chain: certPEM(ca.intermediate, ca.root),
			email: testEmail, want: "certificate has expired or is not yet valid"},
		{name: "intermediates from the chain annotation with a dummy last certificate", chain: certPEM(ca.intermediate, dummy), email: testEmail},
		{name: "intermediates from the configuration", intermediates: []*x509.Certificate{ca.intermediate}, email: testEmail},
		{name: "no intermediates", email: testEmail, want: "unknown authority"},
		{name: "no certificate", noCert: true, email: testEmail, want: "missing dev.sigstore.cosign/certificate annotation"},
		{name: "two certificates in the certificate annotation", twoCerts: true, chain: certPEM(ca.intermediate, ca.root), email: testEmail,
			want: "holds 2 certificates, expected exactly one"},
		{name: "no code-signing EKU", leaf: leafOptions{extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, chain: certPEM(ca.intermediate, ca.root),
			email: testEmail, want: "incompatible key usage"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ann := map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString(sig)}
			if !tc.noCert {
				ann[AnnotationCertificate] = certPEM(ca.issueLeaf(t, key, tc.leaf))
			}
			if tc.twoCerts {
				ann[AnnotationCertificate] += certPEM(ca.intermediate)
			}
			if tc.chain != "" {
				ann[AnnotationChain] = tc.chain
			}
			trust := &Trust{PKI: &PKI{Roots: ca.Roots(), Intermediates: tc.intermediates, SubjectEmail: tc.email, SubjectHostname: tc.host}}
			_, err := trust.VerifyAttachment(MIMETypeSimpleSigning, layer, ann, testNow)
			checkResult(t, err, tc.want)
		})
	}
}
