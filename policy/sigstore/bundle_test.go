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
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// signDefault signs data with the Sigstore default algorithm of the key, as cosign v3 does
// for bundles: SHA-384 for P-384, SHA-256 for P-256 and RSA, pure Ed25519.
func (k testKey) signDefault(t testing.TB, data []byte) []byte {
	t.Helper()
	if priv, ok := k.priv.(*ecdsa.PrivateKey); ok && priv.Curve == elliptic.P384() {
		h := crypto.SHA384.New()
		h.Write(data)
		sig, err := ecdsa.SignASN1(rand.Reader, priv, h.Sum(nil))
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	return k.sign(t, data)
}

// signDigest signs a SHA-256 digest (a messageSignature).
func (k testKey) signDigest(t testing.TB, sum []byte) []byte {
	t.Helper()
	var sig []byte
	var err error
	switch priv := k.priv.(type) {
	case *ecdsa.PrivateKey:
		sig, err = ecdsa.SignASN1(rand.Reader, priv, sum)
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum)
	case ed25519.PrivateKey:
		sig = ed25519.Sign(priv, sum) // signs the digest as a message: not what a verifier expects
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// cosignStatement is the in-toto statement cosign v3 signs for an image.
func cosignStatement(d digest.Digest) []byte {
	return []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + d.Encoded() +
		`"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1"}`)
}

// testBundle builds a bundle JSON document the way protojson writes one.
type testBundle struct {
	mediaType string
	material  map[string]any // verificationMaterial without tlogEntries
	entries   []any
	content   map[string]any // {"dsseEnvelope": ...} or {"messageSignature": ...}
	extra     map[string]any // top-level keys added as is
}

func (b testBundle) json(t testing.TB) []byte {
	t.Helper()
	doc := map[string]any{"mediaType": b.mediaType}
	if b.mediaType == "" {
		doc["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.3+json"
	}
	material := map[string]any{}
	for k, v := range b.material {
		material[k] = v
	}
	if len(b.entries) > 0 {
		material["tlogEntries"] = b.entries
	}
	doc["verificationMaterial"] = material
	for k, v := range b.content {
		doc[k] = v
	}
	for k, v := range b.extra {
		doc[k] = v
	}
	return testsupport.JSON(t, doc)
}

func b64(data []byte) string { return base64.StdEncoding.EncodeToString(data) }

func keyMaterial(t testing.TB, key testKey) map[string]any {
	der, err := x509.MarshalPKIXPublicKey(key.public())
	if err != nil {
		t.Fatal(err)
	}
	hint := sha256.Sum256(der)
	return map[string]any{"publicKey": map[string]any{"hint": b64(hint[:])}}
}

func certMaterial(cert *x509.Certificate) map[string]any {
	return map[string]any{"certificate": map[string]any{"rawBytes": b64(cert.Raw)}}
}

func chainMaterial(certs ...*x509.Certificate) map[string]any {
	var list []any
	for _, c := range certs {
		list = append(list, map[string]any{"rawBytes": b64(c.Raw)})
	}
	return map[string]any{"x509CertificateChain": map[string]any{"certificates": list}}
}

func dsseContent(payloadType string, payload []byte, sigs ...[]byte) map[string]any {
	list := []any{}
	for _, s := range sigs {
		list = append(list, map[string]any{"sig": b64(s), "keyid": ""})
	}
	return map[string]any{"dsseEnvelope": map[string]any{"payload": b64(payload), "payloadType": payloadType, "signatures": list}}
}

func messageContent(sum, sig []byte) map[string]any {
	return map[string]any{"messageSignature": map[string]any{
		"messageDigest": map[string]any{"algorithm": "SHA2_256", "digest": b64(sum)},
		"signature":     b64(sig),
	}}
}

// tlogEntry returns a bundle tlog entry for body, with a SET by r (none when r is nil).
func (r *fakeRekor) tlogEntry(t testing.TB, kind string, body []byte, integratedTime time.Time) map[string]any {
	t.Helper()
	index := r.index.Add(1)
	keyID, err := hex.DecodeString(r.logID)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"logIndex":          strconv.FormatInt(index, 10),
		"logId":             map[string]any{"keyId": b64(keyID)},
		"kindVersion":       map[string]any{"kind": kind, "version": "0.0.1"},
		"integratedTime":    strconv.FormatInt(integratedTime.Unix(), 10),
		"inclusionPromise":  map[string]any{"signedEntryTimestamp": b64(r.signSET(t, body, integratedTime.Unix(), index))},
		"inclusionProof":    map[string]any{"logIndex": "1", "rootHash": b64([]byte("root")), "treeSize": "2", "hashes": []any{}, "checkpoint": map[string]any{"envelope": "x"}},
		"canonicalizedBody": b64(body),
	}
}

func TestVerifyBundle(t *testing.T) {
	ca := newTestCA(t)
	rekor := newFakeRekor(t)
	p256, p384, rsaKey, ed, other := keyOfEachKind(t)
	statement := cosignStatement(testManifestDigest)
	pae := dssePAE(inTotoPayloadType, statement)
	sig := p256.signDefault(t, pae)
	leaf := ca.issueLeaf(t, p256, leafOptions{})
	leafPEM := []byte(certPEM(leaf))
	manifestSum, _ := hex.DecodeString(testManifestDigest.Encoded())
	msgSig := p256.signDigest(t, manifestSum)

	dsseEntry := func(verifierPEM []byte, when time.Time) map[string]any {
		return rekor.tlogEntry(t, "dsse", testsupport.JSON(t, dsseBody(verifierPEM, sig, statement)), when)
	}
	keyEntry := dsseEntry(p256.publicPEM(t), testNow)
	noPromise := dsseEntry(p256.publicPEM(t), testNow)
	delete(noPromise, "inclusionPromise")
	byOtherRekor := newFakeRekor(t).tlogEntry(t, "dsse", testsupport.JSON(t, dsseBody(p256.publicPEM(t), sig, statement)), testNow)
	otherPayload := rekor.tlogEntry(t, "dsse", testsupport.JSON(t, dsseBody(p256.publicPEM(t), sig, []byte("other"))), testNow)
	hashedEntry := rekor.tlogEntry(t, "hashedrekord", testsupport.JSON(t, hashedRekordBody(p256.publicPEM(t), msgSig, manifestSum)), testNow)
	keyTrust := Trust{PublicKeys: []crypto.PublicKey{p256.public()}}
	keyRekorTrust := Trust{PublicKeys: []crypto.PublicKey{p256.public()}, RekorKeys: []*ecdsa.PublicKey{rekor.public()}}
	// A v0.3 bundle carries the leaf only: the CA file must hold the intermediate too, as
	// Fulcio's published CA bundle does.
	fulcioRoots := []*x509.Certificate{ca.root, ca.intermediate}
	fulcioTrust := Trust{Fulcio: &Fulcio{Roots: fulcioRoots, OIDCIssuer: testIssuer, SubjectEmail: testEmail}, RekorKeys: []*ecdsa.PublicKey{rekor.public()}}
	pkiTrust := Trust{PKI: &PKI{Roots: ca.Roots(), Intermediates: []*x509.Certificate{ca.intermediate}, SubjectEmail: testEmail}}
	keyDSSE := testBundle{material: keyMaterial(t, p256), content: dsseContent(inTotoPayloadType, statement, sig)}
	withKeyMaterial := func(key testKey, sig []byte) testBundle {
		return testBundle{material: keyMaterial(t, key), content: dsseContent(inTotoPayloadType, statement, sig)}
	}
	with := func(b testBundle, edit func(*testBundle)) testBundle { edit(&b); return b }
	statementBundle := func(s string) testBundle {
		return testBundle{material: keyMaterial(t, p256), content: dsseContent(inTotoPayloadType, []byte(s), p256.sign(t, dssePAE(inTotoPayloadType, []byte(s))))}
	}

	tests := []struct {
		name   string
		trust  Trust
		bundle testBundle
		raw    []byte // used instead of bundle when set
		want   string
	}{
		{name: "key, DSSE", trust: keyTrust, bundle: keyDSSE},
		{name: "key, DSSE, v0.1 media type", trust: keyTrust, bundle: with(keyDSSE, func(b *testBundle) { b.mediaType = "application/vnd.dev.sigstore.bundle+json;version=0.1" })},
		{name: "key, DSSE, v0.4 media type", trust: keyTrust, bundle: with(keyDSSE, func(b *testBundle) { b.mediaType = "application/vnd.dev.sigstore.bundle.v0.4+json" }), want: "unsupported bundle media type"},
		{name: "wrong key", trust: Trust{PublicKeys: []crypto.PublicKey{other.public()}}, bundle: keyDSSE, want: "cryptographic signature verification failed"},
		{name: "keys [wrong, right]", trust: Trust{PublicKeys: []crypto.PublicKey{other.public(), p256.public()}}, bundle: keyDSSE},
		{name: "P-384 key, SHA-384", trust: Trust{PublicKeys: []crypto.PublicKey{p384.public()}}, bundle: withKeyMaterial(p384, p384.signDefault(t, pae))},
		{name: "RSA key", trust: Trust{PublicKeys: []crypto.PublicKey{rsaKey.public()}}, bundle: withKeyMaterial(rsaKey, rsaKey.signDefault(t, pae))},
		{name: "Ed25519 key", trust: Trust{PublicKeys: []crypto.PublicKey{ed.public()}}, bundle: withKeyMaterial(ed, ed.signDefault(t, pae))},
		{name: "signature over the payload, not the PAE", trust: keyTrust, bundle: withKeyMaterial(p256, p256.sign(t, statement)), want: "cryptographic signature verification failed"},
		{name: "other payloadType", trust: keyTrust, bundle: with(keyDSSE, func(b *testBundle) { b.content = dsseContent("application/json", statement, sig) }), want: `payloadType is "application/json"`},
		{name: "two signatures", trust: keyTrust, bundle: with(keyDSSE, func(b *testBundle) { b.content = dsseContent(inTotoPayloadType, statement, sig, sig) }), want: "has 2 signatures"},
		{name: "no signature", trust: keyTrust, bundle: with(keyDSSE, func(b *testBundle) { b.content = dsseContent(inTotoPayloadType, statement) }), want: "has 0 signatures"},
		{name: "other predicateType", trust: keyTrust, bundle: statementBundle(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + testManifestDigest.Encoded() + `"}}],"predicateType":"https://slsa.dev/provenance/v1"}`), want: "predicateType"},
		{name: "statement v0.1", trust: keyTrust, bundle: statementBundle(`{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"digest":{"sha256":"` + testManifestDigest.Encoded() + `"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1"}`), want: "_type"},
		{name: "no sha256 subject", trust: keyTrust, bundle: statementBundle(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha512":"00"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1"}`), want: "no sha256 subject"},
		{name: "bad subject digest", trust: keyTrust, bundle: statementBundle(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"ABC"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1"}`), want: "subject[0].digest.sha256"},
		{name: "unknown statement key", trust: keyTrust, bundle: statementBundle(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + testManifestDigest.Encoded() + `"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","x":1}`), want: "x: unknown key"},
		{name: "unknown bundle key", trust: keyTrust, bundle: with(keyDSSE, func(b *testBundle) { b.extra = map[string]any{"extra": 1} }), want: "extra: unknown key"},
		{name: "snake_case key", trust: keyTrust, bundle: with(keyDSSE, func(b *testBundle) { b.extra = map[string]any{"dsse_envelope": 1} }), want: "unknown key"},
		{name: "both contents", trust: keyTrust, bundle: with(keyDSSE, func(b *testBundle) { b.extra = messageContent(manifestSum, msgSig) }), want: "both messageSignature and dsseEnvelope"},
		{name: "no content", trust: keyTrust, bundle: with(keyDSSE, func(b *testBundle) { b.content = nil }), want: "neither messageSignature nor dsseEnvelope"},
		{name: "no material", trust: keyTrust, bundle: with(keyDSSE, func(b *testBundle) { b.material = nil }), want: "none of publicKey"},
		{name: "two materials", trust: keyTrust, bundle: with(keyDSSE, func(b *testBundle) {
			b.material = map[string]any{"publicKey": map[string]any{}, "certificate": map[string]any{"rawBytes": b64(leaf.Raw)}}
		}), want: "more than one of"},
		{name: "chain in v0.3", trust: keyTrust, bundle: with(keyDSSE, func(b *testBundle) { b.material = chainMaterial(leaf) }), want: "not allowed in a v0.3 bundle"},
		{name: "not JSON", trust: keyTrust, raw: []byte("{"), want: "invalid Sigstore bundle"},

		{name: "key, message signature", trust: keyTrust, bundle: testBundle{material: keyMaterial(t, p256), content: messageContent(manifestSum, msgSig)}},
		{name: "message signature over another digest", trust: keyTrust, bundle: testBundle{material: keyMaterial(t, p256), content: messageContent(sha256Of([]byte("x")), msgSig)}, want: "cryptographic signature verification failed"},
		{name: "Ed25519 message signature", trust: Trust{PublicKeys: []crypto.PublicKey{ed.public()}}, bundle: testBundle{material: keyMaterial(t, ed), content: messageContent(manifestSum, ed.signDigest(t, manifestSum))}, want: "Ed25519"},
		{name: "message digest SHA2_384", trust: keyTrust, bundle: testBundle{material: keyMaterial(t, p256), content: map[string]any{"messageSignature": map[string]any{
			"messageDigest": map[string]any{"algorithm": "SHA2_384", "digest": b64(manifestSum)}, "signature": b64(msgSig)}}}, want: `algorithm "SHA2_384"`},

		{name: "key + Rekor, dsse entry", trust: keyRekorTrust, bundle: with(keyDSSE, func(b *testBundle) { b.entries = []any{keyEntry} })},
		{name: "key + Rekor, no entry", trust: keyRekorTrust, bundle: keyDSSE, want: "no Rekor entry"},
		{name: "key + Rekor, no inclusion promise", trust: keyRekorTrust, bundle: with(keyDSSE, func(b *testBundle) { b.entries = []any{noPromise} }), want: "no inclusion promise"},
		{name: "key + Rekor, SET by another Rekor", trust: keyRekorTrust, bundle: with(keyDSSE, func(b *testBundle) { b.entries = []any{byOtherRekor} }), want: "does not verify with any configured Rekor public key"},
		{name: "key + Rekor, entry for another key", trust: keyRekorTrust, bundle: with(keyDSSE, func(b *testBundle) { b.entries = []any{dsseEntry(other.publicPEM(t), testNow)} }), want: "not the signer's"},
		{name: "key + Rekor, entry for another payload", trust: keyRekorTrust, bundle: with(keyDSSE, func(b *testBundle) { b.entries = []any{otherPayload} }), want: "payloadHash"},
		{name: "key + Rekor, hashedrekord entry for DSSE content", trust: keyRekorTrust, bundle: with(keyDSSE, func(b *testBundle) { b.entries = []any{hashedEntry} }), want: `kind "hashedrekord", expected "dsse"`},
		{name: "key + Rekor, entries [bad, good]", trust: keyRekorTrust, bundle: with(keyDSSE, func(b *testBundle) { b.entries = []any{byOtherRekor, otherPayload, keyEntry} })},
		{name: "key + Rekor, message signature", trust: keyRekorTrust, bundle: testBundle{material: keyMaterial(t, p256), content: messageContent(manifestSum, msgSig), entries: []any{hashedEntry}}},

		{name: "Fulcio", trust: fulcioTrust, bundle: testBundle{material: certMaterial(leaf), content: dsseContent(inTotoPayloadType, statement, sig), entries: []any{dsseEntry(leafPEM, testNow)}}},
		{name: "Fulcio, chain in v0.2", trust: fulcioTrust, bundle: testBundle{mediaType: "application/vnd.dev.sigstore.bundle+json;version=0.2", material: chainMaterial(leaf, ca.intermediate),
			content: dsseContent(inTotoPayloadType, statement, sig), entries: []any{dsseEntry(leafPEM, testNow)}}},
		{name: "Fulcio, integratedTime outside the validity", trust: fulcioTrust, bundle: testBundle{material: certMaterial(leaf), content: dsseContent(inTotoPayloadType, statement, sig),
			entries: []any{dsseEntry(leafPEM, testNow.Add(time.Hour))}}, want: "certificate has expired or is not yet valid"},
		{name: "Fulcio, entry logs the key instead of the certificate", trust: fulcioTrust, bundle: testBundle{material: certMaterial(leaf), content: dsseContent(inTotoPayloadType, statement, sig),
			entries: []any{keyEntry}}, want: "not the signer's"},
		{name: "Fulcio, no entry", trust: fulcioTrust, bundle: testBundle{material: certMaterial(leaf), content: dsseContent(inTotoPayloadType, statement, sig)}, want: "no Rekor entry"},
		{name: "Fulcio, public key material", trust: fulcioTrust, bundle: with(keyDSSE, func(b *testBundle) { b.entries = []any{keyEntry} }), want: "has a public key, not a certificate"},
		{name: "Fulcio, CA file without the intermediate", trust: Trust{Fulcio: &Fulcio{Roots: ca.Roots(), OIDCIssuer: testIssuer, SubjectEmail: testEmail}, RekorKeys: []*ecdsa.PublicKey{rekor.public()}},
			bundle: testBundle{material: certMaterial(leaf), content: dsseContent(inTotoPayloadType, statement, sig), entries: []any{dsseEntry(leafPEM, testNow)}}, want: "unknown authority"},
		{name: "Fulcio, wrong issuer", trust: Trust{Fulcio: &Fulcio{Roots: fulcioRoots, OIDCIssuer: "https://other.test", SubjectEmail: testEmail}, RekorKeys: []*ecdsa.PublicKey{rekor.public()}},
			bundle: testBundle{material: certMaterial(leaf), content: dsseContent(inTotoPayloadType, statement, sig), entries: []any{dsseEntry(leafPEM, testNow)}}, want: "OIDC issuer"},

		{name: "PKI", trust: pkiTrust, bundle: testBundle{material: certMaterial(leaf), content: dsseContent(inTotoPayloadType, statement, sig)}},
		{name: "PKI, intermediate from the chain", trust: Trust{PKI: &PKI{Roots: ca.Roots(), SubjectEmail: testEmail}}, bundle: testBundle{mediaType: "application/vnd.dev.sigstore.bundle+json;version=0.2",
			material: chainMaterial(leaf, ca.intermediate), content: dsseContent(inTotoPayloadType, statement, sig)}},
		{name: "PKI, no intermediate", trust: Trust{PKI: &PKI{Roots: ca.Roots(), SubjectEmail: testEmail}}, bundle: testBundle{material: certMaterial(leaf),
			content: dsseContent(inTotoPayloadType, statement, sig)}, want: "unknown authority"},
		{name: "PKI, signed by another key", trust: pkiTrust, bundle: testBundle{material: certMaterial(leaf), content: dsseContent(inTotoPayloadType, statement, other.sign(t, pae))},
			want: "cryptographic signature verification failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := tc.raw
			if raw == nil {
				raw = tc.bundle.json(t)
			}
			claims, err := tc.trust.VerifyBundle(raw, testNow)
			checkResult(t, err, tc.want)
			if tc.want == "" && !slices.Equal(claims.Subjects, []digest.Digest{testManifestDigest}) {
				t.Fatalf("subjects %v, want [%s]", claims.Subjects, testManifestDigest)
			}
		})
	}
	t.Run("PKI, expired now", func(t *testing.T) {
		raw := testBundle{material: certMaterial(leaf), content: dsseContent(inTotoPayloadType, statement, sig)}.json(t)
		_, err := pkiTrust.VerifyBundle(raw, testNow.Add(time.Hour))
		checkResult(t, err, "certificate has expired")
	})
	t.Run("too large", func(t *testing.T) {
		_, err := keyTrust.VerifyBundle(make([]byte, maxBundleBytes+1), testNow)
		checkResult(t, err, "larger than")
	})
	t.Run("invalid trust", func(t *testing.T) {
		_, err := (&Trust{}).VerifyBundle(keyDSSE.json(t), testNow)
		if !errors.Is(err, ErrInvalidTrust) {
			t.Fatalf("error %v, want ErrInvalidTrust", err)
		}
	})
}

// protojson spells bytes in either base64 alphabet, with or without padding, and int64 as
// a string or a number.
func TestParseBundleProtojsonScalars(t *testing.T) {
	tests := []struct {
		name, json string
		wantBytes  []byte
		wantInt    int64
		wantErr    bool
	}{
		{name: "standard padded", json: `"+/8="`, wantBytes: []byte{0xfb, 0xff}},
		{name: "standard unpadded", json: `"+/8"`, wantBytes: []byte{0xfb, 0xff}},
		{name: "URL unpadded", json: `"-_8"`, wantBytes: []byte{0xfb, 0xff}},
		{name: "URL padded", json: `"-_8="`, wantBytes: []byte{0xfb, 0xff}},
		{name: "not base64", json: `"%"`, wantErr: true},
		{name: "null bytes", json: `null`, wantErr: true},
		{name: "number as bytes", json: `1`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run("bytes "+tc.name, func(t *testing.T) {
			if b, ok := unmarshalAs[pbBytes](t, tc.json, tc.wantErr); ok && !slices.Equal([]byte(b), tc.wantBytes) {
				t.Fatalf("got %x, want %x", []byte(b), tc.wantBytes)
			}
		})
	}
	ints := []struct {
		json    string
		want    int64
		wantErr bool
	}{
		{json: `"1700000000"`, want: 1700000000},
		{json: `1700000000`, want: 1700000000},
		{json: `"-3"`, want: -3},
		{json: `"9223372036854775808"`, wantErr: true},
		{json: `"1.5"`, wantErr: true},
		{json: `"x"`, wantErr: true},
		{json: `true`, wantErr: true},
	}
	for _, tc := range ints {
		t.Run("int64 "+tc.json, func(t *testing.T) {
			if n, ok := unmarshalAs[pbInt64](t, tc.json, tc.wantErr); ok && int64(n) != tc.want {
				t.Fatalf("got %d, want %d", n, tc.want)
			}
		})
	}
}

// unmarshalAs decodes s into a T, failing t unless it fails exactly when wantErr says;
// it reports whether it decoded.
func unmarshalAs[T any](t *testing.T, s string, wantErr bool) (T, bool) {
	t.Helper()
	var v T
	err := json.Unmarshal([]byte(s), &v)
	if wantErr != (err != nil) {
		t.Fatalf("error %v, want error %v", err, wantErr)
	}
	return v, err == nil
}
