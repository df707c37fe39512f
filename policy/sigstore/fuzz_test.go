package sigstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// Every parser of untrusted input here is fuzzed: nothing may panic, and every failure
// must be a rejection (never an ErrInvalidTrust, which would blame the configuration).

func checkFuzzError(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, ErrRejected) {
		t.Fatalf("error %v does not wrap ErrRejected", err)
	}
}

func FuzzParseSETAnnotation(f *testing.F) {
	key := newECDSAKey(f, elliptic.P256())
	rekor := newFakeRekor(f)
	signed := signWithKey(f, key, rekor)
	f.Add(signed.annotations[AnnotationBundle])
	f.Add(`{"SignedEntryTimestamp":"","Payload":{"body":"","integratedTime":1e3,"logIndex":-0,"logID":"\u0000\ud83d\ude00"}}`)
	f.Add(`{"SignedEntryTimestamp":null,"Payload":{}}`)
	f.Add(`{"Payload":{"body":"x","integratedTime":9223372036854775807,"logIndex":1,"logID":""}}`)
	f.Fuzz(func(t *testing.T, annotation string) {
		set, p, err := parseSETAnnotation([]byte(annotation))
		if err != nil {
			return
		}
		// The canonical form must be JSON that decodes back to the same values.
		canonical := p.canonical()
		var back struct {
			Body           string `json:"body"`
			IntegratedTime int64  `json:"integratedTime"`
			LogIndex       int64  `json:"logIndex"`
			LogID          string `json:"logID"`
		}
		if err := json.Unmarshal(canonical, &back); err != nil {
			t.Fatalf("canonical form %q is not JSON: %v", canonical, err)
		}
		if back.Body != p.Body || back.LogID != p.LogID || back.IntegratedTime != p.IntegratedTime.value || back.LogIndex != p.LogIndex.value {
			t.Fatalf("canonical form %q does not round-trip %+v", canonical, p)
		}
		_, err = p.verify([]*ecdsa.PublicKey{rekor.public()}, set)
		checkFuzzError(t, err)
	})
}

func FuzzCheckRekorBody(f *testing.F) {
	key := newECDSAKey(f, elliptic.P256())
	layer := cosignPayload(testManifestDigest)
	sig := key.sign(f, layer)
	f.Add(testsupport.JSON(f, hashedRekordBody(key.publicPEM(f), sig, sha256Of(layer))), false)
	f.Add(testsupport.JSON(f, dsseBody(key.publicPEM(f), sig, layer)), true)
	f.Add([]byte(`{"apiVersion":"0.0.1","kind":"dsse","spec":{"signatures":null}}`), true)
	der, err := publicKeyDER(key.public())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, dsse bool) {
		b := logBinding{kind: kindHashedRekord, verifierDER: der, signature: sig, dataSHA256: sha256Of(layer)}
		if dsse {
			b.kind = kindDSSE
		}
		checkFuzzError(t, checkRekorBody(body, b))
	})
}

func FuzzVerifyAttachment(f *testing.F) {
	ca, rekor, key, layer, sig := newKeylessSigning(f)
	leaf := certPEM(ca.issueLeaf(f, key, leafOptions{}))
	set := rekor.setAnnotation(f, testsupport.JSON(f, hashedRekordBody([]byte(leaf), sig, sha256Of(layer))), testNow, nil)
	chain := certPEM(ca.intermediate, ca.root)
	f.Add(layer, base64.StdEncoding.EncodeToString(sig), leaf, chain, set)
	f.Add([]byte(`{"critical":{},"optional":null}`), "", "", "", "")
	f.Add(layer, "AAAA", leaf+leaf, chain+"-----BEGIN CERTIFICATE-----\n", `{"SignedEntryTimestamp":"","Payload":null}`)
	trusts := []*Trust{
		{Fulcio: &Fulcio{Roots: ca.Roots(), OIDCIssuer: testIssuer, SubjectEmail: testEmail}, RekorKeys: []*ecdsa.PublicKey{rekor.public()}},
		{PKI: &PKI{Roots: ca.Roots(), SubjectEmail: testEmail}},
		{PublicKeys: []crypto.PublicKey{key.public()}, RekorKeys: []*ecdsa.PublicKey{rekor.public()}},
	}
	f.Fuzz(func(t *testing.T, layer []byte, sig, cert, chain, set string) {
		ann := map[string]string{AnnotationSignature: sig, AnnotationCertificate: cert, AnnotationChain: chain, AnnotationBundle: set}
		for _, trust := range trusts {
			_, err := trust.VerifyAttachment(MIMETypeSimpleSigning, layer, ann, testNow)
			checkFuzzError(t, err)
		}
	})
}

func FuzzVerifyBundle(f *testing.F) {
	ca := newTestCA(f)
	rekor := newFakeRekor(f)
	key := newECDSAKey(f, elliptic.P256())
	statement := cosignStatement(testManifestDigest)
	sig := key.signDefault(f, dssePAE(inTotoPayloadType, statement))
	leaf := ca.issueLeaf(f, key, leafOptions{})
	entry := rekor.tlogEntry(f, "dsse", testsupport.JSON(f, dsseBody([]byte(certPEM(leaf)), sig, statement)), testNow)
	f.Add(testBundle{material: keyMaterial(f, key), content: dsseContent(inTotoPayloadType, statement, sig)}.json(f))
	f.Add(testBundle{material: certMaterial(leaf), content: dsseContent(inTotoPayloadType, statement, sig), entries: []any{entry}}.json(f))
	f.Add(testBundle{mediaType: "application/vnd.dev.sigstore.bundle+json;version=0.2", material: chainMaterial(leaf, ca.intermediate),
		content: messageContent(sha256Of(statement), sig), entries: []any{entry}}.json(f))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{}},"dsseEnvelope":{"payload":"e30=","signatures":[{}]}}`))
	trusts := []*Trust{
		{PublicKeys: []crypto.PublicKey{key.public()}},
		{PublicKeys: []crypto.PublicKey{key.public()}, RekorKeys: []*ecdsa.PublicKey{rekor.public()}},
		{Fulcio: &Fulcio{Roots: []*x509.Certificate{ca.root, ca.intermediate}, OIDCIssuer: testIssuer, SubjectEmail: testEmail}, RekorKeys: []*ecdsa.PublicKey{rekor.public()}},
	}
	f.Fuzz(func(t *testing.T, bundle []byte) {
		for _, trust := range trusts {
			claims, err := trust.VerifyBundle(bundle, testNow)
			checkFuzzError(t, err)
			if err == nil && len(claims.Subjects) == 0 {
				t.Fatal("accepted a bundle without subjects")
			}
		}
	})
}

func FuzzParseStatementSubjects(f *testing.F) {
	f.Add(cosignStatement(testManifestDigest))
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"x","sha512":"y"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		subjects, err := parseStatementSubjects(data)
		if err != nil {
			return
		}
		if len(subjects) == 0 {
			t.Fatal("no error and no subjects")
		}
		for _, d := range subjects {
			if d.Algorithm() != "sha256" || d.Validate() != nil {
				t.Fatalf("subject %q is not a valid sha256 digest", d)
			}
		}
	})
}
