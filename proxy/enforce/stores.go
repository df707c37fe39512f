package enforce

import (
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/policy"
)

// The gate's decisions depend on what it remembers: verdicts, and the manifests it
// admitted with their blobs. Both sit behind the small interfaces below, so that a store
// shared by replicas can replace the in-memory defaults. Every key names the policy it
// was made under (the gate's policy key, see Gate), so an implementation never has to be
// purged on a reload: a verdict or admission made under one policy is never looked up
// under another. Implementations must be safe for concurrent use.

// Key names a digest inside one repository of one upstream, under one policy.
type Key struct {
	Policy     string // the policy key in force when the entry was made
	Registry   string
	Repository string
	Digest     digest.Digest
}

// VerdictKey names the verdict on a manifest digest under one identity and one policy.
type VerdictKey struct {
	Policy   string
	Identity string // the policy identity: includes registry and repository
	Digest   digest.Digest
}

// VerdictStore holds policy verdicts. Only decided verdicts are stored (indeterminate
// outcomes never are). Get must not return an entry older than the ttl it was added
// with. *cache.TTL[VerdictKey, policy.Verdict] implements it and is the default.
type VerdictStore interface {
	Get(k VerdictKey) (policy.Verdict, bool)
	Add(k VerdictKey, v policy.Verdict, ttl time.Duration)
}

// AdmissionStore remembers the manifests the gate served and the blobs each lists: a
// blob is served only while a manifest of its repository that lists it is remembered.
// The default is an in-memory LRU of manifests with a reverse index from blob to
// manifests (admissions).
type AdmissionStore interface {
	// Admit remembers manifest m, listing blobs, for ttl. accepted is true for a manifest
	// the policy accepted or an index served, which may be the subject of a signature
	// attachment; false for a signature attachment.
	Admit(m Key, blobs []digest.Digest, accepted bool, ttl time.Duration)
	// HasBlob reports whether an unexpired remembered manifest of b's policy, registry and
	// repository lists b.Digest, and refreshes that manifest: a pull in progress keeps
	// the layers it is fetching.
	HasBlob(b Key) bool
	// Accepted reports whether manifest m is remembered, unexpired, with accepted true.
	Accepted(m Key) bool
	// SeenManifest remembers for ttl that m was served or refused as a manifest;
	// IsManifest reports it. Such a digest is never served as a blob, whatever an
	// artifact lists (containerd falls back to /blobs/<digest> for a manifest).
	SeenManifest(m Key, ttl time.Duration)
	IsManifest(m Key) bool
}
