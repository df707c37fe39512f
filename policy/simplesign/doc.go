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
// only after the signature has verified. Unlike containers/image, it refuses signatures
// whose message digest is SHA-1, MD5 or RIPEMD-160.
package simplesign
