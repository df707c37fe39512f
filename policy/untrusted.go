package policy

import (
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/policy/simplesign"
)

// UntrustedSimpleSigningDigest returns the manifest digest that a simple-signing
// signature (a raw OpenPGP message, as in Signature.Data) claims to sign, after parsing it
// as an OpenPGP signed message with a strict simple-signing payload, but WITHOUT verifying
// it against any key. It decides what pullgate passes on as a signature of an image (its
// signature API); it never makes anything trusted.
func UntrustedSimpleSigningDigest(untrustedSignature []byte) (digest.Digest, error) {
	claims, err := simplesign.UntrustedPayload(untrustedSignature)
	if err != nil {
		return "", err
	}
	return claims.ManifestDigest, nil
}
