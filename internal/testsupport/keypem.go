package testsupport

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

// PublicKeyPEM encodes a public key as PKIX PEM ("PUBLIC KEY", what cosign and the
// policy's keyPath read).
func PublicKeyPEM(t testing.TB, key crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ECDSAKeyPEM generates an ECDSA P-256 key (cosign's default) and returns its public key
// as PEM with it.
func ECDSAKeyPEM(t testing.TB) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return PublicKeyPEM(t, &key.PublicKey), key
}
