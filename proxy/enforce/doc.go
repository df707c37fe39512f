// Package enforce is pullgate's admission.Gate: it decides, for every manifest and blob about to
// be served, whether the site's containers-policy.json trusts it.
//
// Manifests are evaluated by the policy engine against the signatures found for their
// digest (DESIGN.md request flow). Verdicts are cached by policy generation, identity and
// digest; outcomes that could not be decided are never cached. A decision is served only if
// the policy generation it was made under is still current when it is made; otherwise it
// is made again under the new policy (at most maxDecideAttempts times, then 503). An
// accepted decision names the scope and the requirements that accepted it.
//
// Multi-arch images follow DESIGN.md's "Where pullgate differs from podman":
//   - a child manifest is accepted when its own signatures satisfy the policy, or when it
//     is listed by an index that was accepted by its own signatures, under the identity
//     that index was accepted for (under another tag the child is judged by that tag's
//     scope alone);
//   - an index is served when it or one of its children is accepted;
//   - the parent-index memory is per client (its IP address, without the port): only an
//     index served to a client is remembered, for that client, with the identity it was
//     requested by. A client's by-digest fetch of a child is judged under each of that
//     client's remembered parents' identities (newest first, at most maxParentsPerChild)
//     and under its own digest identity, and accepted if any accepts. One client's
//     requests never change how another client's request is judged.
//
// Blobs are served only while an accepted manifest of the same registry and repository
// that lists them is remembered. Admissions are derived from accepted manifests: an LRU of
// manifests (as many as the verdict cache holds, with a bound on their blob references in
// total) and a reverse index from blob to manifests, kept in step on every add and
// eviction; a blob request refreshes its manifest. Another repository's traffic evicts a
// blob only by evicting, in LRU order, the accepted manifest it belongs to. A manifest
// listing more than maxManifestBlobs blobs is refused. A digest served or refused as a
// manifest is never served as a blob.
//
// The policy check is skipped only for a real signature attachment of content the policy
// accepted:
//   - a cosign attachment requested by its tag sha256-<hex>.sig or .att, a referrer
//     fetched by digest whose subject names the subject, or the referrers tag index
//     sha256-<hex> whose entries all declare signature artifact types;
//   - whose subject was accepted as a manifest in the same registry and repository under
//     the current policy (served to some client, or accepted when evaluated by its digest
//     identity);
//   - an OCI or Docker image manifest of 1 to maxAttachmentLayers layers, each of a media
//     type its kind holds (.sig: simple signing; .att: DSSE; referrer: Sigstore bundle,
//     DSSE, in-toto) and of 1 byte to 4 MiB, with a config that cannot be run (the OCI
//     empty descriptor, or an image config of at most 64 KiB naming no OS or architecture);
//   - and whose blobs, read from the upstream and verified, are each the JSON document its
//     media type promises (a tar, gzip or zstd layer never is). The result of that check
//     is cached by the attachment's digest.
//
// Its blobs are then admitted for that attachment alone. Everything else, whatever its
// layer media types, is evaluated by the policy as an image.
package enforce
