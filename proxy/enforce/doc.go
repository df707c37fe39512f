// Package enforce is pullgate's admission.Gate: it decides, for every manifest and blob about to
// be served, whether the site's containers-policy.json trusts it.
//
// Manifests are evaluated by the policy engine against the signatures found for their
// digest (DESIGN.md request flow). An accepted decision names the scope and the
// requirements that accepted it.
//
// Decisions and state are apart: the decisions (decide.go) keep nothing themselves; what
// they remember is in two small stores owned by this package (stores.go), each with an
// in-memory default that Options may replace (nil means the default):
//   - a VerdictStore: verdicts by (policy key, identity, digest), each for AcceptTTL or
//     DenyTTL; outcomes that could not be decided are never stored;
//   - an AdmissionStore: the manifests served, with the blobs each lists, and the digests
//     served or refused as manifests.
//
// The parent-index memory (per client, so process-local), the attachment check cache and
// the classification cache (both keyed by content alone) stay in memory.
//
// Every verdict and admission is keyed by the policy key of the policy in force: a
// sha256 over the IDs of the Evaluator and the Finder (Identified), that is over the
// policy file and every key file it names (policy.LoadFile) and over registries.d
// (sigsource.RegistriesD). Gates that load the same files, in one process or in replicas
// sharing a store, use the same keys, and a reload to the same files keeps what was
// remembered; after a reload to different files nothing made under the old ones is used,
// and nothing needs purging. A policy or finder without an ID (a parsed policy, a wrapper)
// gets a key of this gate's alone, new at every reload. A decision is served only if the
// policy key it was made under is still in force when it is made; otherwise it is made
// again under the new policy (at most maxDecideAttempts times, then 503). An Evaluator
// that decides differently from the policy it wraps must not expose that policy's ID.
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
// that lists them is remembered. Admissions are derived from accepted manifests: the
// default store is an LRU of manifests (as many as the default verdict store holds, with a
// bound on their blob references in total) and a reverse index from blob to manifests,
// kept in step on every add and eviction; a blob request refreshes its manifest. Another repository's traffic evicts a
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
