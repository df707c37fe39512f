package policy

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/policy/sigstore"
)

// cosignSig returns a cosign .sig layer as a Signature: the payload, with its ECDSA
// signature in the annotation cosign writes.
// bundleSig is a cosign v3 Sigstore bundle: a DSSE envelope around the in-toto statement
// cosign signs for an image, with the public key as verification material.
func bundleSig(t *testing.T, key *ecdsa.PrivateKey, d digest.Digest) Signature {
	t.Helper()
	statement := []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + d.Encoded() +
		`"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1"}`)
	const payloadType = "application/vnd.in-toto+json"
	pae := fmt.Sprintf("DSSEv1 %d %s %d %s", len(payloadType), payloadType, len(statement), statement)
	sum := sha256.Sum256([]byte(pae))
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	hint := sha256.Sum256(der)
	b64 := base64.StdEncoding.EncodeToString
	doc := `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",` +
		`"verificationMaterial":{"publicKey":{"hint":"` + b64(hint[:]) + `"}},` +
		`"dsseEnvelope":{"payload":"` + b64(statement) + `","payloadType":"` + payloadType + `","signatures":[{"sig":"` + b64(sig) + `","keyid":""}]}}`
	return Signature{Format: FormatSigstoreBundle, MIMEType: "application/vnd.dev.sigstore.bundle.v0.3+json", Data: []byte(doc),
		Origin: "referrer bundle of " + d.String()}
}

func cosignSig(t *testing.T, key *ecdsa.PrivateKey, d digest.Digest, ref string) Signature {
	t.Helper()
	payload := []byte(`{"critical":{"identity":{"docker-reference":"` + ref + `"},"image":{"docker-manifest-digest":"` + d.String() + `"},"type":"cosign container image signature"},"optional":null}`)
	sum := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return Signature{
		Format:      FormatCosign,
		MIMEType:    sigstore.MIMETypeSimpleSigning,
		Data:        payload,
		Annotations: map[string]string{"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(sig)},
		Origin:      "sha256-" + d.Encoded() + ".sig layer 1",
	}
}

// TestSigstoreSignedEvaluation checks the engine's part of sigstoreSigned (SPEC 1.6, 5.4,
// 10.5 #37, #40, #44): only cosign simple-signing layers are verified, others are counted,
// and the digest and identity are checked here after policy/sigstore verified the layer.
func TestSigstoreSignedEvaluation(t *testing.T) {
	f := newFixture(t)
	pemData, key := testsupport.ECDSAKeyPEM(t)
	f.write("cosign.pub", pemData)
	_, otherKey := testsupport.ECDSAKeyPEM(t)
	keyPolicy := `{"default":[{"type":"sigstoreSigned","keyPath":"$DIR/cosign.pub"}]}`
	repoPolicy := `{"default":[{"type":"sigstoreSigned","keyPath":"$DIR/cosign.pub","signedIdentity":{"type":"matchRepository"}}]}`

	dsse := Signature{Format: FormatCosign, MIMEType: "application/vnd.dsse.envelope.v1+json", Data: []byte("{}")}
	simple := f.sig(f.trusted.Primary(), f.digest, "busybox:1")
	bundle := Signature{Format: FormatSigstoreBundle, MIMEType: "application/vnd.dev.sigstore.bundle.v0.3+json", Data: []byte("{}")}
	validBundle := bundleSig(t, key, f.digest)
	noAnnotation := cosignSig(t, key, f.digest, "busybox:1")
	noAnnotation.Annotations = nil

	tests := []struct {
		name    string
		policy  string
		sigs    []Signature
		want    bool
		wantWhy string
	}{
		{"valid, with tag identity", keyPolicy, []Signature{cosignSig(t, key, f.digest, "docker.io/library/busybox:1")}, true, "valid sigstore signature"},
		{"cosign default identity, default matcher", keyPolicy, []Signature{cosignSig(t, key, f.digest, "index.docker.io/library/busybox")}, false, "is not accepted"},
		{"cosign default identity, matchRepository", repoPolicy, []Signature{cosignSig(t, key, f.digest, "index.docker.io/library/busybox")}, true, ""},
		{"signature for another digest", repoPolicy, []Signature{cosignSig(t, key, digest.FromString("sibling platform"), "busybox")}, false, "does not match the manifest"},
		{"other key", keyPolicy, []Signature{cosignSig(t, otherKey, f.digest, "busybox:1")}, false, "signature 1 (sha256-"},
		{"missing signature annotation", keyPolicy, []Signature{noAnnotation}, false, "signature 1"},
		{"skipped layers, bad, then valid", keyPolicy, []Signature{dsse, simple, bundle, cosignSig(t, otherKey, f.digest, "busybox:1"), cosignSig(t, key, f.digest, "busybox:1")}, true, "signature 5"},
		{"nothing verifiable", keyPolicy, []Signature{dsse, simple}, false,
			"a signature was required, but no signature exists (1 non-sigstore signatures, 1 sigstore non-signature attachments)"},
		// Sigstore bundles (DESIGN.md difference 6): the identity is the repository they
		// were found in, without tag, as cosign's default legacy identity.
		{"bundle, matchRepository", repoPolicy, []Signature{validBundle}, true, "valid Sigstore bundle"},
		{"bundle, default matcher", keyPolicy, []Signature{validBundle}, false, "a bundle names no image"},
		{"bundle by another key", repoPolicy, []Signature{bundleSig(t, otherKey, f.digest)}, false, "signature 1"},
		{"bundle for another digest", repoPolicy, []Signature{bundleSig(t, key, digest.FromString("sibling"))}, false, "does not match the manifest"},
		{"malformed bundle, then valid attachment", repoPolicy, []Signature{bundle, cosignSig(t, key, f.digest, "busybox")}, true, "signature 2"},
		{"no signatures at all", keyPolicy, nil, false, "a signature was required, but no signature exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := f.policy(tt.policy)
			v, err := p.Evaluate(context.Background(), f.image("busybox:1"), sigSource(tt.sigs...))
			if err != nil {
				t.Fatal(err)
			}
			if v.Accepted != tt.want || !strings.Contains(v.Reason, tt.wantWhy) {
				t.Fatalf("verdict %+v, want accepted=%v with reason containing %q", v, tt.want, tt.wantWhy)
			}
			if tt.name == "no signatures at all" && strings.Contains(v.Reason, "(") {
				t.Fatalf("reason %q mentions skipped signatures", v.Reason)
			}
		})
	}
}

// TestSigstoreJSONBlob: c/image's stored form of a cosign signature ("\x00sigstore-json\n")
// goes through ParseSignatureBlob into the same verification.
func TestSigstoreJSONBlob(t *testing.T) {
	f := newFixture(t)
	pemData, key := testsupport.ECDSAKeyPEM(t)
	f.write("cosign.pub", pemData)
	p := f.policy(`{"default":[{"type":"sigstoreSigned","keyPath":"$DIR/cosign.pub"}]}`)
	s := cosignSig(t, key, f.digest, "busybox:1")
	chunk := testsupport.JSON(t, map[string]any{"mimeType": s.MIMEType, "payload": s.Data, "annotations": s.Annotations})
	f.wantBlobAccepted(p, append([]byte("\x00sigstore-json\n"), chunk...))
}
