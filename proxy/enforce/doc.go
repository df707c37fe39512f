// Package enforce is pullgate's proxy.Gate: it decides, for every manifest and blob about to
// be served, whether the site's containers-policy.json trusts it.
//
// Manifests are evaluated by the policy engine against the signatures found for their
// digest (DESIGN.md request flow). Verdicts are cached by policy generation, identity and
// digest; outcomes that could not be decided are never cached. Multi-arch images follow
// DESIGN.md's "Where pullgate differs from podman": a child manifest is accepted when its own
// signatures satisfy the policy or when it is listed by an index whose own signatures do
// (for the identity the index was requested by: under another tag the child is judged by
// that tag's scope alone), an index is served when it or one of its children is accepted, and a child fetched by
// digest is evaluated with the identity its index was requested by.
//
// Blobs are served only when an accepted manifest of the same repository references them,
// so no layer of an unverified image leaks out by digest.
//
// Signature artifacts (cosign .sig/.att, Sigstore bundles, notation signatures, SBOMs: a
// manifest whose layers are all such types) are served without a policy check: they are
// how clients find signatures, and no runtime can run them.
package enforce
