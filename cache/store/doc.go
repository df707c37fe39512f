// Package store is pullgate's content store: verified manifests, blobs, signatures and tag
// confirmations kept in one distribution storage driver (filesystem, s3, inmemory), served
// back by digest, evicted beyond a size by least recent serve.
//
// # Layout
//
// Inside the driver the layout is distribution's registry's, so operators recognise it, and
// every kept blob and manifest is one plain file holding exactly its bytes:
//
//	/docker/registry/v2/blobs/sha256/<2hex>/<hex>/data          content by digest: blobs,
//	                                                             manifests, signature records
//	/docker/registry/v2/repositories/<registry>/<repo>/
//	    _layers/sha256/<hex>/link                                a blob served for the repository
//	    _manifests/revisions/sha256/<hex>/link                   a manifest kept for it (the digest)
//	    _manifests/revisions/sha256/<hex>/record                 JSON: media type, size, refs
//	    _manifests/revisions/sha256/<hex>/served                 last serve (RFC 3339), lazily
//	    _manifests/revisions/sha256/<hex>/pinned                 present: never evicted
//	    _manifests/tags/<tag>/current/link                       JSON {digest, confirmed}
//	    _signatures/sha256/<hex>/link                            digest of the signatures record
//	/docker/registry/v2/_uploads/<random>                        staging and spools
//	/docker/registry/v2/_leases/<hex>                            a replica's download in flight
//
// <registry> is the registry name with every byte outside [A-Za-z0-9.-] (and a leading '.')
// written as '_' and two lower-case hex digits, since the drivers accept no ':' in a path:
// 127.0.0.1:5001 is 127.0.0.1_3a5001, and '_' itself is _5f, so the encoding is injective.
// Repository names and tags are written as they are: their grammar fits the drivers' paths,
// and a repository component never starts with '_'.
//
// # Integrity
//
// Nothing is written in place where a half-written object could be read: small objects go
// to _uploads and are moved into place (the filesystem driver's PutContent truncates in
// place), except where the driver's PutContent is atomic (s3, inmemory). A download is
// spooled (with the filesystem driver under its _uploads, so the commit is a rename) and
// committed only after its digest and size matched. Spools and staging left by a killed
// process are never served (nothing reads _uploads) and are removed at Open once older than
// StagingMaxAge; younger ones may be a live replica's. Manifests and signature records are
// re-hashed at every read; blobs are hashed whole at their first serve after start (Checked,
// VerifyBlob), and what no longer matches is dropped with one error line.
//
// # Shared downloads
//
// Fetch starts one download per missing digest and lets concurrent callers join: each
// reads the spool up to what was written and waits for more, so a late joiner gets the
// whole body. The download runs detached from the callers' contexts (bounded by open's own
// deadlines), so a caller that goes away does not cancel it for the others. A body that does
// not match its digest or announced size, or is cut short, ends every reader with an error,
// never a clean EOF, and leaves nothing behind. When the spool or the store cannot be
// written, the bytes are still delivered: relayed unkept (one error line, then
// UnwritableFor without trying); a spool that fails mid-download hands each reader over to
// its own upstream request, its hash continued from the shared one. Small writes
// (manifests, tags, links, signatures) that fail mark the store unwritable the same way, and
// fail at once (ErrUnavailable) while it is marked.
//
// Replicas sharing the store (any driver but inmemory) also share downloads: before it
// opens the upstream, a download takes a lease object (_leases/<hex>) in the store, and a
// replica that finds another's live lease waits for the blob to be committed and serves it
// from the store. A lease that stops changing (its holder was killed) is taken over. See
// lease.go.
//
// # Eviction
//
// Beyond MaxSize, a pass removes content no kept manifest references (after OrphanGrace),
// then the least recently served unpinned images: a top-level manifest with the children of
// an index and the referrers of either, in one repository. Content stays while any kept
// manifest of any repository references it. Pinned images and blobs being fetched are never
// removed.
package store
