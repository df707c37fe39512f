// Package simplesign verifies "simple signing" signatures (containers-signature(5), the
// "atomic container signature" format that podman, skopeo and CRI-O read from lookaside
// stores and the registry signature API): an OpenPGP signed message whose literal data is a
// JSON payload naming a manifest digest and a docker reference.
//
// The package checks the cryptography and parses the payload; it does not decide whether
// the payload's claims fit an image (comparing the digest and the identity is the policy
// engine's job). It follows containers/image (signature/mechanism_openpgp.go,
// signature/simple.go): keys are identified by the fingerprint of their primary key, a
// signature made by a signing subkey counts for its primary key, and the payload is parsed
// only after the signature has verified.
//
// Where go-crypto and gpg disagree, the verdicts are gpg's, as podman reaches them with
// its default gpgme backend: a key without key flags signs as its algorithm allows (a
// subkey only when cross-certified, usage.go); the old message form with the signature
// packet before the literal data verifies, and mixing it with a one-pass signature is
// refused (oldstyle.go); a signature older than its signing key, or by a key created
// after the verifier's clock, is refused; a signature made after the verifier's clock is
// accepted (times.go). Unlike gpgme, it refuses signatures whose message digest is SHA-1,
// MD5 or RIPEMD-160, and signatures dated more than maxClockSkew after its clock, for
// which gpgme sets no bound.
package simplesign
