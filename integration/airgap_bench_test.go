package integration

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/pullgate/pullgate/integration/harness"
)

// BenchmarkAirgapThroughput measures mirror and import (MiB/s of image data) against
// `skopeo copy` of the same signed image in the same run: mirror and skopeo copy read the
// registry, import and skopeo copy read the layout. Run it with
//
//	go test ./integration/ -run XXX -bench AirgapThroughput -benchtime 1x
func BenchmarkAirgapThroughput(b *testing.B) {
	const layers, layerSize = 4, 64 << 20
	reg := harness.StartRegistry(b)
	sig := harness.NewSimpleSigning(b)
	key := sig.Key(b, "trusted")
	w := &airgapWorld{reg: reg, sig: sig}
	policy := w.trustPolicy(b, key)
	bin := harness.BuildPullgate(b, b.TempDir())
	reg.Push(b, "src/big:v1", harness.OCIImage(b, layers, layerSize, harness.LinuxAMD64))
	sig.CopySigned(b, key, reg.Host+"/big:v1", "docker://"+reg.Host+"/src/big:v1", "docker://"+reg.Host+"/big:v1")
	ref := reg.Host + "/big:v1"
	mib := float64(layers*layerSize) / (1 << 20)

	for i := 0; i < b.N; i++ {
		data := filepath.Join(b.TempDir(), "data")
		cfg := harness.WritePullgateConfig(b, harness.PullgateConfig{
			Upstreams: []harness.Upstream{{Registry: reg.Host, URL: reg.URL}}, Policy: policy, RegistriesD: sig.RegistriesD,
			Extra: storeConfig(data),
		})
		rate := func(name string, run func()) {
			start := time.Now()
			run()
			s := time.Since(start).Seconds()
			b.ReportMetric(mib/s, name+"-MiB/s")
		}
		rate("mirror", func() {
			if code, out, errOut := harness.RunPullgate(b, bin, "mirror", "--config", cfg, ref); code != 0 {
				b.Fatalf("mirror: %d\n%s\n%s", code, out, errOut)
			}
		})
		rate("skopeo-copy-registry", func() {
			harness.Skopeo(b, "copy", "--src-tls-verify=false", "docker://"+ref, "oci:"+b.TempDir()+":x")
		})
		dir := filepath.Join(b.TempDir(), "layout")
		rate("export", func() {
			if code, out, errOut := harness.RunPullgate(b, bin, "export", "--config", cfg, "--output", dir, ref); code != 0 {
				b.Fatalf("export: %d\n%s\n%s", code, out, errOut)
			}
		})
		site := w.site(b, policy, filepath.Join(b.TempDir(), "data"))
		rate("import", func() {
			if code, out, errOut := harness.RunPullgate(b, bin, "import", "--config", site, dir); code != 0 {
				b.Fatalf("import: %d\n%s\n%s", code, out, errOut)
			}
		})
		rate("skopeo-copy-layout", func() {
			harness.Skopeo(b, "copy", "oci:"+dir+":"+ref, "oci:"+b.TempDir()+":x")
		})
	}
}
