package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// record is the small JSON file kept next to a manifest's revision link: what the
// eviction and ManifestsReferencing need without re-parsing the manifest.
type record struct {
	Digest    digest.Digest   `json:"digest"`
	MediaType string          `json:"mediaType"`
	Size      int64           `json:"size"`
	Blobs     []digest.Digest `json:"blobs,omitempty"`
	Manifests []digest.Digest `json:"manifests,omitempty"`
	Subject   digest.Digest   `json:"subject,omitempty"`
}

// refsAll lists every content digest the record's manifest references.
func (r *record) refsAll() []digest.Digest {
	out := make([]digest.Digest, 0, len(r.Blobs)+len(r.Manifests))
	out = append(out, r.Blobs...)
	return append(out, r.Manifests...)
}

func checkRefs(refs Refs) error {
	if n := len(refs.Blobs) + len(refs.Manifests); n > MaxRefs {
		return fmt.Errorf("%d references, more than %d: %w", n, MaxRefs, ErrInvalid)
	}
	for _, d := range append(append([]digest.Digest{}, refs.Blobs...), refs.Manifests...) {
		if err := checkDigest(d); err != nil {
			return err
		}
	}
	if refs.Subject != "" {
		if err := checkDigest(refs.Subject); err != nil {
			return err
		}
	}
	return nil
}

// parseRecord parses a record read back; anything malformed wraps ErrCorrupt.
func parseRecord(b []byte) (*record, error) {
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("manifest record of %d bytes: %w", len(b), ErrCorrupt)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("manifest record: %v: %w", err, ErrCorrupt)
	}
	if checkDigest(r.Digest) != nil {
		return nil, fmt.Errorf("manifest record: bad digest: %w", ErrCorrupt)
	}
	if len(r.MediaType) > MaxMediaTypeLen || r.Size < 0 || r.Size > MaxManifestSize {
		return nil, fmt.Errorf("manifest record: bad media type or size: %w", ErrCorrupt)
	}
	if err := checkRefs(Refs{Blobs: r.Blobs, Manifests: r.Manifests, Subject: r.Subject}); err != nil {
		return nil, fmt.Errorf("manifest record: %v: %w", err, ErrCorrupt)
	}
	return &r, nil
}

// tagLink is the content of a tag's current/link.
type tagLink struct {
	Digest    digest.Digest `json:"digest"`
	Confirmed string        `json:"confirmed"`
}

func marshalTag(t Tag) []byte {
	b, _ := json.Marshal(tagLink{Digest: t.Digest, Confirmed: t.Confirmed.UTC().Format(time.RFC3339Nano)})
	return b
}

// parseTag parses a tag link read back. A bare digest (distribution's own tag link) reads as
// a tag never confirmed.
func parseTag(b []byte) (Tag, error) {
	if len(b) > MaxLinkSize {
		return Tag{}, fmt.Errorf("tag link of %d bytes: %w", len(b), ErrCorrupt)
	}
	b = bytes.TrimSpace(b)
	if d := digest.Digest(b); checkDigest(d) == nil {
		return Tag{Digest: d}, nil
	}
	var l tagLink
	if err := json.Unmarshal(b, &l); err != nil {
		return Tag{}, fmt.Errorf("tag link: %v: %w", err, ErrCorrupt)
	}
	if checkDigest(l.Digest) != nil {
		return Tag{}, fmt.Errorf("tag link: bad digest: %w", ErrCorrupt)
	}
	t, err := time.Parse(time.RFC3339Nano, l.Confirmed)
	if err != nil {
		return Tag{}, fmt.Errorf("tag link: confirmed time: %w", ErrCorrupt)
	}
	return Tag{Digest: l.Digest, Confirmed: t}, nil
}

// parseLink parses a link file holding one digest.
func parseLink(b []byte) (digest.Digest, error) {
	if len(b) > MaxLinkSize {
		return "", fmt.Errorf("link of %d bytes: %w", len(b), ErrCorrupt)
	}
	d := digest.Digest(strings.TrimSpace(string(b)))
	if checkDigest(d) != nil {
		return "", fmt.Errorf("link %q: %w", b, ErrCorrupt)
	}
	return d, nil
}

// parseServed parses a served-time file; anything else reads as never served.
func parseServed(b []byte) time.Time {
	if len(b) > MaxServedSize {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	if err != nil {
		return time.Time{}
	}
	return t
}

// sigRecord is the JSON record of one image's signatures, kept as content by its digest.
type sigRecord struct {
	Signatures []Signature `json:"signatures"`
}

func marshalSignatures(sigs []Signature) ([]byte, error) {
	if len(sigs) > MaxSignatures {
		return nil, fmt.Errorf("%d signatures, more than %d: %w", len(sigs), MaxSignatures, ErrInvalid)
	}
	if sigs == nil {
		sigs = []Signature{}
	}
	b, err := json.Marshal(sigRecord{Signatures: sigs})
	if err != nil {
		return nil, fmt.Errorf("signatures: %v: %w", err, ErrInvalid)
	}
	if len(b) > MaxSignatureRecordSize {
		return nil, fmt.Errorf("signatures record of %d bytes, more than %d: %w", len(b), MaxSignatureRecordSize, ErrInvalid)
	}
	return b, nil
}

// parseSignatures parses a signatures record read back (after its digest was checked).
func parseSignatures(b []byte) ([]Signature, error) {
	if len(b) > MaxSignatureRecordSize {
		return nil, fmt.Errorf("signatures record of %d bytes: %w", len(b), ErrCorrupt)
	}
	var r sigRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("signatures record: %v: %w", err, ErrCorrupt)
	}
	if len(r.Signatures) > MaxSignatures {
		return nil, fmt.Errorf("signatures record: %d entries: %w", len(r.Signatures), ErrCorrupt)
	}
	return r.Signatures, nil
}
