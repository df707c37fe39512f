package airgap

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/internal/testsupport/pgptest"
	"github.com/pullgate/pullgate/proxy/content"
)

// BenchmarkAirgapThroughput measures import (MiB/s of image data) of a signed image of
// four 256 MiB layers from an OCI layout on local disk into an empty filesystem store,
// in process (the page cache holds the layout after the first run). Run it with
//
//	go test ./internal/airgap/ -run x -bench AirgapThroughput -benchtime 1x -count 3
//
// integration's BenchmarkAirgapThroughput times the built binary next to skopeo.
func BenchmarkAirgapThroughput(b *testing.B) {
	const layers, layerSize = 4, 256 << 20
	const registry = "registry.test"
	ref := registry + "/big:v1"
	dir := b.TempDir()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		b.Fatal(err)
	}
	put := func(p []byte) descriptor {
		d := digest.FromBytes(p)
		testsupport.WriteFile(b, filepath.Join(blobs, d.Encoded()), p)
		return descriptor{Digest: d, Size: int64(len(p))}
	}
	var descs []descriptor
	for range layers {
		f, err := os.CreateTemp(blobs, "layer")
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, layerSize); err != nil {
			b.Fatal(err)
		}
		f.Close()
		enc := hex.EncodeToString(h.Sum(nil))
		if err := os.Rename(f.Name(), filepath.Join(blobs, enc)); err != nil {
			b.Fatal(err)
		}
		descs = append(descs, descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: digest.NewDigestFromEncoded(digest.SHA256, enc), Size: layerSize})
	}
	cfgDesc := put([]byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
	cfgDesc.MediaType = "application/vnd.oci.image.config.v1+json"
	manifest, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": content.MediaTypeOCIManifest, "config": cfgDesc, "layers": descs})
	md := put(manifest)
	key := pgptest.NewKey(b, "trusted", pgptest.KeyOptions{})
	sigDir := SignatureDir(dir, registry, "big", md.Digest)
	if err := os.MkdirAll(sigDir, 0o755); err != nil {
		b.Fatal(err)
	}
	testsupport.WriteFile(b, filepath.Join(sigDir, "signature-1"), pgptest.SimpleSignature(b, key, md.Digest.String(), ref))
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []descriptor{{MediaType: content.MediaTypeOCIManifest,
		Digest: md.Digest, Size: md.Size, Annotations: map[string]string{"org.opencontainers.image.ref.name": ref}}}})
	testsupport.WriteFile(b, filepath.Join(dir, "index.json"), index)
	testsupport.WriteFile(b, filepath.Join(dir, "oci-layout"), `{"imageLayoutVersion":"1.0.0"}`)

	syscall.Sync() // the layout's writeback does not compete with the runs
	site := b.TempDir()
	testsupport.WriteFile(b, filepath.Join(site, "key.gpg"), key.Public(b))
	testsupport.WriteFile(b, filepath.Join(site, "policy.json"), fmt.Sprintf(`{"default": [{"type": "reject"}],
  "transports": {"docker": {%q: [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": %q}]}}}`, registry, filepath.Join(site, "key.gpg")))
	mib := float64(layers*layerSize) / (1 << 20)
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	for i := 0; b.Loop(); i++ {
		data := filepath.Join(site, fmt.Sprintf("data-%d", i))
		path := filepath.Join(site, "site.yaml")
		testsupport.WriteFile(b, path, fmt.Sprintf("upstreams:\n  - registry: %s\n    offline: true\ndefaultUpstream: %s\npolicy:\n  path: %s\ncontent:\n  storage:\n    filesystem:\n      rootdirectory: %s\n",
			registry, registry, filepath.Join(site, "policy.json"), data))
		cfg, _, err := config.Load(path)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		var results []Result
		progress := &Progress{}
		if err := Import(ctx, cfg, logger, progress, dir, func(r Result) { results = append(results, r) }); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(mib/time.Since(start).Seconds(), "import-MiB/s")
		if len(results) != 1 || results[0].Verdict != VerdictAccepted || progress.Bytes() < layers*layerSize {
			b.Fatalf("import: %+v, %d bytes", results, progress.Bytes())
		}
		b.StopTimer()
		os.RemoveAll(data)
		b.StartTimer()
	}
}
