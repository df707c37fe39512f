package simplesign

import (
	"bytes"
	"crypto"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

// openPGP hash algorithm IDs (RFC 4880 9.4) used to forge digests go-crypto cannot write.
const (
	hashIDMD5       = 1
	hashIDRIPEMD160 = 3
	hashIDSHA256    = 8
)

// TestVerifyRefusesWeakDigests: a signature whose message digest is SHA-1 or weaker is
// refused with a reason naming the digest, however valid it is otherwise; SHA-2 digests
// verify as before. go-crypto's v1 API ignores its own hash-rejection setting, so only
// pullgate's check stands between a collision-prone digest and an accepted image.
func TestVerifyRefusesWeakDigests(t *testing.T) {
	trusted := pgptest.NewKey(t, "trusted", pgptest.KeyOptions{})
	rsa := pgptest.NewKey(t, "rsa", pgptest.KeyOptions{RSABits: 2048})
	ring := mustKeyring(t, trusted, rsa)
	good := pgptest.Payload(testDigest, "example.com/a:1")
	sign := func(key *pgptest.Key, hash crypto.Hash, compress bool) []byte {
		return pgptest.Sign(t, good, pgptest.SignOptions{Signers: []*packet.PrivateKey{key.Primary()}, Hash: hash, Compress: compress})
	}
	tests := []struct {
		name    string
		sig     []byte
		wantErr string // empty: accepted
	}{
		{"SHA-256", sign(trusted, crypto.SHA256, false), ""},
		{"SHA-384", sign(trusted, crypto.SHA384, false), ""},
		{"SHA-512", sign(trusted, crypto.SHA512, true), ""},
		{"SHA-512 RSA", sign(rsa, crypto.SHA512, false), ""},
		{"SHA-1", sign(trusted, crypto.SHA1, false), "the signature uses SHA-1, which pullgate does not accept"},
		{"SHA-1 compressed", sign(trusted, crypto.SHA1, true), "the signature uses SHA-1, which pullgate does not accept"},
		{"SHA-1 RSA", sign(rsa, crypto.SHA1, false), "the signature uses SHA-1, which pullgate does not accept"},
		{"MD5", withHashID(t, sign(trusted, crypto.SHA256, false), hashIDMD5), "the signature uses MD5, which pullgate does not accept"},
		{"RIPEMD-160", withHashID(t, sign(trusted, crypto.SHA256, false), hashIDRIPEMD160), "the signature uses RIPEMD-160, which pullgate does not accept"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ring.Verify(tt.sig, time.Now()) // not before the signatures were made
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify() error = %v, want accepted", err)
				}
				if v.Payload.ManifestDigest != testDigest {
					t.Fatalf("payload = %+v", v.Payload)
				}
				return
			}
			wantRejected(t, v, err, tt.wantErr)
		})
	}
}

// withHashID rewrites the digest algorithm of an uncompressed one-signature Ed25519
// message made by pgptest (SHA-256) to id, in the one-pass signature packet and the
// signature packet, as a signer using that digest would have written them. The signature
// no longer verifies, which does not matter: the digest must be refused before that.
func withHashID(t testing.TB, msg []byte, id byte) []byte {
	t.Helper()
	out := bytes.Clone(msg)
	// One-pass signature: new-format tag 4, length 13, then version 3, type, hash.
	if len(out) < 5 || out[0] != 0xC4 || out[1] != 13 || out[2] != 3 || out[4] != hashIDSHA256 {
		t.Fatalf("withHashID: message does not start with a SHA-256 one-pass signature: % x", out[:min(len(out), 8)])
	}
	out[4] = id
	// Signature v4: version, type (binary), public key algorithm (EdDSA), hash.
	sigStart := []byte{4, byte(packet.SigTypeBinary), byte(packet.PubKeyAlgoEdDSA), hashIDSHA256}
	i := bytes.LastIndex(out, sigStart)
	if i < 0 {
		t.Fatal("withHashID: no v4 EdDSA SHA-256 signature packet found")
	}
	out[i+3] = id
	return out
}
