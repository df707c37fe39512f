package policy

import (
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

// TestUntrustedSimpleSigningDigestArmored: pullgate's signature API passes on an armored
// signature API entry as it passes on a binary or clearsigned one (podman accepts all
// three), and refuses a clearsigned message followed by another block (gpg refuses it).
func TestUntrustedSimpleSigningDigestArmored(t *testing.T) {
	key := pgptest.NewKey(t, "k", pgptest.KeyOptions{})
	d := digest.FromString("manifest")
	p := pgptest.Payload(d.String(), "registry.example/app:1")
	binary := pgptest.Sign(t, p, pgptest.SignOptions{Signers: []*packet.PrivateKey{key.Primary()}, Compress: true})
	armored := pgptest.Armor(t, "PGP MESSAGE", binary)
	if got, err := UntrustedSimpleSigningDigest(armored); err != nil || got != d {
		t.Fatalf("armored: %q, %v; want %s", got, err, d)
	}
	clear := pgptest.ClearSign(t, p, key.Primary())
	if got, err := UntrustedSimpleSigningDigest(append(append(clear, '\n'), armored...)); err == nil {
		t.Fatalf("clearsigned message followed by an armored one: accepted, naming %q", got)
	}
}
