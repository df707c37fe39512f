// Package sigsource finds an image's signatures where podman, skopeo and CRI-O would find
// them: lookaside servers configured in containers-registries.d(5) (http, https and file
// URLs), the registry signature API extension (X-Registry-Supports-Signatures), cosign
// sigstore attachments (sha256-<hex>.sig tags), and, beyond containers/image, cosign v3
// Sigstore bundles attached through the OCI referrers API.
//
// Fetching is all or nothing (SPEC.md 1.6): any failure while obtaining the list of
// signatures fails the whole lookup, so that an unreachable server can never turn into a
// verdict. Individual bad signatures are the policy engine's business, not this package's.
//
// Whoever runs an upstream or a lookaside is not trusted (DESIGN.md threat model): one
// lookup reads at most maxSignaturesPerImage signatures and maxSignatureBytesPerImage
// bytes from all its sources together, and fails beyond; a lookaside is followed only
// through redirects on its own host, never to http from https; pullgate's signature API
// passes on only what parses as a signature of the image asked for; and a source is named
// in messages without its credentials or query.
package sigsource
