package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/internal/testsupport/versitygw"
)

var ctx = context.Background()

func TestNewDriver(t *testing.T) {
	base := t.TempDir()
	for _, tc := range []struct {
		name    string
		storage map[string]any
		wantErr string // "" = builds
		root    string // for filesystem: the folder it resolves to
	}{
		{"relative root against the config folder", map[string]any{"filesystem": map[string]any{"rootdirectory": "./data"}}, "", filepath.Join(base, "data")},
		{"absolute root", map[string]any{"filesystem": map[string]any{"rootdirectory": filepath.Join(base, "abs")}}, "", filepath.Join(base, "abs")},
		{"yaml v2 map shape", map[string]any{"filesystem": map[any]any{"rootdirectory": "d2"}}, "", filepath.Join(base, "d2")},
		{"inmemory without parameters", map[string]any{"inmemory": nil}, "", ""},
		{"redirect refused", map[string]any{"filesystem": map[string]any{"rootdirectory": "x"}, "redirect": map[string]any{"disable": true}}, `"redirect"`, ""},
		{"delete refused", map[string]any{"inmemory": nil, "delete": map[string]any{"enabled": true}}, `"delete"`, ""},
		{"cache refused", map[string]any{"inmemory": nil, "cache": map[string]any{}}, `"cache"`, ""},
		{"maintenance refused", map[string]any{"inmemory": nil, "maintenance": map[string]any{}}, `"maintenance"`, ""},
		{"two drivers", map[string]any{"inmemory": nil, "filesystem": map[string]any{"rootdirectory": "x"}}, "more than one driver", ""},
		{"no driver", map[string]any{}, "no driver", ""},
		{"unknown driver", map[string]any{"azure": map[string]any{}}, `"azure"`, ""},
		{"filesystem without root", map[string]any{"filesystem": map[string]any{}}, "rootdirectory", ""},
		{"parameters not a map", map[string]any{"filesystem": "./data"}, "storage.filesystem", ""},
		{"s3 without bucket", map[string]any{"s3": map[string]any{"region": "us-east-1"}}, "storage.s3", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewDriver(ctx, tc.storage, base)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrConfig naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.root != "" {
				lr, ok := d.(localRooter)
				if !ok || lr.LocalRoot() != tc.root {
					t.Fatalf("root = %v, want %s", d, tc.root)
				}
			}
		})
	}
}

func TestOpenUnusable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	testsupport.WriteFile(t, file, "")
	// A root below a plain file cannot be made, even by root.
	d, err := NewDriver(ctx, map[string]any{"filesystem": map[string]any{"rootdirectory": filepath.Join(file, "data")}}, "/")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, Options{Driver: d})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "cannot be written") || !strings.Contains(err.Error(), file) {
		t.Fatalf("Open = %v, want ErrUnavailable naming the write and the folder", err)
	}
	if _, err := Open(ctx, Options{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("Open without driver = %v", err)
	}
}

func TestManifestRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := open(t, b, Options{})
		s := f.s
		layer := digest.FromString("layer")
		m := testManifest(t, "application/vnd.oci.image.manifest.v1+json", layer)
		const reg, repo = "127.0.0.1:5001", "library/alpine"
		if err := s.PutManifest(ctx, reg, repo, m, Refs{Blobs: []digest.Digest{layer}}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutManifest(ctx, reg, repo, m, Refs{Blobs: []digest.Digest{layer}}); err != nil {
			t.Fatalf("second put: %v", err)
		}
		got, err := s.GetManifest(ctx, reg, repo, m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes, m.Bytes) || got.MediaType != m.MediaType || got.Digest != m.Digest {
			t.Fatalf("got %+v", got)
		}
		for _, tc := range []struct{ reg, repo string }{
			{reg, "library/other"}, {"127.0.0.1_3a5001", repo}, {"docker.io", repo},
		} {
			if _, err := s.GetManifest(ctx, tc.reg, tc.repo, m.Digest); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s/%s: %v, want ErrNotFound (no link there)", tc.reg, tc.repo, err)
			}
		}
		refs, err := s.ManifestsReferencing(ctx, reg, repo, layer)
		if err != nil || len(refs) != 1 || refs[0] != m.Digest {
			t.Fatalf("ManifestsReferencing = %v, %v", refs, err)
		}
		if refs, _ := s.ManifestsReferencing(ctx, reg, "library/other", layer); len(refs) != 0 {
			t.Fatalf("other repo references %v", refs)
		}

		bad := m
		bad.Bytes = append([]byte{}, m.Bytes...)
		bad.Bytes[0] ^= 1
		if err := s.PutManifest(ctx, reg, repo, bad, Refs{}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("put of bytes not matching the digest: %v", err)
		}
		for _, tc := range []struct{ reg, repo string }{{"", repo}, {reg, "Upper"}, {reg, "a/_layers"}, {reg, "../x"}, {"a/b", repo}} {
			if err := s.PutManifest(ctx, tc.reg, tc.repo, m, Refs{}); !errors.Is(err, ErrInvalid) {
				t.Fatalf("put to %q/%q: %v", tc.reg, tc.repo, err)
			}
		}
		if err := s.PutManifest(ctx, reg, repo, Manifest{Digest: digest.SHA512.FromBytes(nil)}, Refs{}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("sha512: %v", err)
		}
		if b.name == "filesystem" {
			// Plain files: the manifest is one file holding exactly its bytes.
			onDisk, err := os.ReadFile(localPath(f, blobPath(m.Digest)))
			if err != nil || !bytes.Equal(onDisk, m.Bytes) {
				t.Fatalf("file on disk: %v", err)
			}
			if _, err := os.Stat(localPath(f, reposPath+"/127.0.0.1_3a5001/library/alpine/_manifests/revisions/sha256/"+m.Digest.Encoded()+"/link")); err != nil {
				t.Fatal(err)
			}
		}
		uploadsEmpty(t, f)
	})
}

func TestManifestCorrupt(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := open(t, b, Options{})
		m := testManifest(t, "application/vnd.oci.image.manifest.v1+json")
		if err := f.s.PutManifest(ctx, "docker.io", "a/b", m, Refs{}); err != nil {
			t.Fatal(err)
		}
		flipped := append([]byte{}, m.Bytes...)
		flipped[len(flipped)/2] ^= 0x20
		if err := f.d.PutContent(ctx, blobPath(m.Digest), flipped); err != nil { // bit rot
			t.Fatal(err)
		}
		if _, err := f.s.GetManifest(ctx, "docker.io", "a/b", m.Digest); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("corrupt manifest: %v, want ErrCorrupt", err)
		}
		if n := len(f.logs.Lines("level=ERROR", "corrupt manifest", m.Digest.String())); n != 1 {
			t.Fatalf("%d error lines, want 1:\n%s", n, f.logs)
		}
		if _, err := f.s.GetManifest(ctx, "docker.io", "a/b", m.Digest); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after the drop: %v, want ErrNotFound", err)
		}
		if _, err := f.d.Stat(ctx, blobPath(m.Digest)); !isNotFound(err) {
			t.Fatalf("corrupt content still kept: %v", err)
		}
		if f.s.Stats().Corrupt != 1 {
			t.Fatalf("stats %+v", f.s.Stats())
		}
		// A re-fetch keeps it again.
		if err := f.s.PutManifest(ctx, "docker.io", "a/b", m, Refs{}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.GetManifest(ctx, "docker.io", "a/b", m.Digest); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTags(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := open(t, b, Options{})
		s := f.s
		d1, d2 := digest.FromString("one"), digest.FromString("two")
		if _, err := s.Tags(ctx, "docker.io", "library/alpine"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Tags of an unknown repository: %v", err)
		}
		if _, err := s.GetTag(ctx, "docker.io", "library/alpine", "3.20"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetTag unknown: %v", err)
		}
		t1 := f.clock.Now()
		if err := s.PutTag(ctx, "docker.io", "library/alpine", "3.20", d1); err != nil {
			t.Fatal(err)
		}
		f.clock.Add(time.Minute + time.Nanosecond)
		t2 := f.clock.Now()
		for _, tag := range []string{"latest", "3.20", "a_b.c-d"} {
			if err := s.PutTag(ctx, "docker.io", "library/alpine", tag, d2); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.GetTag(ctx, "docker.io", "library/alpine", "3.20")
		if err != nil || got.Digest != d2 || !got.Confirmed.Equal(t2) {
			t.Fatalf("GetTag = %+v, %v; want %s at %s", got, err, d2, t2)
		}
		_ = t1
		tags, err := s.Tags(ctx, "docker.io", "library/alpine")
		if err != nil || strings.Join(tags, ",") != "3.20,a_b.c-d,latest" {
			t.Fatalf("Tags = %v, %v", tags, err)
		}
		for _, bad := range []string{"", ".x", "-x", strings.Repeat("a", 129), "a/b", "a:b"} {
			if err := s.PutTag(ctx, "docker.io", "library/alpine", bad, d1); !errors.Is(err, ErrInvalid) {
				t.Fatalf("tag %q: %v", bad, err)
			}
		}
		// A link that does not parse is dropped.
		if err := f.d.PutContent(ctx, tagLinkPath("docker.io", "library/alpine", "latest"), []byte(`{"digest":`)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetTag(ctx, "docker.io", "library/alpine", "latest"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("corrupt tag: %v", err)
		}
		if _, err := s.GetTag(ctx, "docker.io", "library/alpine", "latest"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after the drop: %v", err)
		}
	})
}

func TestSignatures(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := open(t, b, Options{})
		s := f.s
		d := digest.FromString("image")
		if _, err := s.Signatures(ctx, "docker.io", "a/b", d); !errors.Is(err, ErrNotFound) {
			t.Fatalf("none kept: %v", err)
		}
		sigs := []Signature{
			{Format: "simple", Data: randomBytes(t, 300), Origin: "lookaside"},
			{Format: "cosign", Data: []byte("payload"), MIMEType: "application/vnd.dev.cosign.simplesigning.v1+json",
				Annotations: map[string]string{"dev.cosignproject.cosign/signature": "MEUC"}, Origin: "sig-tag"},
		}
		if err := s.PutSignatures(ctx, "docker.io", "a/b", d, sigs); err != nil {
			t.Fatal(err)
		}
		got, err := s.Signatures(ctx, "docker.io", "a/b", d)
		if err != nil || len(got) != 2 || !bytes.Equal(got[0].Data, sigs[0].Data) || got[1].Annotations["dev.cosignproject.cosign/signature"] != "MEUC" || got[1].MIMEType != sigs[1].MIMEType {
			t.Fatalf("Signatures = %+v, %v", got, err)
		}
		if err := s.PutSignatures(ctx, "docker.io", "a/b", d, make([]Signature, MaxSignatures+1)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("too many: %v", err)
		}
		// Bit rot in the record.
		lb, _ := f.d.GetContent(ctx, signaturesLinkPath("docker.io", "a/b", d))
		sd := digest.Digest(lb)
		rb, _ := f.d.GetContent(ctx, blobPath(sd))
		rb[10] ^= 1
		f.d.PutContent(ctx, blobPath(sd), rb)
		if _, err := s.Signatures(ctx, "docker.io", "a/b", d); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("corrupt: %v", err)
		}
		if len(f.logs.Lines("level=ERROR", "corrupt signatures")) != 1 {
			t.Fatalf("logs:\n%s", f.logs)
		}
		if _, err := s.Signatures(ctx, "docker.io", "a/b", d); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after the drop: %v", err)
		}
	})
}

func TestPin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := open(t, b, Options{})
		m := testManifest(t, "x")
		if err := f.s.Pin(ctx, "docker.io", "a", m.Digest); !errors.Is(err, ErrNotFound) {
			t.Fatalf("pin of a manifest not kept: %v", err)
		}
		f.s.PutManifest(ctx, "docker.io", "a", m, Refs{})
		if err := f.s.Pin(ctx, "docker.io", "a", m.Digest); err != nil {
			t.Fatal(err)
		}
		if ok, _ := f.s.exists(ctx, revisionDir("docker.io", "a", m.Digest)+"/"+pinnedFile); !ok {
			t.Fatal("no pinned marker")
		}
	})
}

// TestRestart: a new Store on the same storage serves what was kept, tag confirmations
// included; blobs are no longer marked checked.
func TestRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := open(t, b, Options{})
		blob := randomBytes(t, 100<<10)
		bd := keep(t, f.s, blob)
		if info, _ := f.s.OpenBlob(ctx, bd); !info.Checked {
			t.Fatal("a fetched blob is checked")
		} else {
			info.Body.Close()
		}
		m := testManifest(t, "application/vnd.oci.image.manifest.v1+json", bd)
		if err := f.s.PutManifest(ctx, "docker.io", "library/x", m, Refs{Blobs: []digest.Digest{bd}}); err != nil {
			t.Fatal(err)
		}
		f.s.PutTag(ctx, "docker.io", "library/x", "v1", m.Digest)
		confirmed := f.clock.Now()
		f.s.PutSignatures(ctx, "docker.io", "library/x", m.Digest, []Signature{{Format: "simple", Data: []byte("sig")}})
		f.s.Touch("docker.io", "library/x", m.Digest)

		f2 := f.restart(t, Options{})
		got, err := f2.s.GetManifest(ctx, "docker.io", "library/x", m.Digest)
		if err != nil || !bytes.Equal(got.Bytes, m.Bytes) {
			t.Fatalf("manifest after restart: %v", err)
		}
		tag, err := f2.s.GetTag(ctx, "docker.io", "library/x", "v1")
		if err != nil || tag.Digest != m.Digest || !tag.Confirmed.Equal(confirmed) {
			t.Fatalf("tag after restart: %+v %v", tag, err)
		}
		if sigs, err := f2.s.Signatures(ctx, "docker.io", "library/x", m.Digest); err != nil || len(sigs) != 1 {
			t.Fatalf("signatures after restart: %v %v", sigs, err)
		}
		bl, err := f2.s.OpenBlob(ctx, bd)
		if err != nil {
			t.Fatal(err)
		}
		defer bl.Body.Close()
		if bl.Checked {
			t.Fatal("checked survives a restart")
		}
		if b.name == "filesystem" {
			if _, ok := bl.Body.(*os.File); !ok {
				t.Fatalf("filesystem body is %T, want *os.File", bl.Body)
			}
		}
		data, _ := readSeekAll(bl)
		if !bytes.Equal(data, blob) || bl.Size != int64(len(blob)) {
			t.Fatal("blob after restart differs")
		}
		// The served time was flushed at Close.
		if sb, err := f2.d.GetContent(ctx, revisionDir("docker.io", "library/x", m.Digest)+"/"+servedFile); err != nil || parseServed(sb).IsZero() {
			t.Fatalf("served time: %q %v", sb, err)
		}
		if err := f2.s.VerifyBlob(ctx, bd); err != nil {
			t.Fatal(err)
		}
		if bl2, _ := f2.s.OpenBlob(ctx, bd); !bl2.Checked {
			t.Fatal("VerifyBlob does not mark checked")
		} else {
			bl2.Body.Close()
		}
	})
}

// readSeekAll reads a blob body, seeking in it first (ServeContent's pattern).
func readSeekAll(b *Blob) ([]byte, error) {
	if _, err := b.Body.Seek(b.Size/2, 0); err != nil {
		return nil, err
	}
	tail := make([]byte, b.Size-b.Size/2)
	if _, err := ioReadFull(b.Body, tail); err != nil {
		return nil, err
	}
	if _, err := b.Body.Seek(0, 0); err != nil {
		return nil, err
	}
	head := make([]byte, b.Size/2)
	if _, err := ioReadFull(b.Body, head); err != nil {
		return nil, err
	}
	return append(head, tail...), nil
}

func TestBlobCorrupt(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := open(t, b, Options{})
		data := randomBytes(t, 64<<10)
		d := keep(t, f.s, data)
		f2 := f.restart(t, Options{})
		flipped := append([]byte{}, data...)
		flipped[1000] ^= 1
		if err := f2.d.PutContent(ctx, blobPath(d), flipped); err != nil {
			t.Fatal(err)
		}
		bl, err := f2.s.OpenBlob(ctx, d)
		if err != nil || bl.Checked {
			t.Fatalf("OpenBlob = %+v, %v", bl, err)
		}
		bl.Body.Close()
		if err := f2.s.VerifyBlob(ctx, d); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("VerifyBlob = %v, want ErrCorrupt", err)
		}
		if _, err := f2.s.StatBlob(ctx, d); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after the drop: %v", err)
		}
		if n := len(f2.logs.Lines("level=ERROR", "corrupt content", d.String())); n != 1 {
			t.Fatalf("%d error lines:\n%s", n, f2.logs)
		}

		// Through Fetch: a kept blob not checked since start is hashed on the way, and a
		// mismatch ends the body with an error, never a clean EOF.
		d2 := keep(t, f2.s, data)
		f3 := f2.restart(t, Options{})
		f3.d.PutContent(ctx, blobPath(d2), flipped)
		u := newUpstream(data)
		got, err := fetchAll(t, f3.s, d2, u)
		if !errors.Is(err, ErrMismatch) || !errors.Is(err, ErrCorrupt) || u.opens.Load() != 0 {
			t.Fatalf("Fetch of a corrupt kept blob: %d bytes, %v (opens %d)", len(got), err, u.opens.Load())
		}
		if _, err := f3.s.StatBlob(ctx, d2); !errors.Is(err, ErrNotFound) {
			t.Fatalf("corrupt blob still kept: %v", err)
		}
		// The next Fetch downloads it again.
		if got, err := fetchAll(t, f3.s, d2, u); err != nil || !bytes.Equal(got, data) || u.opens.Load() != 1 {
			t.Fatalf("re-fetch: %v, opens %d", err, u.opens.Load())
		}
	})
}

func TestRegistryEncoding(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"docker.io", "docker.io"},
		{"127.0.0.1:5001", "127.0.0.1_3a5001"},
		{"127.0.0.1_3a5001", "127.0.0.1_5f3a5001"},
		{"[::1]:5000", "_5b_3a_3a1_5d_3a5000"},
		{".hidden", "_2ehidden"},
		{"quay.io", "quay.io"},
	} {
		got := encodeRegistry(tc.in)
		if got != tc.want || !storagedriverPath(got) {
			t.Errorf("encode(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if back, ok := decodeRegistry(got); !ok || back != tc.in {
			t.Errorf("decode(%q) = %q %v", got, back, ok)
		}
	}
	for _, bad := range []string{"a_", "a_4", "a_4G", "a:b", "_61"} {
		if _, ok := decodeRegistry(bad); ok {
			t.Errorf("decode(%q) accepted", bad)
		}
	}
}

// TestOpenS3Unusable: an s3 store whose bucket does not exist is a start-up error naming
// what failed.
func TestOpenS3Unusable(t *testing.T) {
	srv := versitygw.Start(t)
	d, err := NewDriver(ctx, map[string]any{"s3": srv.DriverParams("nobucket", "/x")}, "/")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, Options{Driver: d})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "cannot be written") {
		t.Fatalf("Open = %v, want ErrUnavailable", err)
	}
}

func TestLinkBlobAndCounters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := open(t, b, Options{})
		d := keep(t, f.s, randomBytes(t, 1000))
		for range 2 { // idempotent
			if err := f.s.LinkBlob(ctx, "127.0.0.1:5001", "a/b", d); err != nil {
				t.Fatal(err)
			}
		}
		lb, err := f.d.GetContent(ctx, layerLinkPath("127.0.0.1:5001", "a/b", d))
		if err != nil || string(lb) != d.String() {
			t.Fatalf("layer link %q %v", lb, err)
		}
		if err := f.s.LinkBlob(ctx, "127.0.0.1:5001", "A", d); !errors.Is(err, ErrInvalid) {
			t.Fatalf("bad repository: %v", err)
		}
		f.s.CountHit()
		f.s.CountHit()
		f.s.CountMiss()
		f.s.CountStale()
		if st := f.s.Stats(); st.Hits != 2 || st.Misses != 1 || st.StaleServes != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// TestManifestMetadataCorrupt: a record or link altered on disk is a corrupt entry too.
func TestManifestMetadataCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		content    func(m Manifest) []byte
	}{
		{"record not JSON", recordFile, func(Manifest) []byte { return []byte("{") }},
		{"record of another digest", recordFile, func(Manifest) []byte {
			return []byte(`{"digest":"` + digest.FromString("other").String() + `","mediaType":"x","size":1}`)
		}},
		{"record too large", recordFile, func(Manifest) []byte { return bytes.Repeat([]byte(" "), MaxRecordSize+1) }},
		{"link naming another digest", linkFile, func(Manifest) []byte { return []byte(digest.FromString("other").String()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := open(t, backends(t)[1], Options{})
			m := testManifest(t, "x")
			f.s.PutManifest(ctx, "docker.io", "a", m, Refs{})
			f.s.records.Purge() // read back from the store, as after a restart
			f.d.PutContent(ctx, revisionDir("docker.io", "a", m.Digest)+"/"+tc.file, tc.content(m))
			if _, err := f.s.GetManifest(ctx, "docker.io", "a", m.Digest); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("GetManifest = %v, want ErrCorrupt", err)
			}
			if _, err := f.s.GetManifest(ctx, "docker.io", "a", m.Digest); !errors.Is(err, ErrNotFound) {
				t.Fatalf("after the drop: %v", err)
			}
		})
	}
}

// TestBlobChangedAfterCheck: a blob checked since start that is then rewritten in the store
// (by whoever else can write a shared bucket or the folder: same size, and with the
// filesystem driver in place with its old modification time put back) is no longer
// checked, so its next serve hashes it again and drops it.
func TestBlobChangedAfterCheck(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := open(t, b, Options{})
		data := randomBytes(t, 64<<10)
		d := keep(t, f.s, data)
		bl, err := f.s.OpenBlob(ctx, d)
		if err != nil || !bl.Checked {
			t.Fatalf("OpenBlob after the fetch = %+v, %v", bl, err)
		}
		bl.Body.Close()
		flipped := append([]byte{}, data...)
		flipped[1000] ^= 1
		if b.name == "filesystem" {
			// In place: the same inode, the modification time put back.
			p := filepath.Join(f.s.local, filepath.FromSlash(blobPath(d)))
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, flipped, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
				t.Fatal(err)
			}
		} else {
			time.Sleep(1100 * time.Millisecond) // S3 keeps modification times in seconds
			if err := f.d.PutContent(ctx, blobPath(d), flipped); err != nil {
				t.Fatal(err)
			}
		}
		bl, err = f.s.OpenBlob(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if bl.Checked {
			bl.Body.Close()
			t.Fatal("a blob rewritten after its check is still checked")
		}
		if _, err := io.ReadAll(f.s.VerifyingBody(ctx, bl, d)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("serving the rewritten blob: %v, want ErrCorrupt", err)
		}
		if _, err := f.s.StatBlob(ctx, d); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after the drop: %v", err)
		}
	})
}
