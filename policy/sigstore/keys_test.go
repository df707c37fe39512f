package sigstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/pullgate/pullgate/internal/testsupport"
)

func TestParsePublicKey(t *testing.T) {
	p256 := newECDSAKey(t, elliptic.P256())
	ed := newEd25519Key(t)
	rsaKey := newRSAKey(t)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(rsaKey.public().(*rsa.PublicKey))})
	tests := []struct {
		name    string
		pem     []byte
		want    any // the key expected, compared with Equal
		wantErr string
	}{
		{name: "PKIX ECDSA", pem: p256.publicPEM(t), want: p256.public()},
		{name: "PKIX Ed25519", pem: ed.publicPEM(t), want: ed.public()},
		{name: "PKIX RSA", pem: rsaKey.publicPEM(t), want: rsaKey.public()},
		{name: "PKCS#1 RSA", pem: pkcs1, want: rsaKey.public()},
		{name: "first of two blocks", pem: append(p256.publicPEM(t), ed.publicPEM(t)...), want: p256.public()},
		{name: "text before the block", pem: append([]byte("comment\n"), p256.publicPEM(t)...), want: p256.public()},
		{name: "not PEM", pem: []byte("nope"), wantErr: "PEM decoding failed"},
		{name: "wrong block type", pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), wantErr: "unknown Public key PEM file type"},
		{name: "garbage DER", pem: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2}}), wantErr: "parsing public key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePublicKey(tc.pem)
			if !testsupport.WantErr(t, err, tc.wantErr) {
				return
			}
			if !got.(interface{ Equal(x crypto.PublicKey) bool }).Equal(tc.want) {
				t.Fatalf("got a different key")
			}
		})
	}
}

func TestParseRekorPublicKey(t *testing.T) {
	rekor := newFakeRekor(t)
	der, err := x509.MarshalPKIXPublicKey(rekor.public())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRekorPublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(rekor.public()) {
		t.Fatal("got a different key")
	}
	for _, key := range []testKey{newEd25519Key(t), newRSAKey(t)} {
		if _, err := ParseRekorPublicKey(key.publicPEM(t)); err == nil || !strings.Contains(err.Error(), "not ECDSA") {
			t.Errorf("%s: error %v, want a refusal of a non-ECDSA key", key.name, err)
		}
	}
}

func TestParseCertificates(t *testing.T) {
	ca := newTestCA(t)
	tests := []struct {
		name    string
		pem     string
		want    int
		wantErr string
	}{
		{name: "two certificates", pem: certPEM(ca.root, ca.intermediate), want: 2},
		{name: "other blocks skipped", pem: string(newECDSAKey(t, elliptic.P256()).publicPEM(t)) + certPEM(ca.root), want: 1},
		{name: "block with headers skipped", pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Headers: map[string]string{"a": "b"}, Bytes: ca.intermediate.Raw})) + certPEM(ca.root), want: 1},
		{name: "none", pem: "nothing", wantErr: "no CERTIFICATE"},
		{name: "unparsable certificate", pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0}})), wantErr: "parsing certificate 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCertificates([]byte(tc.pem))
			if !testsupport.WantErr(t, err, tc.wantErr) {
				return
			}
			if len(got) != tc.want {
				t.Fatalf("got %d certificates, want %d", len(got), tc.want)
			}
		})
	}
}

func TestTrustValidate(t *testing.T) {
	ca := newTestCA(t)
	key := newECDSAKey(t, elliptic.P256()).public()
	rekor := []*ecdsa.PublicKey{newFakeRekor(t).public()}
	fulcio := &Fulcio{Roots: ca.Roots(), OIDCIssuer: testIssuer, SubjectEmail: testEmail}
	pki := &PKI{Roots: ca.Roots(), SubjectEmail: testEmail}
	tests := []struct {
		name  string
		trust Trust
		ok    bool
	}{
		{"keys", Trust{PublicKeys: []crypto.PublicKey{key}}, true},
		{"keys and Rekor", Trust{PublicKeys: []crypto.PublicKey{key}, RekorKeys: rekor}, true},
		{"Fulcio", Trust{Fulcio: fulcio, RekorKeys: rekor}, true},
		{"PKI", Trust{PKI: pki}, true},
		{"nothing", Trust{}, false},
		{"keys and PKI", Trust{PublicKeys: []crypto.PublicKey{key}, PKI: pki}, false},
		{"Fulcio without Rekor", Trust{Fulcio: fulcio}, false},
		{"PKI with Rekor", Trust{PKI: pki, RekorKeys: rekor}, false},
		{"Fulcio without issuer", Trust{Fulcio: &Fulcio{Roots: ca.Roots(), SubjectEmail: testEmail}, RekorKeys: rekor}, false},
		{"PKI without subject", Trust{PKI: &PKI{Roots: ca.Roots()}}, false},
		{"unsupported key", Trust{PublicKeys: []crypto.PublicKey{"a string"}}, false},
		{"nil Rekor key", Trust{PublicKeys: []crypto.PublicKey{key}, RekorKeys: []*ecdsa.PublicKey{nil}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.trust.validate()
			if tc.ok != (err == nil) {
				t.Fatalf("validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// Roots returns the CA's root as a trust list.
func (ca *testCA) Roots() []*x509.Certificate { return []*x509.Certificate{ca.root} }
