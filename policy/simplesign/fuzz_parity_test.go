package simplesign

import (
	"errors"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

// FuzzVerifyOldStyle feeds arbitrary bytes, seeded with the old, non one-pass form and
// the other shapes of issue 14 (flagless keys and subkeys, signatures older than their
// key or ahead of the clock), to Verify and UntrustedPayload: they must never panic,
// everything they refuse must be a rejection, and Verify accepts only keys of the ring.
func FuzzVerifyOldStyle(f *testing.F) {
	now := time.Now().Truncate(time.Second)
	old := now.Add(-48 * time.Hour)
	key := pgptest.NewKey(f, "fuzz", pgptest.KeyOptions{Created: old})
	noFlags := pgptest.NewKey(f, "fuzz-no-flags", pgptest.KeyOptions{Created: old, NoFlags: true})
	sub := noFlags.AddSubkey(f, pgptest.SubkeyOptions{Created: old, NoFlags: true})
	subNoX := noFlags.AddSubkey(f, pgptest.SubkeyOptions{Created: old, NoFlags: true, NoCrossSignature: true})
	ring, err := ParseKeyring(append(key.Public(f), noFlags.Public(f)...))
	if err != nil || ring.Len() != 2 {
		f.Fatalf("keyring: %v", err)
	}
	payload := pgptest.Payload(testDigest, "example.com/a:1")
	keys := func(ks ...*packet.PrivateKey) []*packet.PrivateKey { return ks }
	for _, opts := range []pgptest.SignOptions{
		{Leading: keys(key.Primary())},
		{Leading: keys(key.Primary()), Compress: true},
		{Leading: keys(key.Primary(), noFlags.Primary())},
		{Leading: keys(key.Primary()), Signers: keys(noFlags.Primary())},
		{Leading: keys(sub)},
		{Signers: keys(subNoX)},
		{Signers: keys(noFlags.Primary()), Created: now.Add(time.Hour)},
		{Signers: keys(key.Primary()), Created: old.Add(-time.Hour)},
		{Signers: keys(key.Primary()), Created: now.Add(maxClockSkew + time.Hour)},
	} {
		f.Add(pgptest.Sign(f, payload, opts))
	}
	f.Add(append(pgptest.Sign(f, payload, pgptest.SignOptions{Leading: keys(key.Primary())}), 0xC2, 0x00))
	f.Add([]byte{0x88, 0x01, 0x04})
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := UntrustedPayload(data); err != nil && !errors.Is(err, ErrRejected) {
			t.Fatalf("UntrustedPayload error %v is not a rejection", err)
		}
		v, err := ring.Verify(data, now)
		if err != nil {
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("Verify error %v is not a rejection", err)
			}
			return
		}
		if v.KeyFingerprint != key.Fingerprint() && v.KeyFingerprint != noFlags.Fingerprint() {
			t.Fatalf("accepted with key %s", v.KeyFingerprint)
		}
	})
}
