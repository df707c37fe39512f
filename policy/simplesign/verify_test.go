package simplesign

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func mustKeyring(t *testing.T, keys ...*pgptest.Key) *Keyring {
	t.Helper()
	var rings []*Keyring
	for _, k := range keys {
		r, err := ParseKeyring(k.Public(t))
		if err != nil {
			t.Fatal(err)
		}
		rings = append(rings, r)
	}
	return JoinKeyrings(rings...)
}

func TestVerify(t *testing.T) {
	now := time.Now()
	trusted := pgptest.NewKey(t, "trusted", pgptest.KeyOptions{})
	other := pgptest.NewKey(t, "other", pgptest.KeyOptions{})
	withSubkey := pgptest.NewKey(t, "with-subkey", pgptest.KeyOptions{})
	subkey := withSubkey.AddSigningSubkey(t)
	withRevokedSubkey := pgptest.NewKey(t, "revoked-subkey", pgptest.KeyOptions{})
	revokedSubkey := withRevokedSubkey.AddSigningSubkey(t)
	revokedSubkeySig := pgptest.Sign(t, pgptest.Payload(testDigest, "example.com/a:1"), pgptest.SignOptions{Signers: []*packet.PrivateKey{revokedSubkey}})
	withRevokedSubkey.RevokeSubkey(t, revokedSubkey)
	revoked := pgptest.NewKey(t, "revoked", pgptest.KeyOptions{})
	revokedSig := pgptest.Sign(t, pgptest.Payload(testDigest, "example.com/a:1"), pgptest.SignOptions{Signers: []*packet.PrivateKey{revoked.Primary()}})
	revoked.Revoke(t)
	expiredKey := pgptest.NewKey(t, "expired", pgptest.KeyOptions{Created: now.Add(-48 * time.Hour), Lifetime: time.Hour})
	ring := mustKeyring(t, trusted, withSubkey, withRevokedSubkey, revoked, expiredKey)

	good := pgptest.Payload(testDigest, "example.com/a:1")
	sign := func(opts pgptest.SignOptions) []byte { return pgptest.Sign(t, good, opts) }
	by := func(keys ...*packet.PrivateKey) pgptest.SignOptions { return pgptest.SignOptions{Signers: keys} }
	corrupt := sign(by(trusted.Primary()))
	corrupt[len(corrupt)-5] ^= 0x55
	tampered := bytes.Replace(sign(by(trusted.Primary())), []byte("example.com/a:1"), []byte("example.com/b:1"), 1)

	tests := []struct {
		name       string
		sig        []byte
		wantKey    string // accepted with this primary fingerprint
		wantSigner string
		wantErr    string // rejected with this text
	}{
		{name: "valid", sig: sign(by(trusted.Primary())), wantKey: trusted.Fingerprint()},
		{name: "valid compressed", sig: sign(pgptest.SignOptions{Signers: []*packet.PrivateKey{trusted.Primary()}, Compress: true}), wantKey: trusted.Fingerprint()},
		{name: "signature lifetime not reached", sig: sign(pgptest.SignOptions{Signers: []*packet.PrivateKey{trusted.Primary()}, Lifetime: time.Hour}), wantKey: trusted.Fingerprint()},
		{name: "signing subkey maps to its primary", sig: sign(by(subkey)), wantKey: withSubkey.Fingerprint(), wantSigner: fingerprint(subkey.Fingerprint)},
		{name: "unknown key", sig: sign(by(other.Primary())), wantErr: "not trusted"},
		{name: "revoked subkey", sig: revokedSubkeySig, wantErr: "revoked"},
		{name: "revoked primary key", sig: revokedSig, wantErr: "revoked"},
		{name: "expired signature", sig: sign(pgptest.SignOptions{Signers: []*packet.PrivateKey{trusted.Primary()}, Created: now.Add(-2 * time.Hour), Lifetime: time.Hour}), wantErr: "signature has expired"},
		{name: "expired key", sig: sign(pgptest.SignOptions{Signers: []*packet.PrivateKey{expiredKey.Primary()}, Created: now.Add(-47 * time.Hour)}), wantErr: "key has expired"},
		{name: "two signatures by one key", sig: sign(by(trusted.Primary(), trusted.Primary())), wantErr: "signature"},
		{name: "trusted and unknown signatures", sig: sign(by(other.Primary(), trusted.Primary())), wantErr: "exactly one"},
		{name: "unsigned literal data", sig: sign(pgptest.SignOptions{}), wantErr: "not signed"},
		{name: "corrupt signature", sig: corrupt, wantErr: "invalid signature"},
		{name: "tampered content", sig: tampered, wantErr: "invalid signature"},
		{name: "garbage", sig: []byte("not a signature"), wantErr: "not a valid OpenPGP"},
		{name: "empty", sig: nil, wantErr: "not a valid OpenPGP"},
		{name: "encrypted", sig: encrypted(t, trusted), wantErr: "not a valid OpenPGP"},
		{name: "wrong payload type", sig: pgptest.Sign(t, bytes.Replace(good, []byte("atomic container signature"), []byte("cosign container image signature"), 1), by(trusted.Primary())), wantErr: "unexpected type"},
		{name: "payload not JSON", sig: pgptest.Sign(t, []byte("This is not JSON\n"), by(trusted.Primary())), wantErr: "invalid signature payload"},
		{name: "clearsigned", sig: pgptest.ClearSign(t, good, trusted.Primary()), wantKey: trusted.Fingerprint()},
		{name: "clearsigned unknown key", sig: pgptest.ClearSign(t, good, other.Primary()), wantErr: "not trusted"},
		{name: "decompression bomb", sig: pgptest.Sign(t, bytes.Repeat([]byte{' '}, maxPayloadSize+1), pgptest.SignOptions{Signers: []*packet.PrivateKey{trusted.Primary()}, Compress: true}), wantErr: "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ring.Verify(tt.sig, now)
			wantVerdict(t, v, err, tt.wantErr, tt.wantKey, tt.wantSigner)
		})
	}
}

// TestVerifyUnknownKeyIsTyped: a signature by a key outside the keyring is an
// UnknownKeyError, in the one-pass form and in the old-style form alike.
func TestVerifyUnknownKeyIsTyped(t *testing.T) {
	trusted := pgptest.NewKey(t, "trusted", pgptest.KeyOptions{})
	other := pgptest.NewKey(t, "other", pgptest.KeyOptions{})
	signer := []*packet.PrivateKey{other.Primary()}
	for name, opts := range map[string]pgptest.SignOptions{
		"one-pass":  {Signers: signer},
		"old-style": {Leading: signer},
	} {
		t.Run(name, func(t *testing.T) {
			sig := pgptest.Sign(t, pgptest.Payload(testDigest, "a/b:1"), opts)
			_, err := mustKeyring(t, trusted).Verify(sig, time.Now())
			var unknown *UnknownKeyError
			if !errors.As(err, &unknown) || unknown.KeyID != other.Primary().KeyId {
				t.Fatalf("error = %v, want UnknownKeyError for %016X", err, other.Primary().KeyId)
			}
		})
	}
}

func TestVerifyEmptyKeyring(t *testing.T) {
	trusted := pgptest.NewKey(t, "trusted", pgptest.KeyOptions{})
	sig := pgptest.Sign(t, pgptest.Payload(testDigest, "a/b:1"), pgptest.SignOptions{Signers: []*packet.PrivateKey{trusted.Primary()}})
	if _, err := JoinKeyrings().Verify(sig, time.Now()); err == nil || !errors.Is(err, ErrRejected) {
		t.Fatalf("error = %v, want a rejection", err)
	}
}

func TestParseKeyring(t *testing.T) {
	k1 := pgptest.NewKey(t, "one", pgptest.KeyOptions{})
	k2 := pgptest.NewKey(t, "two", pgptest.KeyOptions{})
	tests := []struct {
		name    string
		data    []byte
		want    []string
		wantErr string
	}{
		{"binary", k1.Public(t), []string{k1.Fingerprint()}, ""},
		{"armored", k1.ArmoredPublic(t), []string{k1.Fingerprint()}, ""},
		{"two keys", append(k1.Public(t), k2.Public(t)...), []string{k1.Fingerprint(), k2.Fingerprint()}, ""},
		{"empty", nil, nil, "no OpenPGP public keys"},
		{"garbage", []byte("garbage"), nil, "reading OpenPGP keyring"},
		{"armored message, not a key", []byte("-----BEGIN PGP MESSAGE-----\n\nAAAA\n-----END PGP MESSAGE-----\n"), nil, "reading OpenPGP keyring"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKeyring(tt.data)
			if !testsupport.WantErr(t, err, tt.wantErr) {
				return
			}
			if got := strings.Join(k.Fingerprints(), ","); got != strings.Join(tt.want, ",") {
				t.Fatalf("fingerprints = %s, want %s", got, strings.Join(tt.want, ","))
			}
		})
	}
}

func encrypted(t *testing.T, to *pgptest.Key) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := openpgp.Encrypt(&b, []*openpgp.Entity{to.Entity}, nil, nil, nil)
	if err == nil {
		_, err = w.Write(pgptest.Payload(testDigest, "a/b:1"))
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// wantRejected fails unless Verify's answer is a rejection: an error containing want that
// wraps ErrRejected, and no claims.
func wantRejected(t *testing.T, v Verified, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Verify() = %+v, %v; want an error containing %q", v, err, want)
	}
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("error %v does not wrap ErrRejected", err)
	}
	if v != (Verified{}) {
		t.Fatalf("rejected signature returned claims %+v", v)
	}
}

// wantVerdict fails unless Verify's answer is the rejection wantErr names or, when wantErr
// is empty, the acceptance wantVerified checks.
func wantVerdict(t *testing.T, v Verified, err error, wantErr, key, signer string) {
	t.Helper()
	if wantErr != "" {
		wantRejected(t, v, err, wantErr)
		return
	}
	wantVerified(t, v, err, key, signer)
}

// wantVerified fails unless Verify accepted the signature by key (and, if signer is set,
// made with signer's key) over the test payload.
func wantVerified(t *testing.T, v Verified, err error, key, signer string) {
	t.Helper()
	if err != nil {
		t.Fatalf("Verify() error = %v, want accepted", err)
	}
	if v.KeyFingerprint != key {
		t.Fatalf("KeyFingerprint = %s, want %s", v.KeyFingerprint, key)
	}
	if signer != "" && v.SignerFingerprint != signer {
		t.Fatalf("SignerFingerprint = %s, want %s", v.SignerFingerprint, signer)
	}
	if v.Payload.ManifestDigest != testDigest || v.Payload.DockerReference != "example.com/a:1" {
		t.Fatalf("payload = %+v", v.Payload)
	}
}
