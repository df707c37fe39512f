package airgap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/cache/store"
	"github.com/pullgate/pullgate/internal/testsupport"
)

func TestReadList(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     []string
	}{
		{"plain", "a/b:1\nc/d:2\n", []string{"a/b:1", "c/d:2"}},
		{"comments and blanks", "# head\n\n  a/b:1  # why\n\t\n#x\n", []string{"a/b:1"}},
		{"no final newline", "a/b:1", []string{"a/b:1"}},
		{"empty", "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readList(strings.NewReader(tt.in), "LIST")
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("readList = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := readList(strings.NewReader(strings.Repeat("x\n", maxListLines+1)), "LIST"); err == nil {
		t.Fatal("a list longer than the bound was read")
	}
}

func TestParseRef(t *testing.T) {
	d := digest.FromString("x")
	for _, tt := range []struct {
		in, want string
		err      bool
	}{
		{in: "alpine", want: "docker.io/library/alpine:latest"},
		{in: "docker.io/library/alpine:3.20", want: "docker.io/library/alpine:3.20"},
		{in: "127.0.0.1:5001/team/app@" + d.String(), want: "127.0.0.1:5001/team/app@" + d.String()},
		{in: "127.0.0.1:5001/team/app:v1@" + d.String(), err: true},
		{in: "UPPER", err: true},
		{in: "a/b@sha512:" + strings.Repeat("0", 128), err: true},
	} {
		r, err := ParseRef(tt.in)
		if (err != nil) != tt.err || (err == nil && r.String() != tt.want) {
			t.Errorf("ParseRef(%q) = %v, %v; want %q (error %v)", tt.in, r, err, tt.want, tt.err)
		}
	}
}

func TestIsAttachmentTag(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	for tag, want := range map[string]bool{
		"sha256-" + hex + ".sig": true, "sha256-" + hex + ".att": true, "sha256-" + hex: false,
		"sha256-abc.sig": false, "v1": false, "sha256-" + strings.ToUpper(hex) + ".sig": false,
	} {
		if got := isAttachmentTag(tag); got != want {
			t.Errorf("isAttachmentTag(%q) = %v", tag, got)
		}
	}
}

// writeTestLayout writes a layout with one image manifest named name.
func writeTestLayout(t *testing.T, name string, manifest []byte, tamper bool) (string, digest.Digest) {
	dir := t.TempDir()
	d := digest.FromBytes(manifest)
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	body := manifest
	if tamper {
		body = append([]byte(nil), manifest...)
		body[5] ^= 1
	}
	testsupport.WriteFile(t, filepath.Join(blobs, d.Encoded()), body)
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []map[string]any{{
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": len(manifest),
		"annotations": map[string]string{"org.opencontainers.image.ref.name": name}}}})
	testsupport.WriteFile(t, filepath.Join(dir, "index.json"), idx)
	return dir, d
}

// The layout server serves only what hashes to its digest, only under GET/HEAD, only
// sha256 digests, and nothing outside the layout.
func TestLayoutServerRefusesWhatDoesNotMatch(t *testing.T) {
	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("0", 64) + `","size":2},"layers":[]}`)
	for _, tt := range []struct {
		name   string
		tamper bool
		method string
		path   string
		want   int
	}{
		{"tag", false, "GET", "/v2/team/app/manifests/v1", 200},
		{"tag of an altered manifest", true, "GET", "/v2/team/app/manifests/v1", 404},
		{"push", false, "PUT", "/v2/team/app/manifests/v1", 405},
		{"other repository", false, "GET", "/v2/team/other/manifests/v1", 404},
		{"path outside", false, "GET", "/v2/team/app/blobs/sha256:..%2f..%2findex.json", 404},
		{"not sha256", false, "GET", "/v2/team/app/blobs/sha512:" + strings.Repeat("0", 128), 404},
		{"referrers", false, "GET", "/v2/team/app/referrers/sha256:" + strings.Repeat("0", 64), 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, d := writeTestLayout(t, "registry.test/team/app:v1", m, tt.tamper)
			l, err := readLayout(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(l.images) != 1 || l.images[0].desc.Digest != d {
				t.Fatalf("images = %+v", l.images)
			}
			h := &layoutServer{l: l, registry: "registry.test"}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.want {
				t.Fatalf("%s %s = %d, want %d: %s", tt.method, tt.path, rec.Code, tt.want, rec.Body)
			}
			if rec.Code == http.StatusOK && tt.name == "tag" && digest.FromBytes(rec.Body.Bytes()) != d {
				t.Fatalf("served other bytes")
			}
		})
	}
}

// testStore is a content store on the filesystem driver in a temporary folder.
func testStore(t *testing.T) (*store.Store, string) {
	t.Helper()
	root := t.TempDir()
	drv, err := store.NewDriver(context.Background(), map[string]any{"filesystem": map[string]any{"rootdirectory": root}}, "/")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), store.Options{Driver: drv, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, root
}

// storeFiles lists the regular files under root (the kept blobs and whatever staging holds).
func storeFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// Import stages an image's blobs from DIR between the decision and the keep: an altered
// file rejects the image and leaves nothing staged or kept; an intact one is staged,
// invisible until committed.
func TestStageImageRejectsAlteredBlobs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	blob := []byte("layer bytes")
	d := digest.FromBytes(blob)
	p := filepath.Join(dir, "blobs", "sha256")
	os.MkdirAll(p, 0o755)
	file := filepath.Join(p, d.Encoded())
	l := &layoutDir{dir: dir}
	for _, tt := range []struct {
		name  string
		write func()
		size  int64
		ok    bool
	}{
		{"intact", func() { testsupport.WriteFile(t, file, blob) }, int64(len(blob)), true},
		{"flipped byte", func() { testsupport.WriteFile(t, file, []byte("layer bytez")) }, int64(len(blob)), false},
		{"wrong size", func() { testsupport.WriteFile(t, file, blob) }, int64(len(blob)) + 1, false},
		{"one byte longer", func() { testsupport.WriteFile(t, file, append(bytes.Clone(blob), 'x')) }, int64(len(blob)), false},
		{"missing", func() {}, int64(len(blob)), false},
		{"a FIFO", func() { syscall.Mkfifo(file, 0o600) }, int64(len(blob)), false},
		{"a link to /dev/zero", func() { os.Symlink("/dev/zero", file) }, int64(len(blob)), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, root := testStore(t)
			os.Remove(file)
			tt.write()
			im := &Image{Registry: "r.test", Repo: "a", Tag: "v1", Blobs: []Blob{{Digest: d, Size: tt.size}}}
			var read int64
			staged, err := l.stageImage(ctx, st, im, func(n int64) { read += n })
			if tt.ok != (err == nil) || (err != nil && !IsRejected(err)) {
				t.Fatalf("%v", err)
			}
			if _, serr := st.StatBlob(ctx, d); !errors.Is(serr, store.ErrNotFound) {
				t.Fatalf("visible before the commit: %v", serr)
			}
			if !tt.ok {
				if files := storeFiles(t, root); len(files) != 0 {
					t.Fatalf("a rejected image left %v", files)
				}
				if read != 0 {
					t.Errorf("progress still counts %d bytes of a rejected image", read)
				}
				return
			}
			if read != int64(len(blob)) {
				t.Errorf("progress told of %d bytes, want %d", read, len(blob))
			}
			// Altered after it was staged: what is kept is what was hashed.
			testsupport.WriteFile(t, file, []byte("LAYER BYTES"))
			if err := staged.commit(ctx, im.Blobs); err != nil {
				t.Fatal(err)
			}
			b, err := st.OpenBlob(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(b.Body)
			b.Body.Close()
			if !bytes.Equal(got, blob) {
				t.Fatalf("kept %q", got)
			}
			if files := storeFiles(t, root); len(files) != 1 {
				t.Fatalf("store holds %v, want the blob alone", files)
			}
		})
	}
}

// A blob the keep lists that staging did not check is an error, and a discarded image
// keeps nothing.
func TestStagedImageCommit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	blob := []byte("layer bytes")
	d := digest.FromBytes(blob)
	os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
	testsupport.WriteFile(t, filepath.Join(dir, "blobs", "sha256", d.Encoded()), blob)
	l := &layoutDir{dir: dir}
	st, root := testStore(t)
	im := &Image{Registry: "r.test", Repo: "a", Tag: "v1", Blobs: []Blob{{Digest: d, Size: int64(len(blob))}}}
	staged, err := l.stageImage(ctx, st, im, nil)
	if err != nil {
		t.Fatal(err)
	}
	other := Blob{Digest: digest.FromString("other"), Size: 5}
	if err := staged.commit(ctx, []Blob{other}); err == nil {
		t.Fatal("a blob not staged was committed")
	}
	if files := storeFiles(t, root); len(files) != 0 {
		t.Fatalf("store holds %v", files)
	}
	staged, err = l.stageImage(ctx, st, im, nil)
	if err != nil {
		t.Fatal(err)
	}
	staged.discard()
	if files := storeFiles(t, root); len(files) != 0 {
		t.Fatalf("store holds %v after discard", files)
	}
}

func FuzzReadLayout(f *testing.F) {
	f.Add([]byte(`{"manifests":[{"digest":"sha256:` + strings.Repeat("0", 64) + `","annotations":{"org.opencontainers.image.ref.name":"r.test/a:v1"}}]}`))
	f.Add([]byte(`{"manifests":[{"digest":"sha256:` + strings.Repeat("0", 64) + `","annotations":{"org.opencontainers.image.ref.name":"r.test/a@sha256:` + strings.Repeat("0", 64) + `"}}]}`))
	f.Fuzz(func(t *testing.T, index []byte) {
		dir := t.TempDir()
		testsupport.WriteFile(t, filepath.Join(dir, "index.json"), index)
		l, err := readLayout(dir)
		if err != nil {
			return
		}
		for _, e := range l.images {
			if e.desc.Digest.Validate() != nil || e.ref.Registry == "" || e.ref.Repo == "" {
				t.Fatalf("entry %+v", e)
			}
		}
	})
}
