// Package policytest makes OpenPGP keys and simple-signing signatures for tests of
// packages outside policy/ (the enforcement gate, the signature sources). It exports the
// builders of policy/internal/pgptest, which only policy/... can import.
//
// Test-only: keys are generated fresh with go-crypto and nothing in pullgate's binaries
// imports this package.
package policytest

import (
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/pullgate/pullgate/policy/internal/pgptest"
)

type (
	// Key is a generated OpenPGP key with its private parts.
	Key = pgptest.Key
	// KeyOptions tunes NewKey.
	KeyOptions = pgptest.KeyOptions
	// SignOptions tunes Sign.
	SignOptions = pgptest.SignOptions
)

// NewKey generates a key whose primary key can certify and sign (Ed25519 unless
// opts.RSABits is set).
func NewKey(t testing.TB, name string, opts KeyOptions) *Key { return pgptest.NewKey(t, name, opts) }

// Sign returns an OpenPGP message holding content as literal data, signed as opts says.
func Sign(t testing.TB, content []byte, opts SignOptions) []byte {
	return pgptest.Sign(t, content, opts)
}

// Payload returns a simple-signing payload for a manifest digest and a docker reference,
// formatted as containers/image writes it.
func Payload(manifestDigest, dockerReference string) []byte {
	return pgptest.Payload(manifestDigest, dockerReference)
}

// SimpleSignature is a complete simple signature, as skopeo --sign-by stores it: the
// payload for (manifestDigest, dockerReference), signed by key's primary key, compressed.
func SimpleSignature(t testing.TB, key *Key, manifestDigest, dockerReference string) []byte {
	t.Helper()
	return pgptest.Sign(t, pgptest.Payload(manifestDigest, dockerReference),
		pgptest.SignOptions{Signers: []*packet.PrivateKey{key.Primary()}, Compress: true})
}
