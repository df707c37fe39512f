package sigstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"maps"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// SPEC.md 10.5 #37: every layer of a .sig manifest is a candidate; other media types are
// skipped, a bad signature is rejected, and a valid one is accepted.
func TestVerifyAttachmentLayers(t *testing.T) {
	key := newECDSAKey(t, elliptic.P256())
	trust := &Trust{PublicKeys: []crypto.PublicKey{key.public()}}
	valid := signWithKey(t, key, nil)
	bad := signWithKey(t, newECDSAKey(t, elliptic.P256()), nil)

	_, err := trust.VerifyAttachment("application/vnd.dsse.envelope.v1+json", valid.payload, valid.annotations, testNow)
	if !errors.Is(err, ErrNotSignatureLayer) || !errors.Is(err, ErrRejected) {
		t.Errorf("DSSE layer: error %v, want ErrNotSignatureLayer and ErrRejected", err)
	}
	_, err = trust.VerifyAttachment(MIMETypeSimpleSigning, bad.payload, bad.annotations, testNow)
	checkResult(t, err, "cryptographic signature verification failed")
	if errors.Is(err, ErrNotSignatureLayer) {
		t.Errorf("a bad signature is reported as a skipped layer")
	}
	claims, err := trust.VerifyAttachment(MIMETypeSimpleSigning, valid.payload, valid.annotations, testNow)
	checkResult(t, err, "")
	// SPEC.md 10.5 #44: the digest signed is returned for the caller to compare.
	if claims.ManifestDigest != testManifestDigest || claims.DockerReference != "index.docker.io/library/busybox" {
		t.Errorf("claims %+v do not match the payload", claims)
	}
}

// SPEC.md 10.5 #38-39 and payload strictness.
func TestVerifyAttachmentPublicKeys(t *testing.T) {
	p256, p384, rsaKey, ed, other := keyOfEachKind(t)
	layer := cosignPayload(testManifestDigest)
	sigAnnotation := func(sig []byte) map[string]string {
		return map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString(sig)}
	}
	firstOfTwo, err := ParsePublicKey(append(other.publicPEM(t), p256.publicPEM(t)...))
	if err != nil {
		t.Fatal(err)
	}
	rsaPSS, err := rsa.SignPSS(rand.Reader, rsaKey.priv.(*rsa.PrivateKey), crypto.SHA256, sha256Of(layer), nil)
	if err != nil {
		t.Fatal(err)
	}
	sum384 := sha512.Sum384(layer)
	p384SHA384, err := ecdsa.SignASN1(rand.Reader, p384.priv.(*ecdsa.PrivateKey), sum384[:])
	if err != nil {
		t.Fatal(err)
	}
	otherType := []byte(`{"critical":{"identity":{"docker-reference":"x"},"image":{"docker-manifest-digest":"` + testManifestDigest.String() +
		`"},"type":"atomic container signature"},"optional":null}`)
	extraKey := []byte(`{"critical":{"identity":{"docker-reference":"x"},"image":{"docker-manifest-digest":"` + testManifestDigest.String() +
		`"},"type":"cosign container image signature","extra":1},"optional":null}`)
	withOptional := []byte(`{"critical":{"identity":{"docker-reference":"x"},"image":{"docker-manifest-digest":"` + testManifestDigest.String() +
		`"},"type":"cosign container image signature"},"optional":{"creator":"me","timestamp":1700000000,"tag":"v1"}}`)

	tests := []struct {
		name        string
		keys        []crypto.PublicKey
		layer       []byte
		annotations map[string]string
		want        string // "" accepts; else a part of the rejection
	}{
		{"ECDSA P-256", []crypto.PublicKey{p256.public()}, layer, sigAnnotation(p256.sign(t, layer)), ""},
		{"ECDSA P-384 over SHA-256", []crypto.PublicKey{p384.public()}, layer, sigAnnotation(p384.sign(t, layer)), ""},
		// cosign signs with SHA-384 for P-384 keys; containers/image hashes with SHA-256 only.
		{"ECDSA P-384 over SHA-384", []crypto.PublicKey{p384.public()}, layer, sigAnnotation(p384SHA384), "cryptographic signature verification failed"},
		{"RSA-2048 PKCS#1 v1.5", []crypto.PublicKey{rsaKey.public()}, layer, sigAnnotation(rsaKey.sign(t, layer)), ""},
		{"RSA-2048 PSS", []crypto.PublicKey{rsaKey.public()}, layer, sigAnnotation(rsaPSS), ""},
		{"Ed25519", []crypto.PublicKey{ed.public()}, layer, sigAnnotation(ed.sign(t, layer)), ""},
		{"wrong key", []crypto.PublicKey{other.public()}, layer, sigAnnotation(p256.sign(t, layer)), "cryptographic signature verification failed"},
		{"keys [wrong, right]", []crypto.PublicKey{other.public(), p256.public()}, layer, sigAnnotation(p256.sign(t, layer)), ""},
		{"keys [wrong, wrong]", []crypto.PublicKey{other.public(), ed.public()}, layer, sigAnnotation(p256.sign(t, layer)), "each of the 2 candidate public keys"},
		{"PEM with two keys, the second signed", []crypto.PublicKey{firstOfTwo}, layer, sigAnnotation(p256.sign(t, layer)), "cryptographic signature verification failed"},
		{"missing signature annotation", []crypto.PublicKey{p256.public()}, layer, map[string]string{}, "missing dev.cosignproject.cosign/signature annotation"},
		{"invalid base64", []crypto.PublicKey{p256.public()}, layer, map[string]string{AnnotationSignature: "not base64!"}, "invalid base64"},
		{"URL-safe base64", []crypto.PublicKey{p256.public()}, layer, map[string]string{AnnotationSignature: base64.URLEncoding.EncodeToString(p256.sign(t, layer)) + "_-"}, "invalid base64"},
		{"empty signature", []crypto.PublicKey{p256.public()}, layer, map[string]string{AnnotationSignature: ""}, "cryptographic signature verification failed"},
		{"signature over other bytes", []crypto.PublicKey{p256.public()}, layer, sigAnnotation(p256.sign(t, cosignPayload(digest.FromString("other")))), "cryptographic signature verification failed"},
		{"payload type of simple signing", []crypto.PublicKey{p256.public()}, otherType, sigAnnotation(p256.sign(t, otherType)), "invalid signature payload"},
		{"payload with an unknown critical key", []crypto.PublicKey{p256.public()}, extraKey, sigAnnotation(p256.sign(t, extraKey)), "unknown key"},
		{"payload with optional fields", []crypto.PublicKey{p256.public()}, withOptional, sigAnnotation(p256.sign(t, withOptional)), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			trust := &Trust{PublicKeys: tc.keys}
			_, err := trust.VerifyAttachment(MIMETypeSimpleSigning, tc.layer, tc.annotations, testNow)
			checkResult(t, err, tc.want)
		})
	}
}

func sha256Of(data []byte) []byte {
	sum := sha256.Sum256(data)
	return sum[:]
}

// SPEC.md 10.5 #41: public keys with a Rekor key require a SET that binds this signature.
func TestVerifyAttachmentRekorSET(t *testing.T) {
	key := newECDSAKey(t, elliptic.P256())
	other := newECDSAKey(t, elliptic.P256())
	rekor := newFakeRekor(t)
	otherRekor := newFakeRekor(t)
	layer := cosignPayload(testManifestDigest)
	sig := key.sign(t, layer)
	base := map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString(sig)}
	withSET := func(body map[string]any, signer *fakeRekor, edit func(map[string]any)) map[string]string {
		ann := maps.Clone(base)
		ann[AnnotationBundle] = signer.setAnnotation(t, testsupport.JSON(t, body), testNow, edit)
		return ann
	}
	good := hashedRekordBody(key.publicPEM(t), sig, sha256Of(layer))
	editSpec := func(edit func(spec map[string]any)) map[string]any {
		body := hashedRekordBody(key.publicPEM(t), sig, sha256Of(layer))
		edit(body["spec"].(map[string]any))
		return body
	}
	editBody := func(k, v string) map[string]any {
		body := hashedRekordBody(key.publicPEM(t), sig, sha256Of(layer))
		body[k] = v
		return body
	}
	tests := []struct {
		name        string
		keys        []crypto.PublicKey
		rekorKeys   []*ecdsa.PublicKey
		annotations map[string]string
		want        string
	}{
		{"valid", nil, nil, withSET(good, rekor, nil), ""},
		{"bundle missing", nil, nil, base, "missing dev.sigstore.cosign/bundle annotation"},
		{"SET by another Rekor key", nil, nil, withSET(good, otherRekor, nil), "does not verify with any configured Rekor public key"},
		{"second configured Rekor key signed", nil, []*ecdsa.PublicKey{otherRekor.public(), rekor.public()}, withSET(good, rekor, nil), ""},
		{"body publicKey is another key", nil, nil, withSET(hashedRekordBody(other.publicPEM(t), sig, sha256Of(layer)), rekor, nil), "not the signer's"},
		{"body signature differs", nil, nil, withSET(hashedRekordBody(key.publicPEM(t), key.sign(t, layer), sha256Of(layer)), rekor, nil), "signature recorded in the Rekor entry does not match"},
		{"body hash differs", nil, nil, withSET(hashedRekordBody(key.publicPEM(t), sig, sha256Of([]byte("x"))), rekor, nil), "is not the hash of the signed data"},
		{"body hash algorithm sha512", nil, nil, withSET(editSpec(func(s map[string]any) {
			s["data"] = map[string]any{"hash": map[string]any{"algorithm": "sha512", "value": "00"}}
		}), rekor, nil), `unexpected data.hash.algorithm "sha512"`},
		{"apiVersion 0.0.2", nil, nil, withSET(editBody("apiVersion", "0.0.2"), rekor, nil), `version "0.0.2"`},
		{"kind rekord", nil, nil, withSET(editBody("kind", "rekord"), rekor, nil), `kind "rekord"`},
		{"body publicKey with trailing data", nil, nil, withSET(hashedRekordBody(append(key.publicPEM(t), "x"...), sig, sha256Of(layer)), rekor, nil), "trailing data"},
		{"body with an unknown key", nil, nil, withSET(editSpec(func(s map[string]any) { s["extra"] = 1 }), rekor, nil), "unknown key"},
		{"extra field in Payload", nil, nil, withSET(good, rekor, func(a map[string]any) { a["Payload"].(map[string]any)["extra"] = 1 }), "Payload.extra: unknown key"},
		{"missing logID in Payload", nil, nil, withSET(good, rekor, func(a map[string]any) { delete(a["Payload"].(map[string]any), "logID") }), `missing required key "logID"`},
		{"extra field in the annotation", nil, nil, withSET(good, rekor, func(a map[string]any) { a["Extra"] = 1 }), "Extra: unknown key"},
		{"integratedTime changed after signing", nil, nil, withSET(good, rekor, func(a map[string]any) {
			a["Payload"].(map[string]any)["integratedTime"] = testNow.Unix() + 1
		}), "does not verify"},
		{"integratedTime as a string", nil, nil, withSET(good, rekor, func(a map[string]any) {
			a["Payload"].(map[string]any)["integratedTime"] = "1"
		}), "expected an integer"},
		{"integratedTime as a fraction", nil, nil, withSET(good, rekor, func(a map[string]any) {
			a["Payload"].(map[string]any)["integratedTime"] = 1.5
		}), "fraction"},
		{"body not base64", nil, nil, withSET(good, rekor, func(a map[string]any) { a["Payload"].(map[string]any)["body"] = "%%" }), "does not verify"},
		{"SignedEntryTimestamp not base64", nil, nil, withSET(good, rekor, func(a map[string]any) { a["SignedEntryTimestamp"] = "%%" }), "SignedEntryTimestamp"},
		{"keys [wrong, right]", []crypto.PublicKey{other.public(), key.public()}, nil, withSET(good, rekor, nil), ""},
		{"keys [wrong, wrong]", []crypto.PublicKey{other.public(), newEd25519Key(t).public()}, nil, withSET(good, rekor, nil), "matches none of the 2 configured public keys"},
		{"Rekor-matched key is the only candidate", []crypto.PublicKey{key.public(), other.public()}, nil,
			withSET(hashedRekordBody(key.publicPEM(t), sig, sha256Of(layer)), rekor, nil), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys := tc.keys
			if keys == nil {
				keys = []crypto.PublicKey{key.public()}
			}
			rekorKeys := tc.rekorKeys
			if rekorKeys == nil {
				rekorKeys = []*ecdsa.PublicKey{rekor.public()}
			}
			trust := &Trust{PublicKeys: keys, RekorKeys: rekorKeys}
			_, err := trust.VerifyAttachment(MIMETypeSimpleSigning, layer, tc.annotations, testNow)
			checkResult(t, err, tc.want)
		})
	}
}

// The SET covers the canonical form of Payload, so how the annotation spells it does not
// matter: key order, spacing, escapes and number forms that canonicalize identically.
func TestVerifyAttachmentSETSpelling(t *testing.T) {
	key := newECDSAKey(t, elliptic.P256())
	rekor := newFakeRekor(t)
	rekor.logID = `log"\/é` // not checked against the key; exercises string canonicalization
	layer := cosignPayload(testManifestDigest)
	sig := key.sign(t, layer)
	body := testsupport.JSON(t, hashedRekordBody(key.publicPEM(t), sig, sha256Of(layer)))
	b64Body := base64.StdEncoding.EncodeToString(body)
	set := base64.StdEncoding.EncodeToString(rekor.signSET(t, body, 1700000000, 42))
	trust := &Trust{PublicKeys: []crypto.PublicKey{key.public()}, RekorKeys: []*ecdsa.PublicKey{rekor.public()}}
	const logID = `"log\"\\/é"`
	tests := []struct {
		name, annotation, want string
	}{
		{"canonical", `{"SignedEntryTimestamp":"` + set + `","Payload":{"body":"` + b64Body + `","integratedTime":1700000000,"logID":` + logID + `,"logIndex":42}}`, ""},
		{"reordered and spaced", "{ \"Payload\" : {\n \"logIndex\": 42, \"logID\": " + logID + ", \"integratedTime\": 1700000000, \"body\": \"" + b64Body + "\" },\t\"SignedEntryTimestamp\": \"" + set + "\" }", ""},
		{"exponents and escapes", `{"SignedEntryTimestamp":"` + set + `","Payload":{"body":"` + b64Body + `","integratedTime":1.7e9,"logID":"\u006cog\"\\\/\u00e9","logIndex":4.2E1}}`, ""},
		{"wrong logIndex", `{"SignedEntryTimestamp":"` + set + `","Payload":{"body":"` + b64Body + `","integratedTime":1700000000,"logID":` + logID + `,"logIndex":43}}`, "does not verify"},
		{"duplicate key", `{"SignedEntryTimestamp":"` + set + `","Payload":{"body":"` + b64Body + `","integratedTime":1700000000,"logID":` + logID + `,"logIndex":42,"logIndex":42}}`, "duplicate key"},
		{"trailing data", `{"SignedEntryTimestamp":"` + set + `","Payload":{"body":"` + b64Body + `","integratedTime":1700000000,"logID":` + logID + `,"logIndex":42}} {}`, "unexpected data"},
		{"lower-case key", `{"signedEntryTimestamp":"` + set + `","Payload":{"body":"` + b64Body + `","integratedTime":1700000000,"logID":` + logID + `,"logIndex":42}}`, "unknown key"},
		{"null Payload", `{"SignedEntryTimestamp":"` + set + `","Payload":null}`, "Payload"},
		{"not JSON", `SET`, "invalid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ann := map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString(sig), AnnotationBundle: tc.annotation}
			_, err := trust.VerifyAttachment(MIMETypeSimpleSigning, layer, ann, testNow)
			checkResult(t, err, tc.want)
		})
	}
}

func TestVerifyAttachmentInvalidTrust(t *testing.T) {
	_, err := (&Trust{}).VerifyAttachment(MIMETypeSimpleSigning, nil, nil, testNow)
	if !errors.Is(err, ErrInvalidTrust) || errors.Is(err, ErrRejected) {
		t.Fatalf("error %v, want ErrInvalidTrust only", err)
	}
}
