package harness

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// Offline stand-ins for Fulcio and Rekor, made inside the test (no network): a CA with
// an intermediate that issues Fulcio-like leaves, and a Rekor key that signs entries
// (SETs) the way cosign stores them in the dev.sigstore.cosign/bundle annotation
// (SPEC.md 5.4). policy/sigstore's tests build the same things for its unit tests.

// Fulcio's issuer extensions: 1.1 holds the issuer as raw bytes, 1.8 as a DER UTF8String.
var (
	oidFulcioIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidFulcioIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// TestCA is a root and an intermediate, as Fulcio has, valid a year either side of now.
type TestCA struct {
	Root, Intermediate       *x509.Certificate
	rootKey, intermediateKey *ecdsa.PrivateKey
	serial                   atomic.Int64
}

// NewTestCA makes the CA.
func NewTestCA(t testing.TB) *TestCA {
	t.Helper()
	ca := &TestCA{rootKey: NewECDSAKey(t), intermediateKey: NewECDSAKey(t)}
	now := time.Now()
	tmpl := func(cn string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(ca.serial.Add(1)), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.AddDate(1, 0, 0),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	root := tmpl("pullgate test root")
	ca.Root = testsupport.CreateCert(t, root, root, &ca.rootKey.PublicKey, ca.rootKey)
	inter := tmpl("pullgate test intermediate")
	inter.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	ca.Intermediate = testsupport.CreateCert(t, inter, ca.Root, &ca.intermediateKey.PublicKey, ca.rootKey)
	return ca
}

// Leaf describes a Fulcio-like leaf certificate.
type Leaf struct {
	// Email is the e-mail SAN; Issuer goes into both issuer extensions.
	Email, Issuer string
	// NotBefore and NotAfter bound its validity.
	NotBefore, NotAfter time.Time
}

// IssueLeaf issues a code-signing leaf for key from the intermediate.
func (ca *TestCA) IssueLeaf(t testing.TB, key crypto.Signer, l Leaf) *x509.Certificate {
	t.Helper()
	issuerV2, err := asn1.MarshalWithParams(l.Issuer, "utf8")
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:   big.NewInt(ca.serial.Add(1)),
		EmailAddresses: []string{l.Email},
		NotBefore:      l.NotBefore,
		NotAfter:       l.NotAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: []pkix.Extension{
			{Id: oidFulcioIssuerV1, Value: []byte(l.Issuer)},
			{Id: oidFulcioIssuerV2, Value: issuerV2},
		},
	}
	return testsupport.CreateCert(t, tmpl, ca.Intermediate, key.Public(), ca.intermediateKey)
}

// NewECDSAKey makes a P-256 key, cosign's default.
func NewECDSAKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// CertsPEM encodes certificates as concatenated PEM blocks.
func CertsPEM(certs ...*x509.Certificate) []byte {
	var b strings.Builder
	for _, c := range certs {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return []byte(b.String())
}

// PrivateKeyPEM encodes a private key as PKCS#8 PEM (what cosign import-key-pair reads).
func PrivateKeyPEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// FakeRekor signs Rekor entries with its own key, offline.
type FakeRekor struct {
	key   *ecdsa.PrivateKey
	logID string
	index atomic.Int64
}

// NewFakeRekor makes the log key; its log ID is the SHA-256 of the public key, as Rekor's.
func NewFakeRekor(t testing.TB) *FakeRekor {
	t.Helper()
	key := NewECDSAKey(t)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	id := sha256.Sum256(der)
	return &FakeRekor{key: key, logID: hex.EncodeToString(id[:])}
}

// PublicKeyPEM is the key a policy's rekorPublicKeyPath names.
func (r *FakeRekor) PublicKeyPEM(t testing.TB) []byte {
	t.Helper()
	return testsupport.PublicKeyPEM(t, &r.key.PublicKey)
}

// BundleAnnotation returns the dev.sigstore.cosign/bundle annotation cosign would have
// written had it uploaded this .sig layer to Rekor: a hashedrekord 0.0.1 entry binding
// the payload's SHA-256, the signature and the signer (verifierPEM: the certificate, or
// the public key), logged at integratedTime, with the SET over its canonical form.
func (r *FakeRekor) BundleAnnotation(t testing.TB, verifierPEM, signature, payload []byte, integratedTime time.Time) string {
	t.Helper()
	sum := sha256.Sum256(payload)
	body := testsupport.JSON(t, map[string]any{ // encoding/json sorts keys: canonical as Rekor stores it
		"apiVersion": "0.0.1",
		"kind":       "hashedrekord",
		"spec": map[string]any{
			"data": map[string]any{"hash": map[string]any{"algorithm": "sha256", "value": hex.EncodeToString(sum[:])}},
			"signature": map[string]any{
				"content":   base64.StdEncoding.EncodeToString(signature),
				"publicKey": map[string]any{"content": base64.StdEncoding.EncodeToString(verifierPEM)},
			},
		},
	})
	index := r.index.Add(1)
	encodedBody := base64.StdEncoding.EncodeToString(body)
	// The SET signs the RFC 8785 form of the payload: keys sorted, no spaces.
	canonical := fmt.Sprintf(`{"body":%q,"integratedTime":%d,"logID":%q,"logIndex":%d}`,
		encodedBody, integratedTime.Unix(), r.logID, index)
	digest := sha256.Sum256([]byte(canonical))
	set, err := ecdsa.SignASN1(rand.Reader, r.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return string(testsupport.JSON(t, map[string]any{
		"SignedEntryTimestamp": set, // []byte: standard base64
		"Payload": map[string]any{
			"body":           encodedBody,
			"integratedTime": integratedTime.Unix(),
			"logIndex":       index,
			"logID":          r.logID,
		},
	}))
}
