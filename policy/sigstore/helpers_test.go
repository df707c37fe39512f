package sigstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// Everything a test signs with is made here, in memory: keys of each type, a CA with an
// intermediate, Fulcio-like leaves, and a fake Rekor whose key signs SETs.

const (
	testIssuer = "https://issuer.example.test"
	testEmail  = "signer@example.test"
)

// testNow is the reference time of the tests; certificates are built around it.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testManifestDigest is the image digest the test payloads sign.
var testManifestDigest = digest.FromString("a test manifest")

// cosignPayload is a payload as cosign writes it: repository identity, optional null.
func cosignPayload(d digest.Digest) []byte {
	return []byte(`{"critical":{"identity":{"docker-reference":"index.docker.io/library/busybox"},"image":{"docker-manifest-digest":"` +
		d.String() + `"},"type":"cosign container image signature"},"optional":null}`)
}

// testKey is a private key with the signing rule containers/image expects for .sig layers.
type testKey struct {
	name string
	priv crypto.Signer
}

func (k testKey) public() crypto.PublicKey { return k.priv.Public() }

// sign signs data as cosign does for the key type: SHA-256 for ECDSA and RSA (PKCS#1 v1.5),
// pure Ed25519.
func (k testKey) sign(t testing.TB, data []byte) []byte {
	t.Helper()
	var sig []byte
	var err error
	switch priv := k.priv.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(priv, data)
	case *ecdsa.PrivateKey:
		sum := sha256.Sum256(data)
		sig, err = ecdsa.SignASN1(rand.Reader, priv, sum[:])
	case *rsa.PrivateKey:
		sum := sha256.Sum256(data)
		sig, err = rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func (k testKey) publicPEM(t testing.TB) []byte {
	t.Helper()
	return testsupport.PublicKeyPEM(t, k.public())
}

func newECDSAKey(t testing.TB, curve elliptic.Curve) testKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{name: "ECDSA " + curve.Params().Name, priv: priv}
}

func newRSAKey(t testing.TB) testKey {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{name: "RSA-2048", priv: priv}
}

func newEd25519Key(t testing.TB) testKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{name: "Ed25519", priv: priv}
}

// keyOfEachKind returns one key of every kind cosign signs with (ECDSA P-256 and P-384,
// RSA-2048, Ed25519) and a second P-256 key that signs nothing, for the wrong-key rows.
func keyOfEachKind(t testing.TB) (p256, p384, rsaKey, ed, other testKey) {
	t.Helper()
	return newECDSAKey(t, elliptic.P256()), newECDSAKey(t, elliptic.P384()), newRSAKey(t),
		newEd25519Key(t), newECDSAKey(t, elliptic.P256())
}

// testCA is a root and an intermediate, as Fulcio has.
type testCA struct {
	root, intermediate       *x509.Certificate
	rootKey, intermediateKey *ecdsa.PrivateKey
	serial                   atomic.Int64
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	return newTestCAAround(t, testNow)
}

// newTestCAAround makes a CA valid from a year before center to a year after.
func newTestCAAround(t testing.TB, center time.Time) *testCA {
	t.Helper()
	ca := &testCA{}
	ca.rootKey = newECDSAKey(t, elliptic.P256()).priv.(*ecdsa.PrivateKey)
	ca.intermediateKey = newECDSAKey(t, elliptic.P256()).priv.(*ecdsa.PrivateKey)
	validity := func(tmpl *x509.Certificate) {
		tmpl.NotBefore = center.AddDate(-1, 0, 0)
		tmpl.NotAfter = center.AddDate(1, 0, 0)
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage = x509.KeyUsageCertSign
	}
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial.Add(1)), Subject: pkix.Name{CommonName: "test root"}}
	validity(rootTmpl)
	ca.root = testsupport.CreateCert(t, rootTmpl, rootTmpl, &ca.rootKey.PublicKey, ca.rootKey)
	intTmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial.Add(1)), Subject: pkix.Name{CommonName: "test intermediate"}}
	validity(intTmpl)
	intTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	ca.intermediate = testsupport.CreateCert(t, intTmpl, ca.root, &ca.intermediateKey.PublicKey, ca.rootKey)
	return ca
}

// leafOptions describe a leaf; the zero value is a valid Fulcio-like leaf for testEmail,
// with both issuer extensions naming testIssuer, valid for ten minutes around testNow.
type leafOptions struct {
	emails              []string
	uris                []string
	dnsNames            []string
	issuerV1, issuerV2  *string
	noIssuerV1          bool
	noIssuerV2          bool
	notBefore, notAfter time.Time
	extKeyUsage         []x509.ExtKeyUsage
	signedByRoot        bool
}

func strPtr(s string) *string { return &s }

func (ca *testCA) issueLeaf(t testing.TB, key testKey, o leafOptions) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:   big.NewInt(ca.serial.Add(1)),
		EmailAddresses: o.emails,
		DNSNames:       o.dnsNames,
		NotBefore:      o.notBefore,
		NotAfter:       o.notAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    o.extKeyUsage,
	}
	if tmpl.EmailAddresses == nil && o.uris == nil && o.dnsNames == nil {
		tmpl.EmailAddresses = []string{testEmail}
	}
	for _, u := range o.uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = testNow.Add(-5 * time.Minute)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = testNow.Add(5 * time.Minute)
	}
	if tmpl.ExtKeyUsage == nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	}
	v1, v2 := testIssuer, testIssuer
	if o.issuerV1 != nil {
		v1 = *o.issuerV1
	}
	if o.issuerV2 != nil {
		v2 = *o.issuerV2
	}
	if !o.noIssuerV1 {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidFulcioIssuerV1, Value: []byte(v1)})
	}
	if !o.noIssuerV2 {
		der, err := asn1.MarshalWithParams(v2, "utf8")
		if err != nil {
			t.Fatal(err)
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidFulcioIssuerV2, Value: der})
	}
	parent, parentKey := ca.intermediate, ca.intermediateKey
	if o.signedByRoot {
		parent, parentKey = ca.root, ca.rootKey
	}
	return testsupport.CreateCert(t, tmpl, parent, key.public(), parentKey)
}

func certPEM(certs ...*x509.Certificate) string {
	var b strings.Builder
	for _, c := range certs {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return b.String()
}

// fakeRekor signs entries with its own key, as Rekor's SETs.
type fakeRekor struct {
	key   *ecdsa.PrivateKey
	logID string
	index atomic.Int64
}

func newFakeRekor(t testing.TB) *fakeRekor {
	t.Helper()
	key := newECDSAKey(t, elliptic.P256()).priv.(*ecdsa.PrivateKey)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	id := sha256.Sum256(der)
	return &fakeRekor{key: key, logID: hex.EncodeToString(id[:])}
}

func (r *fakeRekor) public() *ecdsa.PublicKey { return &r.key.PublicKey }

// hashedRekordBody is a canonicalized hashedrekord 0.0.1 entry as Rekor stores it.
func hashedRekordBody(verifierPEM, sig []byte, dataSHA256 []byte) map[string]any {
	return map[string]any{
		"apiVersion": "0.0.1",
		"kind":       "hashedrekord",
		"spec": map[string]any{
			"data": map[string]any{"hash": map[string]any{"algorithm": "sha256", "value": hex.EncodeToString(dataSHA256)}},
			"signature": map[string]any{
				"content":   base64.StdEncoding.EncodeToString(sig),
				"publicKey": map[string]any{"content": base64.StdEncoding.EncodeToString(verifierPEM)},
			},
		},
	}
}

// dsseBody is a canonicalized dsse 0.0.1 entry as Rekor stores it.
func dsseBody(verifierPEM, sig, payload []byte) map[string]any {
	payloadSum := sha256.Sum256(payload)
	envelopeSum := sha256.Sum256([]byte("the envelope as uploaded"))
	return map[string]any{
		"apiVersion": "0.0.1",
		"kind":       "dsse",
		"spec": map[string]any{
			"envelopeHash": map[string]any{"algorithm": "sha256", "value": hex.EncodeToString(envelopeSum[:])},
			"payloadHash":  map[string]any{"algorithm": "sha256", "value": hex.EncodeToString(payloadSum[:])},
			"signatures": []any{map[string]any{
				"signature": base64.StdEncoding.EncodeToString(sig),
				"verifier":  base64.StdEncoding.EncodeToString(verifierPEM),
			}},
		},
	}
}

// signSET returns a Rekor signature over the canonical SET payload of (body, time, index).
func (r *fakeRekor) signSET(t testing.TB, body []byte, integratedTime, logIndex int64) []byte {
	t.Helper()
	p := rekorPayload{
		Body:           base64.StdEncoding.EncodeToString(body),
		IntegratedTime: newJSONInteger(integratedTime),
		LogIndex:       newJSONInteger(logIndex),
		LogID:          r.logID,
	}
	// Written out independently of rekorPayload.canonical, to test it.
	canonical := fmt.Sprintf(`{"body":%q,"integratedTime":%d,"logID":%q,"logIndex":%d}`, p.Body, integratedTime, p.LogID, logIndex)
	if string(p.canonical()) != canonical {
		t.Fatalf("canonical form %s, want %s", p.canonical(), canonical)
	}
	sum := sha256.Sum256([]byte(canonical))
	set, err := ecdsa.SignASN1(rand.Reader, r.key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// setAnnotation returns a dev.sigstore.cosign/bundle annotation for body, as cosign writes
// it. edit, if not nil, may change the decoded annotation after signing.
func (r *fakeRekor) setAnnotation(t testing.TB, body []byte, integratedTime time.Time, edit func(map[string]any)) string {
	t.Helper()
	index := r.index.Add(1)
	set := r.signSET(t, body, integratedTime.Unix(), index)
	payload := map[string]any{
		"body":           base64.StdEncoding.EncodeToString(body),
		"integratedTime": integratedTime.Unix(),
		"logIndex":       index,
		"logID":          r.logID,
	}
	annotation := map[string]any{"SignedEntryTimestamp": set, "Payload": payload}
	if edit != nil {
		edit(annotation)
	}
	return string(testsupport.JSON(t, annotation))
}

// newKeylessSigning is the set-up of a keyless signature test: a CA, a fake Rekor, and a
// P-256 key with its signature of the test payload (layer).
func newKeylessSigning(t testing.TB) (ca *testCA, rekor *fakeRekor, key testKey, layer, sig []byte) {
	t.Helper()
	ca = newTestCA(t)
	rekor = newFakeRekor(t)
	key = newECDSAKey(t, elliptic.P256())
	layer = cosignPayload(testManifestDigest)
	return ca, rekor, key, layer, key.sign(t, layer)
}

// signedLayer is a .sig layer: the payload and its annotations.
type signedLayer struct {
	payload     []byte
	annotations map[string]string
}

// signWithKey signs the test payload with key, with a Rekor entry when rekor is not nil.
func signWithKey(t testing.TB, key testKey, rekor *fakeRekor) signedLayer {
	t.Helper()
	layer := cosignPayload(testManifestDigest)
	sig := key.sign(t, layer)
	ann := map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString(sig)}
	if rekor != nil {
		sum := sha256.Sum256(layer)
		body := testsupport.JSON(t, hashedRekordBody(key.publicPEM(t), sig, sum[:]))
		ann[AnnotationBundle] = rekor.setAnnotation(t, body, testNow, nil)
	}
	return signedLayer{payload: layer, annotations: ann}
}

// checkResult fails unless err is a rejection mentioning want (or nil when want is "").
func checkResult(t *testing.T, err error, want string) {
	t.Helper()
	if testsupport.WantErr(t, err, want) {
		return
	}
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("error %v does not wrap ErrRejected", err)
	}
	t.Logf("rejected as expected: %v", err)
}
