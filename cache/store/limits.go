package store

import "time"

// Bounds on what the store reads back, lists and keeps in memory. Everything read back
// could have been written by another replica or altered on disk, so nothing is trusted
// to be small.
const (
	// MaxManifestSize bounds a manifest kept or read back: distribution's registry
	// refuses manifests over 4 MiB, so no upstream serves a larger one to clients.
	MaxManifestSize = 4 << 20

	// MaxRefs bounds the references of one manifest record (layers + index children).
	// Real images have tens of layers and indexes tens of platforms.
	MaxRefs = 4096

	// MaxRecordSize bounds a manifest record read back: MaxRefs digests of 71 bytes,
	// with JSON quoting, a media type and the size, stay well under it.
	MaxRecordSize = 512 << 10

	// MaxMediaTypeLen bounds a media type kept in a record (RFC 6838 caps the parts at 127
	// characters each).
	MaxMediaTypeLen = 255

	// MaxLinkSize bounds a link file read back: "sha256:" and 64 hex digits, or for a tag
	// the small JSON {digest, confirmed}.
	MaxLinkSize = 1 << 10

	// MaxServedSize bounds a served-time file read back (one RFC 3339 time).
	MaxServedSize = 64

	// MaxTagsListed bounds Tags: the names are sorted and the first MaxTagsListed are
	// returned. Registries page tag lists; a repository with more is not a mirror's job.
	MaxTagsListed = 10000

	// MaxManifestsScanned bounds the revisions ManifestsReferencing indexes in one
	// repository (the first in sorted order).
	MaxManifestsScanned = 10000

	// MaxKeptIndexCost bounds the kept-manifest index (referencing.go), all repositories
	// together: each digest a record names costs 1, each manifest keptRevisionCost more;
	// a unit is about 35 bytes (measured: 47 MiB for 100,000 manifests of 10 references),
	// so the index holds at most about 36 MiB. 10,000 manifests of 10 layers cost 140,000.
	MaxKeptIndexCost = 1 << 20
	keptRevisionCost = 4
	// MaxKeptIndexRepos bounds the repositories whose index is kept while no lookup uses
	// it (least recently looked up forgotten first).
	MaxKeptIndexRepos = 1024
	// MaxConcurrentKeptScans bounds the index refreshes (a listing, and the records of
	// revisions not indexed yet) running at once, all repositories together; a lookup
	// waits for a slot for as long as its own context lasts.
	MaxConcurrentKeptScans = 8
	// keptScanReaders is how many records one refresh reads at once (a first lookup in a
	// repository of 10,000 manifests on s3 is 10,000 GETs).
	keptScanReaders = 8
	// KeptScanTimeout bounds one refresh, which runs detached from the lookups waiting for
	// it; records it did not read are read by the next one.
	KeptScanTimeout = 2 * time.Minute
	// keptImmediateRetries: a record that could not be read is read again at this many
	// refreshes (one being written is not there yet), then after a delay doubling from 1 s
	// up to keptRetryMaxDelay, at most maxKeptRetriesPerScan per refresh, so that corrupt
	// records do not cost reads at every lookup.
	keptImmediateRetries  = 3
	keptRetryMaxDelay     = time.Minute
	maxKeptRetriesPerScan = 16

	// MaxReferencingResults bounds the manifests ManifestsReferencing returns (the gate
	// decides through at most 4), and MaxReferencingChecks the links it checks to find
	// them: a base layer listed by thousands of manifests costs no more.
	MaxReferencingResults = 16
	MaxReferencingChecks  = 64

	// MaxSignatures bounds the entries of one signatures record, like the lookaside
	// loop's limit of 128 in containers/image, with room for the other sources.
	MaxSignatures = 256

	// MaxSignatureRecordSize bounds a signatures record written or read back.
	MaxSignatureRecordSize = 4 << 20

	// MaxConcurrentFetches bounds the shared downloads in flight at once; a Fetch beyond
	// it relays the upstream body unkept instead of waiting.
	MaxConcurrentFetches = 64
	// MaxUnannouncedBlobSize bounds a blob body whose size the upstream did not announce:
	// an endless body would otherwise spool until the disk is full. Real layers stay far
	// below; one that is larger must be served with a Content-Length.
	MaxUnannouncedBlobSize = 64 << 30

	// MaxCheckedRemembered bounds the digests remembered as hashed whole since start;
	// one forgotten is hashed again at its next serve.
	MaxCheckedRemembered = 1 << 18

	// MaxRecordsCached bounds the parsed manifest records kept in memory.
	MaxRecordsCached = 4096

	// MaxServedPending bounds the served times waiting in memory for the next flush; at
	// the bound a flush starts at once.
	MaxServedPending = 100000

	// MaxEvictEntries bounds the objects one eviction pass reads; a store holding more is
	// not evicted (one error line per pass) rather than loaded whole into memory.
	MaxEvictEntries = 2000000

	// MaxPurgeEntries bounds the staging entries looked at by one purge at Open.
	MaxPurgeEntries = 10000

	// StagingMaxAge: staging and spool entries older than this are debris of a killed
	// process and are removed at Open. Younger ones may belong to a live replica sharing
	// the store.
	StagingMaxAge = time.Hour

	// ServedFlushInterval: served times are written at most once per interval per
	// manifest (the eviction order needs minutes, not milliseconds).
	ServedFlushInterval = time.Minute

	// UnwritableFor: after a failed spool or store write, fetches relay the upstream body
	// unkept for this long without trying to keep it (one error line, not one per pull).
	UnwritableFor = 30 * time.Second

	// EvictDebounce gathers the commits of one pull into one eviction pass.
	EvictDebounce = 5 * time.Second

	// OrphanGrace: content referenced by no manifest is evicted only once this old, since
	// a pull commits its blobs around the time its manifest is kept.
	OrphanGrace = 10 * time.Minute

	// LeaseSettle is how long a replica waits after writing its download lease before it
	// reads it back: a replica writing at the same moment overwrites it within one round
	// trip to the store, so only one of them downloads. It delays every first fetch.
	LeaseSettle = 100 * time.Millisecond

	// LeaseBeat is how often the holder of a download lease rewrites it.
	LeaseBeat = 2 * time.Second

	// LeaseTTL: a lease whose content did not change for this long, on the waiter's own
	// clock, belongs to a holder that died or hung and is taken over (five missed beats).
	LeaseTTL = 10 * time.Second

	// LeasePoll is how often a waiting replica looks for the blob and the lease (two small
	// requests to the store per poll).
	LeasePoll = 250 * time.Millisecond

	// MaxLeaseWait bounds the wait for another replica's download; then this replica
	// fetches too (its clients have had no byte yet).
	MaxLeaseWait = 2 * time.Minute

	// copyBufferSize is the chunk a download reads and spools at a time.
	copyBufferSize = 256 << 10
)
