package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullgate/pullgate/integration/harness"
)

// pinnedManifests counts the pinned manifests of registry/repo in a filesystem store.
func pinnedManifests(t *testing.T, data, registry, repo string) int {
	t.Helper()
	enc := strings.ReplaceAll(registry, ":", "_3a")
	pins, _ := filepath.Glob(filepath.Join(data, "docker", "registry", "v2", "repositories", enc, repo, "_manifests", "revisions", "sha256", "*", "pinned"))
	return len(pins)
}

// Attacks on mirror by the upstream and the lookaside: what the gate or the digest check
// refuses keeps and pins nothing, and an undecidable image is exit 2.
func TestAirgapMirrorAttacks(t *testing.T) {
	t.Parallel()
	var corrupt atomic.Value // the blob path whose bytes the registry flips
	corrupt.Store("")
	reg := harness.StartRegistry(t, harness.WithMiddleware(harness.RewriteResponses(
		func(r *http.Request) bool { p := corrupt.Load().(string); return p != "" && r.URL.Path == p },
		func(r *http.Request, status int, h http.Header, body []byte) (int, []byte) {
			if len(body) > 0 {
				body[len(body)/2] ^= 1
			}
			return status, body
		})))
	sig := harness.NewSimpleSigning(t)
	key := sig.Key(t, "trusted")
	w := &airgapWorld{reg: reg, sig: sig}
	policy := w.trustPolicy(t, key)
	bin := harness.BuildPullgate(t, t.TempDir())

	// part:v1 is an unsigned index whose amd64 child is signed (for the tag identity)
	// and whose arm64 child is not: the index is served (one child is accepted), the
	// arm64 child is 403.
	idx := harness.OCIIndex(t, 8<<10, harness.LinuxAMD64, harness.LinuxARM64)
	reg.PushIndex(t, "part:v1", idx)
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	child, err := remote.Get(reg.Ref(t, "part@"+im.Manifests[0].Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	sig.SignManifest(t, key, child.Manifest, reg.Host+"/part:v1", "part")
	// flip:v1 is signed; its layer is served with one byte flipped.
	reg.Push(t, "src/flip:v1", harness.OCIImage(t, 1, 32<<10, harness.LinuxAMD64))
	sig.CopySigned(t, key, reg.Host+"/flip:v1", "docker://"+reg.Host+"/src/flip:v1", "docker://"+reg.Host+"/flip:v1")
	flipImg, err := remote.Image(reg.Ref(t, "flip:v1"))
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := flipImg.Layers()
	ld, _ := layers[0].Digest()

	data := filepath.Join(t.TempDir(), "data")
	cfg := harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams: []harness.Upstream{{Registry: reg.Host, URL: reg.URL}}, Policy: policy, RegistriesD: sig.RegistriesD,
		Extra: storeConfig(data),
	})

	t.Run("index with a rejected platform keeps nothing", func(t *testing.T) {
		code, out, errOut := harness.RunPullgate(t, bin, "mirror", "--config", cfg, reg.Host+"/part:v1")
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
		}
		l := airgapLines(t, out)[reg.Host+"/part:v1"]
		if l[1] != "rejected" || !strings.Contains(l[2], im.Manifests[1].Digest.String()) {
			t.Errorf("line %v: want rejected, naming the arm64 child", l)
		}
		t.Logf("part:v1: %v", l)
		if keptRepository(t, data, reg.Host, "part") {
			t.Errorf("something of the partly rejected index was kept")
		}
	})

	t.Run("blob with a flipped byte", func(t *testing.T) {
		corrupt.Store("/v2/flip/blobs/" + ld.String())
		defer corrupt.Store("")
		code, out, errOut := harness.RunPullgate(t, bin, "mirror", "--config", cfg, reg.Host+"/flip:v1")
		if code != 2 {
			t.Fatalf("exit %d, want 2\n%s\n%s", code, out, errOut)
		}
		l := airgapLines(t, out)[reg.Host+"/flip:v1"]
		if l[1] != "error" {
			t.Errorf("line %v, want error", l)
		}
		t.Logf("flip:v1: %v", l)
		if n := pinnedManifests(t, data, reg.Host, "flip"); n != 0 {
			t.Errorf("%d manifests pinned for an image whose blob failed", n)
		}
		blob := filepath.Join(data, "docker", "registry", "v2", "blobs", "sha256", ld.Hex[:2], ld.Hex, "data")
		if _, err := os.Stat(blob); err == nil {
			t.Errorf("the corrupt blob was kept")
		}
		// Once the upstream serves it right, the same run keeps it.
		corrupt.Store("")
		if code, out, errOut := harness.RunPullgate(t, bin, "mirror", "--config", cfg, reg.Host+"/flip:v1"); code != 0 {
			t.Fatalf("exit %d, want 0\n%s\n%s", code, out, errOut)
		}
		if n := pinnedManifests(t, data, reg.Host, "flip"); n != 1 {
			t.Errorf("%d manifests pinned, want 1", n)
		}
	})

	t.Run("lookaside down is undecidable", func(t *testing.T) {
		reg.Push(t, "src/late:v1", harness.OCIImage(t, 1, 4096, harness.LinuxAMD64))
		sig.CopySigned(t, key, reg.Host+"/late:v1", "docker://"+reg.Host+"/src/late:v1", "docker://"+reg.Host+"/late:v1")
		sig.Lookaside.SetMode(harness.LookasideError)
		defer sig.Lookaside.SetMode(harness.LookasideServe)
		code, out, errOut := harness.RunPullgate(t, bin, "mirror", "--config", cfg, reg.Host+"/late:v1")
		if code != 2 {
			t.Fatalf("exit %d, want 2\n%s\n%s", code, out, errOut)
		}
		if l := airgapLines(t, out)[reg.Host+"/late:v1"]; l[1] != "error" {
			t.Errorf("line %v, want error", l)
		}
		if keptRepository(t, data, reg.Host, "late") {
			t.Errorf("an undecided image was kept")
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"mirror", "--config", cfg},
			{"mirror", reg.Host + "/x:v1"},
			{"export", "--config", cfg, reg.Host + "/x:v1"},
			{"import", "--config", cfg},
		} {
			if code, _, _ := harness.RunPullgate(t, bin, args...); code != 2 {
				t.Errorf("%v: exit %d, want 2", args, code)
			}
		}
		noStore := harness.WritePullgateConfig(t, harness.PullgateConfig{
			Upstreams: []harness.Upstream{{Registry: reg.Host, URL: reg.URL}}, Policy: policy})
		code, _, errOut := harness.RunPullgate(t, bin, "mirror", "--config", noStore, reg.Host+"/flip:v1")
		if code != 2 || !strings.Contains(errOut, "content.storage") {
			t.Errorf("mirror without a store: exit %d, %s", code, errOut)
		}
	})
}
