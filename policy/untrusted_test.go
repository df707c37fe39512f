package policy

import (
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

// untrustedSeeds are simple signatures and near misses of them, for the unit and fuzz
// tests of UntrustedSimpleSigningDigest.
func untrustedSeeds(t testing.TB) (d digest.Digest, good, clear []byte, bad map[string][]byte) {
	key := pgptest.NewKey(t, "k", pgptest.KeyOptions{})
	other := pgptest.NewKey(t, "o", pgptest.KeyOptions{})
	signers := func(k ...*pgptest.Key) []*packet.PrivateKey {
		var out []*packet.PrivateKey
		for _, x := range k {
			out = append(out, x.Primary())
		}
		return out
	}
	d = digest.FromString("manifest")
	p := pgptest.Payload(d.String(), "registry.example/app:1")
	good = pgptest.Sign(t, p, pgptest.SignOptions{Signers: signers(key), Compress: true})
	clear = pgptest.ClearSign(t, p, key.Primary())
	bad = map[string][]byte{
		"empty":             {},
		"first byte only":   {0x88, '{', '}'},
		"unsigned literal":  pgptest.Sign(t, p, pgptest.SignOptions{}),
		"two signatures":    pgptest.Sign(t, p, pgptest.SignOptions{Signers: signers(key, other)}),
		"not a payload":     pgptest.Sign(t, []byte(`{"secret":"x"}`), pgptest.SignOptions{Signers: signers(key)}),
		"cosign type":       pgptest.Sign(t, []byte(`{"critical":{"type":"cosign container image signature","image":{"docker-manifest-digest":"`+d.String()+`"},"identity":{"docker-reference":"r"}},"optional":{}}`), pgptest.SignOptions{Signers: signers(key)}),
		"truncated":         good[:len(good)/2],
		"clearsigned, junk": append([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{}\n-----BEGIN PGP SIGNATURE-----\n\n"), []byte("AAAA\n-----END PGP SIGNATURE-----\n")...),
	}
	return d, good, clear, bad
}

func TestUntrustedSimpleSigningDigest(t *testing.T) {
	d, good, clear, bad := untrustedSeeds(t)
	for name, sig := range map[string][]byte{"signed message": good, "clearsigned": clear} {
		got, err := UntrustedSimpleSigningDigest(sig)
		if err != nil || got != d {
			t.Errorf("%s: %q, %v; want %s", name, got, err, d)
		}
	}
	for name, sig := range bad {
		if got, err := UntrustedSimpleSigningDigest(sig); err == nil {
			t.Errorf("%s: accepted, naming %q", name, got)
		}
	}
}

func FuzzUntrustedSimpleSigningDigest(f *testing.F) {
	_, good, clear, bad := untrustedSeeds(f)
	f.Add(good)
	f.Add(clear)
	for _, b := range bad {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := UntrustedSimpleSigningDigest(data)
		if err == nil && d.Validate() != nil {
			t.Fatalf("accepted a payload naming an invalid digest %q", d)
		}
	})
}
