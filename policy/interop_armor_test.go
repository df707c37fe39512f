package policy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
)

// TestInteropArmorAndKeyBlocks runs `skopeo copy` (containers/image with gpgme, as
// podman) with a signedBy policy on one image and its signatures, and requires pullgate's
// engine to reach skopeo's verdict, on the storages of issue 14 items 5 and 6:
//   - the signature API (a registry answering X-Registry-Supports-Signatures: 1 served
//     by the test), whose entries containers/image hands to gpg as they are, so that a
//     binary, an ASCII-armored and a clearsigned signature are all accepted;
//   - dir: signature files, read like lookaside files (containers/image's FromBlob),
//     where an armored or clearsigned signature fails the whole read for both;
//   - key files with two armored blocks named by keyPath, keyPaths and keyData, where
//     gpg imports both and so trusts a signature by the second key; a file whose second
//     block is corrupt makes gpg import nothing and pullgate refuse to load the policy.
func TestInteropArmorAndKeyBlocks(t *testing.T) {
	g, fprs := pgptest.NewSkopeoGnuPG(t, "first", "second")
	first, second := fprs[0], fprs[1]
	dir := t.TempDir()
	keys := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		testsupport.WriteFile(t, path, data)
		return path
	}
	a, b := g.Export(t, first, true), g.Export(t, second, true)
	twoBlocks := append(bytes.Clone(a), b...)
	twoBlocksPath := keys("two-blocks.asc", twoBlocks)
	firstPath := keys("first.asc", a)
	corrupt := append(bytes.Clone(a), regexp.MustCompile(`(?m)^=[A-Za-z0-9+/]{4}\n`).ReplaceAll(b, []byte("=AAAA\n"))...)
	corruptPath := keys("corrupt-second.asc", corrupt)

	img := newInteropImage(t)
	const identity = "quay.io/example/app:1"
	payload := []byte(`{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"` + img.digest.String() +
		`"},"identity":{"docker-reference":"` + identity + `"}},"optional":{"creator":"pullgate interop"}}`)
	binary := g.Sign(t, second, payload, "--sign")
	armored := g.Sign(t, second, payload, "--armor", "--sign")
	clear := g.Sign(t, second, payload, "--clearsign")

	reg := newSignatureAPIRegistry(t, img)
	signedBy := func(keySource string) string {
		return `{"default":[{"type":"signedBy","keyType":"GPGKeys",` + keySource +
			`,"signedIdentity":{"type":"exactReference","dockerReference":"` + identity + `"}}]}`
	}
	keyPath := signedBy(`"keyPath":"` + twoBlocksPath + `"`)
	tests := []struct {
		name    string
		policy  string
		api     []byte // served by the signature API; nil: copy from dir: with sigFile
		sigFile []byte
		want    bool   // both accept
		loadErr string // pullgate refuses the policy with this error
	}{
		{name: "signature API, binary", policy: keyPath, api: binary, want: true},
		{name: "signature API, armored", policy: keyPath, api: armored, want: true},
		{name: "signature API, clearsigned", policy: keyPath, api: clear, want: true},
		{name: "signature file, binary", policy: keyPath, sigFile: binary, want: true},
		{name: "signature file, armored", policy: keyPath, sigFile: armored},
		{name: "signature file, clearsigned", policy: keyPath, sigFile: clear},
		{name: "keyPaths, second key in a two-block file", policy: signedBy(`"keyPaths":["` + firstPath + `","` + twoBlocksPath + `"]`), sigFile: binary, want: true},
		{name: "keyData, two blocks", policy: signedBy(`"keyData":"` + base64.StdEncoding.EncodeToString(twoBlocks) + `"`), sigFile: binary, want: true},
		{name: "keyPath, first block only", policy: signedBy(`"keyPath":"` + firstPath + `"`), api: binary},
		{name: "keyPath, corrupt second block", policy: signedBy(`"keyPath":"` + corruptPath + `"`), api: binary,
			loadErr: `default[0].keyPath: key file "` + corruptPath + `": reading OpenPGP keyring: armored block 2: armor checksum mismatch`},
		{name: "keyData, corrupt second block", policy: signedBy(`"keyData":"` + base64.StdEncoding.EncodeToString(corrupt) + `"`), api: binary,
			loadErr: `default[0].keyData: keyData: reading OpenPGP keyring: armored block 2: armor checksum mismatch`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			policyPath := filepath.Join(dir, fmt.Sprintf("policy-%d.json", i))
			testsupport.WriteFile(t, policyPath, tt.policy)
			var src string
			var sigs []Signature
			var blobErr error
			if tt.api != nil {
				reg.serve(tt.api)
				src = "docker://" + reg.host + "/example/app:1"
				sigs = []Signature{{Format: FormatSimpleSigning, Data: tt.api}} // as sigsource's parseSignatureList
			} else {
				src = "dir:" + img.dirWith(t, tt.sigFile)
				var sig Signature
				if sig, blobErr = ParseSignatureBlob(tt.sigFile); blobErr == nil {
					sigs = []Signature{sig}
				}
			}
			out, errOut, err := g.Run(nil, "skopeo", "--policy", policyPath, "--registries.d", t.TempDir(),
				"copy", "--src-tls-verify=false", src, "dir:"+t.TempDir())
			skopeo := err == nil
			if skopeo != tt.want {
				t.Fatalf("skopeo copy accepted=%v, the table says %v:\n%s%s", skopeo, tt.want, out, errOut)
			}

			p, err := Parse([]byte(tt.policy), "policy.json")
			if tt.loadErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.loadErr) {
					t.Fatalf("Parse() error = %v, want %q", err, tt.loadErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if blobErr != nil {
				// The read of the signatures fails, and with it the evaluation (503), as
				// containers/image fails the copy.
				if tt.want {
					t.Fatalf("ParseSignatureBlob: %v", blobErr)
				}
				return
			}
			v, err := p.Evaluate(context.Background(), Image{Identity: mustRef(t, identity), Digest: img.digest, Manifest: img.manifest}, sigSource(sigs...))
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if v.Accepted != tt.want {
				t.Fatalf("pullgate accepted=%v (%s), skopeo accepted=%v", v.Accepted, v.Reason, skopeo)
			}
		})
	}
}

// interopImage is a one-layer image in docker schema2 form.
type interopImage struct {
	manifest []byte
	digest   digest.Digest
	blobs    map[digest.Digest][]byte
}

func newInteropImage(t *testing.T) *interopImage {
	t.Helper()
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	content := []byte("pullgate interop\n")
	if err := tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	tw.Write(content)
	tw.Close()
	var layer bytes.Buffer
	zw := gzip.NewWriter(&layer)
	zw.Write(layerTar.Bytes())
	zw.Close()
	config := []byte(`{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["` + digest.FromBytes(layerTar.Bytes()).String() + `"]}}`)
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%d,"digest":"%s"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":%d,"digest":"%s"}]}`,
		len(config), digest.FromBytes(config), layer.Len(), digest.FromBytes(layer.Bytes())))
	return &interopImage{manifest: manifest, digest: digest.FromBytes(manifest), blobs: map[digest.Digest][]byte{
		digest.FromBytes(config): config, digest.FromBytes(layer.Bytes()): layer.Bytes(),
	}}
}

// dirWith writes the image in dir: layout with sig as its signature-1.
func (img *interopImage) dirWith(t *testing.T, sig []byte) string {
	t.Helper()
	d := t.TempDir()
	files := map[string][]byte{"manifest.json": img.manifest, "version": []byte("Directory Transport Version: 1.1\n"), "signature-1": sig}
	for dg, b := range img.blobs {
		files[dg.Encoded()] = b
	}
	for name, b := range files {
		testsupport.WriteFile(t, filepath.Join(d, name), b)
	}
	return d
}

// signatureAPIRegistry serves one image as example/app:1 and its signature API entry.
type signatureAPIRegistry struct {
	host string
	mu   sync.Mutex
	sig  []byte
}

func (r *signatureAPIRegistry) serve(sig []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sig = sig
}

func newSignatureAPIRegistry(t *testing.T, img *interopImage) *signatureAPIRegistry {
	t.Helper()
	r := &signatureAPIRegistry{}
	mux := http.NewServeMux()
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.Header().Set("X-Registry-Supports-Signatures", "1")
		switch p := req.URL.Path; {
		case p == "/v2/":
		case p == "/v2/example/app/manifests/1" || p == "/v2/example/app/manifests/"+img.digest.String():
			w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
			w.Header().Set("Docker-Content-Digest", img.digest.String())
			w.Write(img.manifest)
		case strings.HasPrefix(p, "/v2/example/app/blobs/"):
			b, ok := img.blobs[digest.Digest(strings.TrimPrefix(p, "/v2/example/app/blobs/"))]
			if !ok {
				http.NotFound(w, req)
				return
			}
			w.Write(b)
		default:
			http.NotFound(w, req)
		}
	})
	mux.HandleFunc("/extensions/v2/example/app/signatures/"+img.digest.String(), func(w http.ResponseWriter, _ *http.Request) {
		r.mu.Lock()
		sig := r.sig
		r.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"signatures": []any{map[string]any{
			"schemaVersion": 2, "type": "atomic", "name": img.digest.String() + "@1", "content": sig}}})
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: mux}}
	srv.Start()
	t.Cleanup(srv.Close)
	r.host = l.Addr().String()
	return r
}
