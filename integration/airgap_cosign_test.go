package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pullgate/pullgate/integration/harness"
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

	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	writeFile(t, policy, fmt.Sprintf(`{
  "default": [{"type": "reject"}],
  "transports": {"docker": {%q: [{"type": "sigstoreSigned", "keyPath": %q, "signedIdentity": {"type": "matchRepository"}}]}}
}
`, reg.Host, pub))
	regd := filepath.Join(dir, "registries.d")
	if err := os.Mkdir(regd, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(regd, "default.yaml"), "default-docker:\n  use-sigstore-attachments: true\n")
	connected := harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams: []harness.Upstream{{Registry: reg.Host, URL: reg.URL}}, Policy: policy, RegistriesD: regd,
		Extra: storeConfig(filepath.Join(dir, "data")),
	})
	ref := reg.Host + "/cosigned:v1"
	code, out, errOut := harness.RunPullgate(t, bin, "mirror", "--config", connected, ref, reg.Host+"/plain:v1")
	if code != 1 {
		t.Fatalf("mirror: exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	lines := airgapLines(t, out)
	wantVerdict(t, lines, ref, "accepted", signed)
	wantVerdict(t, lines, reg.Host+"/plain:v1", "rejected", unsigned)
	if keptRepository(t, filepath.Join(dir, "data"), reg.Host, "plain") {
		t.Errorf("the rejected image was kept")
	}

	layoutDir := filepath.Join(t.TempDir(), "layout")
	code, out, errOut = harness.RunPullgate(t, bin, "export", "--config", connected, "--output", layoutDir, ref)
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
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(layoutDir, "index.json"))), &index); err != nil {
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

	// The air-gapped site: no registries.d at all; the layout's attachment is the only
	// signature.
	site := filepath.Join(t.TempDir(), "site.yaml")
	writeFile(t, site, fmt.Sprintf("listen: 127.0.0.1:0\nupstreams:\n  - registry: %q\n    offline: true\ndefaultUpstream: %q\npolicy:\n  path: %q\nlog:\n  level: info\n  format: json\n",
		reg.Host, reg.Host, policy)+storeConfig(filepath.Join(t.TempDir(), "data")))
	code, out, errOut = harness.RunPullgate(t, bin, "import", "--config", site, layoutDir)
	if code != 0 {
		t.Fatalf("import: exit %d\n%s\n%s", code, out, errOut)
	}
	wantVerdict(t, airgapLines(t, out), ref, "accepted", signed)
	pg := harness.StartPullgate(t, bin, site)
	if got := strings.TrimSpace(harness.Crane(t, "digest", pg.Host+"/cosigned:v1")); got != signed.String() {
		t.Errorf("crane digest through the offline site: %s, want %s", got, signed)
	}
	harness.PullImage(t, pg.Host+"/cosigned:v1")
	harness.Crane(t, "manifest", pg.Host+"/cosigned:"+sigTag)
}
