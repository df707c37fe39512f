package sigstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"testing"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// BenchmarkVerifyAttachmentKey is one cosign-default signature (ECDSA P-256) checked
// against one public key, payload parsing included.
func BenchmarkVerifyAttachmentKey(b *testing.B) {
	key := newECDSAKey(b, elliptic.P256())
	signed := signWithKey(b, key, nil)
	trust := &Trust{PublicKeys: []crypto.PublicKey{key.public()}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := trust.VerifyAttachment(MIMETypeSimpleSigning, signed.payload, signed.annotations, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyAttachmentFulcioRekor is one keyless signature: Rekor SET, entry body,
// certificate chain (leaf, intermediate, root), issuer, email, signature and payload.
func BenchmarkVerifyAttachmentFulcioRekor(b *testing.B) {
	ca, rekor, key, layer, sig := newKeylessSigning(b)
	leaf := certPEM(ca.issueLeaf(b, key, leafOptions{}))
	ann := map[string]string{
		AnnotationSignature:   base64.StdEncoding.EncodeToString(sig),
		AnnotationCertificate: leaf,
		AnnotationChain:       certPEM(ca.intermediate, ca.root),
		AnnotationBundle:      rekor.setAnnotation(b, testsupport.JSON(b, hashedRekordBody([]byte(leaf), sig, sha256Of(layer))), testNow, nil),
	}
	trust := &Trust{
		Fulcio:    &Fulcio{Roots: ca.Roots(), OIDCIssuer: testIssuer, SubjectEmail: testEmail},
		RekorKeys: []*ecdsa.PublicKey{rekor.public()},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := trust.VerifyAttachment(MIMETypeSimpleSigning, layer, ann, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyBundleKey is one cosign v3 bundle (DSSE, ECDSA P-256) against one key.
func BenchmarkVerifyBundleKey(b *testing.B) {
	key := newECDSAKey(b, elliptic.P256())
	statement := cosignStatement(testManifestDigest)
	bundle := testBundle{material: keyMaterial(b, key), content: dsseContent(inTotoPayloadType, statement, key.signDefault(b, dssePAE(inTotoPayloadType, statement)))}.json(b)
	trust := &Trust{PublicKeys: []crypto.PublicKey{key.public()}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := trust.VerifyBundle(bundle, testNow); err != nil {
			b.Fatal(err)
		}
	}
}
