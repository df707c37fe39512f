package simplesign

import (
	"crypto"
	"errors"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

// FuzzParseSignedMessage feeds arbitrary bytes to Verify: it must never panic, and
// anything it does not accept must be a rejection.
func FuzzParseSignedMessage(f *testing.F) {
	key := pgptest.NewKey(f, "fuzz", pgptest.KeyOptions{})
	ring, err := ParseKeyring(key.Public(f))
	if err != nil {
		f.Fatal(err)
	}
	payload := pgptest.Payload(testDigest, "example.com/a:1")
	signers := []*packet.PrivateKey{key.Primary()}
	f.Add(pgptest.Sign(f, payload, pgptest.SignOptions{Signers: signers}))
	f.Add(pgptest.Sign(f, payload, pgptest.SignOptions{Signers: signers, Compress: true}))
	f.Add(pgptest.Sign(f, payload, pgptest.SignOptions{}))
	f.Add(pgptest.ClearSign(f, payload, key.Primary()))
	// Refused digests: SHA-1 verifies in go-crypto, MD5 (withHashID) does not parse.
	f.Add(pgptest.Sign(f, payload, pgptest.SignOptions{Signers: signers, Hash: crypto.SHA1}))
	f.Add(pgptest.Sign(f, payload, pgptest.SignOptions{Signers: signers, Hash: crypto.SHA1, Compress: true}))
	f.Add(withHashID(f, pgptest.Sign(f, payload, pgptest.SignOptions{Signers: signers}), hashIDMD5))
	f.Add([]byte{0xA3, 0x01, 0x02})
	now := time.Now()
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ring.Verify(data, now)
		if err != nil {
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("error %v is not a rejection", err)
			}
			return
		}
		if v.KeyFingerprint != key.Fingerprint() {
			t.Fatalf("accepted with key %s", v.KeyFingerprint)
		}
	})
}

// FuzzParseKeyring feeds arbitrary bytes to ParseKeyring.
func FuzzParseKeyring(f *testing.F) {
	key := pgptest.NewKey(f, "fuzz", pgptest.KeyOptions{})
	f.Add(key.Public(f))
	f.Add(key.ArmoredPublic(f))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKeyring(data)
		if err == nil && k.Len() == 0 {
			t.Fatal("an empty keyring parsed without error")
		}
	})
}
