package simplesign

import (
	"bytes"
	"crypto"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

// Reasons the gpgme-parity rows expect (substrings of the rejection).
const (
	wantTimeConflict = "made before its signing key was created"
	wantKeyInFuture  = "signing key was created"
	wantTooFarAhead  = "clock skew"
	wantNoSignFlag   = "key flags do not allow signing"
	wantNoCrossSig   = "not cross-certified"
)

// TestVerifyGpgmeParity: the verdicts podman reaches with its default gpgme backend in
// the corners where go-crypto alone decides otherwise (issue 14, items 1 to 4). Each row
// says what gpg 2.2 does; interop_parity_test.go checks the same shapes with real gpg
// and skopeo.
func TestVerifyGpgmeParity(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	old := now.Add(-48 * time.Hour)
	base := pgptest.NewKey(t, "base", pgptest.KeyOptions{Created: old})
	freshSub := base.AddSubkey(t, pgptest.SubkeyOptions{Created: now.Add(-time.Hour)})
	other := pgptest.NewKey(t, "other", pgptest.KeyOptions{Created: old})
	noFlags := pgptest.NewKey(t, "no-flags", pgptest.KeyOptions{Created: old, NoFlags: true})
	flagless := pgptest.NewKey(t, "flagless-subkeys", pgptest.KeyOptions{Created: old})
	flaglessSub := flagless.AddSubkey(t, pgptest.SubkeyOptions{Created: old, NoFlags: true})
	flaglessSubNoX := flagless.AddSubkey(t, pgptest.SubkeyOptions{Created: old, NoFlags: true, NoCrossSignature: true})
	certifyOnly := pgptest.NewKey(t, "certify-only", pgptest.KeyOptions{Created: old, CertifyOnly: true})
	futureKey := pgptest.NewKey(t, "future", pgptest.KeyOptions{Created: now.Add(time.Hour)})
	expiredKey := pgptest.NewKey(t, "expired", pgptest.KeyOptions{Created: old, Lifetime: time.Hour})
	revoked := pgptest.NewKey(t, "revoked", pgptest.KeyOptions{Created: old})
	revokedOldStyle := pgptest.Sign(t, pgptest.Payload(testDigest, "example.com/a:1"), pgptest.SignOptions{Leading: []*packet.PrivateKey{revoked.Primary()}})
	revoked.Revoke(t)
	ring := mustKeyring(t, base, noFlags, flagless, certifyOnly, futureKey, expiredKey, revoked)

	good := pgptest.Payload(testDigest, "example.com/a:1")
	keys := func(ks ...*packet.PrivateKey) []*packet.PrivateKey { return ks }
	sign := func(opts pgptest.SignOptions) []byte { return pgptest.Sign(t, good, opts) }
	at := func(key *packet.PrivateKey, created time.Time) []byte {
		return sign(pgptest.SignOptions{Signers: keys(key), Created: created})
	}
	oldStyle := func(key *packet.PrivateKey, created time.Time) []byte {
		return sign(pgptest.SignOptions{Leading: keys(key), Created: created})
	}
	tamperedOldStyle := bytes.Replace(oldStyle(base.Primary(), now), []byte("example.com/a:1"), []byte("example.com/b:1"), 1)
	twoOldStyle := append(oldStyle(base.Primary(), now), oldStyle(base.Primary(), now)...)

	tests := []struct {
		name       string
		sig        []byte
		wantKey    string // accepted with this primary fingerprint
		wantSigner string // and, if set, made by this key
		wantErr    string // rejected with this text
	}{
		// 1. gpg: "public key ... is newer than the signature", "Can't check signature:
		// Time conflict" (the signing key, primary or subkey, is compared).
		{name: "signature made before its key was created", sig: at(base.Primary(), old.Add(-24*time.Hour)), wantErr: wantTimeConflict},
		{name: "signature made before its subkey was created", sig: at(freshSub, now.Add(-2*time.Hour)), wantErr: wantTimeConflict},
		{name: "old-style signature made before its key was created", sig: oldStyle(base.Primary(), old.Add(-time.Second)), wantErr: wantTimeConflict},
		{name: "clearsigned before its key was created", sig: pgptest.ClearSignAt(t, good, base.Primary(), old.Add(-time.Hour)), wantErr: wantTimeConflict},
		{name: "signature made when its key was created", sig: at(base.Primary(), old), wantKey: base.Fingerprint()},
		// gpg: "key ... was created 3600 seconds in the future (time warp or clock
		// problem)", refused whatever the signature's date.
		{name: "key created in the future", sig: at(futureKey.Primary(), now.Add(time.Hour)), wantErr: wantKeyInFuture},

		// 2. gpg and gpgme accept signatures made in the future (a year ahead included);
		// pullgate accepts them up to maxClockSkew ahead.
		{name: "signature a minute ahead", sig: at(base.Primary(), now.Add(time.Minute)), wantKey: base.Fingerprint()},
		{name: "signature nearly a clock skew ahead", sig: at(base.Primary(), now.Add(maxClockSkew-time.Minute)), wantKey: base.Fingerprint()},
		{name: "signature ahead with a lifetime", sig: sign(pgptest.SignOptions{Signers: keys(base.Primary()), Created: now.Add(time.Hour), Lifetime: time.Hour}), wantKey: base.Fingerprint()},
		{name: "subkey signature ahead", sig: at(freshSub, now.Add(time.Hour)), wantKey: base.Fingerprint(), wantSigner: fingerprint(freshSub.Fingerprint)},
		{name: "old-style signature ahead", sig: oldStyle(base.Primary(), now.Add(time.Hour)), wantKey: base.Fingerprint()},
		{name: "clearsigned ahead", sig: pgptest.ClearSignAt(t, good, base.Primary(), now.Add(time.Hour)), wantKey: base.Fingerprint()},
		{name: "signature ahead by more than the clock skew", sig: at(base.Primary(), now.Add(maxClockSkew+time.Minute)), wantErr: wantTooFarAhead},
		{name: "signature ahead by an expired key", sig: at(expiredKey.Primary(), now.Add(time.Hour)), wantErr: "signing key has expired"},
		{name: "signature expired", sig: sign(pgptest.SignOptions{Signers: keys(base.Primary()), Created: now.Add(-2 * time.Hour), Lifetime: time.Hour}), wantErr: "signature has expired"},

		// 3. gpg derives the usage of a key without a key-flags subpacket from its
		// algorithm (Ed25519: sign), for primary keys and subkeys; a signing subkey
		// must still be cross-certified; flags present without "sign" forbid signing.
		{name: "primary key without key flags", sig: at(noFlags.Primary(), now), wantKey: noFlags.Fingerprint()},
		{name: "primary key without key flags, old-style", sig: oldStyle(noFlags.Primary(), now), wantKey: noFlags.Fingerprint()},
		{name: "primary key without key flags, clearsigned", sig: pgptest.ClearSign(t, good, noFlags.Primary()), wantKey: noFlags.Fingerprint()},
		{name: "subkey without key flags, cross-certified", sig: at(flaglessSub, now), wantKey: flagless.Fingerprint(), wantSigner: fingerprint(flaglessSub.Fingerprint)},
		{name: "subkey without key flags, not cross-certified", sig: at(flaglessSubNoX, now), wantErr: wantNoCrossSig},
		{name: "primary key flagged certify-only", sig: at(certifyOnly.Primary(), now), wantErr: wantNoSignFlag},

		// 4. gpg verifies the old, non one-pass form ("old style (PGP 2.x) signature").
		{name: "old-style signature", sig: oldStyle(base.Primary(), now), wantKey: base.Fingerprint()},
		{name: "old-style signature, compressed", sig: sign(pgptest.SignOptions{Leading: keys(base.Primary()), Compress: true}), wantKey: base.Fingerprint()},
		{name: "old-style signature by a subkey", sig: oldStyle(freshSub, now), wantKey: base.Fingerprint(), wantSigner: fingerprint(freshSub.Fingerprint)},
		{name: "old-style signature by an unknown key", sig: oldStyle(other.Primary(), now), wantErr: "not trusted"},
		{name: "old-style signature, tampered content", sig: tamperedOldStyle, wantErr: "invalid signature"},
		{name: "old-style signature, revoked key", sig: revokedOldStyle, wantErr: "revoked"},
		{name: "old-style signature, expired", sig: sign(pgptest.SignOptions{Leading: keys(base.Primary()), Created: now.Add(-2 * time.Hour), Lifetime: time.Hour}), wantErr: "signature has expired"},
		{name: "old-style signature, SHA-1", sig: sign(pgptest.SignOptions{Leading: keys(base.Primary()), Hash: crypto.SHA1}), wantErr: "SHA-1"},
		{name: "two old-style signatures", sig: sign(pgptest.SignOptions{Leading: keys(base.Primary(), base.Primary())}), wantErr: "exactly one"},
		{name: "old-style signature before a one-pass signed message", sig: sign(pgptest.SignOptions{Leading: keys(other.Primary()), Signers: keys(base.Primary())}), wantErr: "exactly one"},
		{name: "two old-style messages", sig: twoOldStyle, wantErr: "after the literal data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ring.Verify(tt.sig, now)
			wantSigner := tt.wantSigner
			if wantSigner == "" {
				wantSigner = tt.wantKey
			}
			wantVerdict(t, v, err, tt.wantErr, tt.wantKey, wantSigner)
		})
	}
}

// TestUntrustedPayloadOldStyle: pullgate's signature API passes on what Verify accepts,
// so the untrusted parse takes the old-style form too, and keeps refusing a message
// with more than one signature in either form.
func TestUntrustedPayloadOldStyle(t *testing.T) {
	a := pgptest.NewKey(t, "a", pgptest.KeyOptions{})
	b := pgptest.NewKey(t, "b", pgptest.KeyOptions{})
	good := pgptest.Payload(testDigest, "example.com/a:1")
	keys := func(ks ...*packet.PrivateKey) []*packet.PrivateKey { return ks }
	for _, tt := range []struct {
		name    string
		opts    pgptest.SignOptions
		wantErr string
	}{
		{"old-style", pgptest.SignOptions{Leading: keys(a.Primary())}, ""},
		{"old-style compressed", pgptest.SignOptions{Leading: keys(a.Primary()), Compress: true}, ""},
		{"one-pass", pgptest.SignOptions{Signers: keys(a.Primary())}, ""},
		{"two old-style", pgptest.SignOptions{Leading: keys(a.Primary(), b.Primary())}, "exactly one"},
		{"old-style and one-pass", pgptest.SignOptions{Leading: keys(b.Primary()), Signers: keys(a.Primary())}, "exactly one"},
		{"unsigned", pgptest.SignOptions{}, "not an OpenPGP signed message"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			claims, err := UntrustedPayload(pgptest.Sign(t, good, tt.opts))
			if tt.wantErr == "" {
				if err != nil || claims.ManifestDigest != testDigest {
					t.Fatalf("UntrustedPayload() = %+v, %v", claims, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrRejected) {
				t.Fatalf("UntrustedPayload() error = %v, want a rejection containing %q", err, tt.wantErr)
			}
		})
	}
}
