package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

// TestAirgapCosign: a cosign-signed image next to an unsigned one in a scope that wants
// cosign signatures. mirror keeps the signed one with its sha256-<hex>.sig attachment and
// rejects the other; export puts the .sig manifest in the layout under its tag; an
// offline site imports the image with only that attachment and serves it, .sig included.
func TestAirgapCosign(t *testing.T) {
	t.Parallel()
	reg := harness.StartRegistry(t)
	cosign := harness.NewCosign(t)
	key, pub := cosign.GenerateKeyPair(t, "signer")
	bin := harness.BuildPullgate(t, t.TempDir())
	signed := reg.Push(t, "cosigned:v1", harness.OCIImage(t, 2, 16<<10, harness.LinuxAMD64))
	cosign.Sign(t, key, reg.Host+"/cosigned@"+signed.String(), nil)
	unsigned := reg.Push(t, "plain:v1", harness.OCIImage(t, 1, 4096, harness.LinuxAMD64))
	// bundled:v1 is signed only with a Sigstore bundle, attached as a referrer (through
	// the referrers tag: distribution has no referrers API).
	bundled := reg.Push(t, "bundled:v1", harness.OCIImage(t, 1, 8<<10, harness.LinuxAMD64))
	cosign.Sign(t, key, reg.Host+"/bundled@"+bundled.String(), nil, "--new-bundle-format")

	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	testsupport.WriteFile(t, policy, fmt.Sprintf(`{
  "default": [{"type": "reject"}],
  "transports": {"docker": {%q: [{"type": "sigstoreSigned", "keyPath": %q, "signedIdentity": {"type": "matchRepository"}}]}}
}
`, reg.Host, pub))
	regd := filepath.Join(dir, "registries.d")
	if err := os.Mkdir(regd, 0o700); err != nil {
		t.Fatal(err)
	}
	testsupport.WriteFile(t, filepath.Join(regd, "default.yaml"), "default-docker:\n  use-sigstore-attachments: true\n")
	connected := harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams: []harness.Upstream{{Registry: reg.Host, URL: reg.URL}}, Policy: policy, RegistriesD: regd,
		Extra: storeConfig(filepath.Join(dir, "data")),
	})
	ref := reg.Host + "/cosigned:v1"
	bref := reg.Host + "/bundled:v1"
	code, out, errOut := harness.RunPullgate(t, bin, "mirror", "--config", connected, ref, reg.Host+"/plain:v1", bref)
	if code != 1 {
		t.Fatalf("mirror: exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	lines := airgapLines(t, out)
	wantVerdict(t, lines, ref, "accepted", signed)
	wantVerdict(t, lines, reg.Host+"/plain:v1", "rejected", unsigned)
	wantVerdict(t, lines, bref, "accepted", bundled)
	if keptRepository(t, filepath.Join(dir, "data"), reg.Host, "plain") {
		t.Errorf("the rejected image was kept")
	}

	layoutDir := filepath.Join(t.TempDir(), "layout")
	code, out, errOut = harness.RunPullgate(t, bin, "export", "--config", connected, "--output", layoutDir, ref, bref)
	if code != 0 {
		t.Fatalf("export: exit %d\n%s\n%s", code, out, errOut)
	}
	sigTag := harness.SigTag(signed)
	var index struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(testsupport.ReadFile(t, filepath.Join(layoutDir, "index.json")), &index); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, m := range index.Manifests {
		names[m.Annotations["org.opencontainers.image.ref.name"]] = m.Digest
	}
	if names[ref] != signed.String() || names[reg.Host+"/cosigned:"+sigTag] == "" {
		t.Fatalf("index.json names %v, want %s and its .sig", names, ref)
	}
	harness.Skopeo(t, "inspect", "--raw", "oci:"+layoutDir+":"+reg.Host+"/cosigned:"+sigTag)
	referrers := 0
	for name := range names {
		if strings.HasPrefix(name, reg.Host+"/bundled@sha256:") {
			referrers++
		}
	}
	// go-containerregistry reads every manifest and blob of the images. (validate refuses
	// cosign's .sig manifests anywhere: their config lists a diff ID for a layer that is
	// not a filesystem layer; crane validate of the .sig in the registry says the same.)
	lp, err := layout.FromPath(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{signed.String(), bundled.String()} {
		hash, _ := v1.NewHash(h)
		img, err := lp.Image(hash)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("go-containerregistry does not read %s in the layout: %v", h, err)
		}
	}
	if referrers != 1 {
		t.Errorf("index.json names %d bundle referrers of bundled:v1, want 1: %v", referrers, names)
	}

	// The air-gapped site: no registries.d at all; the layout's attachment is the only
	// signature.
	site := (&airgapWorld{reg: reg}).site(t, policy, filepath.Join(t.TempDir(), "data"))
	code, out, errOut = harness.RunPullgate(t, bin, "import", "--config", site, layoutDir)
	if code != 0 {
		t.Fatalf("import: exit %d\n%s\n%s", code, out, errOut)
	}
	lines = airgapLines(t, out)
	wantVerdict(t, lines, ref, "accepted", signed)
	wantVerdict(t, lines, bref, "accepted", bundled)
	if len(lines) != 2 {
		t.Errorf("import printed %d lines, want one per image (attachments are not images): %v", len(lines), lines)
	}
	// A .sig whose signature layer was altered in the layout rejects that image only.
	t.Run("altered .sig layer", func(t *testing.T) {
		d := filepath.Join(t.TempDir(), "layout")
		if out, err := exec.Command("cp", "-a", layoutDir, d).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		var sigManifest struct {
			Layers []struct {
				Digest string `json:"digest"`
			} `json:"layers"`
		}
		sigDigest := names[reg.Host+"/cosigned:"+sigTag]
		if err := json.Unmarshal(testsupport.ReadFile(t, filepath.Join(d, "blobs", "sha256", strings.TrimPrefix(sigDigest, "sha256:"))), &sigManifest); err != nil || len(sigManifest.Layers) == 0 {
			t.Fatalf(".sig manifest: %v", err)
		}
		flipByte(t, filepath.Join(d, "blobs", "sha256", strings.TrimPrefix(sigManifest.Layers[0].Digest, "sha256:")), 20)
		site := filepath.Join(t.TempDir(), "site.yaml")
		data := filepath.Join(t.TempDir(), "data")
		testsupport.WriteFile(t, site, fmt.Sprintf("upstreams:\n  - registry: %q\n    offline: true\npolicy:\n  path: %q\n", reg.Host, policy)+storeConfig(data))
		code, out, errOut := harness.RunPullgate(t, bin, "import", "--config", site, d)
		if code != 1 {
			t.Fatalf("import: exit %d, want 1\n%s\n%s", code, out, errOut)
		}
		lines := airgapLines(t, out)
		wantVerdict(t, lines, ref, "rejected", v1.Hash{})
		wantVerdict(t, lines, bref, "accepted", bundled)
		if keptRepository(t, data, reg.Host, "cosigned") {
			t.Errorf("something of the image with an altered .sig was kept")
		}
		t.Logf("altered .sig: %s", lines[ref][2])
	})

	pg := harness.StartPullgate(t, bin, site)
	if got := strings.TrimSpace(harness.Crane(t, "digest", pg.Host+"/cosigned:v1")); got != signed.String() {
		t.Errorf("crane digest through the offline site: %s, want %s", got, signed)
	}
	harness.PullImage(t, pg.Host+"/cosigned:v1")
	harness.Crane(t, "manifest", pg.Host+"/cosigned:"+sigTag)
	if got := strings.TrimSpace(harness.Crane(t, "digest", pg.Host+"/bundled:v1")); got != bundled.String() {
		t.Errorf("crane digest bundled:v1 through the offline site: %s, want %s", got, bundled)
	}
}
