package store

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// Records read back may have been altered on disk or written by another replica: their
// parsers must never panic, and what they accept must be within the bounds.

func FuzzParseRecord(f *testing.F) {
	d := digest.FromString("m")
	good, _ := json.Marshal(&record{Digest: d, MediaType: "application/vnd.oci.image.index.v1+json", Size: 10,
		Blobs: []digest.Digest{digest.FromString("a")}, Manifests: []digest.Digest{digest.FromString("b")}, Subject: digest.FromString("c")})
	f.Add(good)
	f.Add([]byte(`{"digest":"sha256:` + d.Encoded() + `","size":-1}`))
	f.Add([]byte(`{"digest":"sha512:00","blobs":["x"]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRecord(b)
		if err != nil {
			return
		}
		if checkDigest(r.Digest) != nil || len(r.Blobs)+len(r.Manifests) > MaxRefs || r.Size < 0 || r.Size > MaxManifestSize {
			t.Fatalf("accepted %+v", r)
		}
		for _, x := range r.refsAll() {
			if checkDigest(x) != nil {
				t.Fatalf("accepted ref %q", x)
			}
		}
	})
}

func FuzzParseTag(f *testing.F) {
	d := digest.FromString("t")
	f.Add(marshalTag(Tag{Digest: d, Confirmed: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}))
	f.Add([]byte(d.String()))
	f.Add([]byte(`{"digest":"` + d.String() + `","confirmed":"yesterday"}`))
	f.Add([]byte(`{"digest":"sha256:zz"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tag, err := parseTag(b)
		if err != nil {
			return
		}
		if checkDigest(tag.Digest) != nil {
			t.Fatalf("accepted %+v", tag)
		}
		// What parses round-trips through what PutTag writes.
		back, err := parseTag(marshalTag(tag))
		if err != nil || back.Digest != tag.Digest || !back.Confirmed.Equal(tag.Confirmed) && !tag.Confirmed.IsZero() {
			t.Fatalf("round trip %+v -> %+v, %v", tag, back, err)
		}
	})
}

func FuzzParseSignatures(f *testing.F) {
	good, _ := marshalSignatures([]Signature{{Format: "simple", Data: []byte{1, 2}, Annotations: map[string]string{"a": "b"}}})
	f.Add(good)
	f.Add([]byte(`{"signatures":[{"data":"!!"}]}`))
	f.Add([]byte(`{"signatures":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sigs, err := parseSignatures(b)
		if err != nil {
			return
		}
		if len(sigs) > MaxSignatures {
			t.Fatalf("accepted %d signatures", len(sigs))
		}
	})
}

func FuzzLinkAndServed(f *testing.F) {
	f.Add([]byte(digest.FromString("l").String()))
	f.Add([]byte("2026-01-02T03:04:05.000000006Z"))
	f.Add([]byte("sha256:" + string(bytes.Repeat([]byte{'a'}, 63))))
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := parseLink(b); err == nil && checkDigest(d) != nil {
			t.Fatalf("accepted link %q", d)
		}
		parseServed(b)
	})
}

// FuzzRegistryEncoding: the encoding is injective (decoding gives the name back), and every
// encoded name is one path component the drivers accept.
func FuzzRegistryEncoding(f *testing.F) {
	for _, s := range []string{"docker.io", "127.0.0.1:5001", "[::1]:5000", "a_b", ".x", "..", "_5f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, r string) {
		enc := encodeRegistry(r)
		if r != "" && !storagedriverPath(enc) {
			t.Fatalf("encode(%q) = %q: not a path component", r, enc)
		}
		back, ok := decodeRegistry(enc)
		if !ok || back != r {
			t.Fatalf("decode(encode(%q)) = %q, %v", r, back, ok)
		}
		if dec, ok := decodeRegistry(r); ok && encodeRegistry(dec) != r {
			t.Fatalf("decode(%q) = %q does not encode back", r, dec)
		}
	})
}

// FuzzParseRepoObject: object paths found by an eviction walk (anything under
// repositories/) parse without panicking, and what parses has a valid digest or tag.
func FuzzParseRepoObject(f *testing.F) {
	d := digest.FromString("x")
	f.Add(revisionDir("docker.io", "a/b", d) + "/link")
	f.Add(layerLinkPath("127.0.0.1:5000", "a", d))
	f.Add(tagLinkPath("docker.io", "a", "v1"))
	f.Add(signaturesLinkPath("docker.io", "a", d))
	f.Add(blobPath(d))
	f.Fuzz(func(t *testing.T, p string) {
		if o, ok := parseRepoObject(p); ok {
			if o.kind == "tag" {
				if o.tag == "" {
					t.Fatalf("empty tag from %q", p)
				}
			} else if checkDigest(o.digest) != nil {
				t.Fatalf("bad digest from %q", p)
			}
		}
		if d, ok := parseBlobObject(p); ok && checkDigest(d) != nil {
			t.Fatalf("bad blob digest from %q", p)
		}
	})
}
