package integration

// The air gap through the built binary (DESIGN.md "Air gap"): pullgate mirror keeps
// signed images and rejects unsigned ones, export writes an OCI layout that skopeo and
// go-containerregistry read, and a second site with an empty store and offline
// upstreams imports the layout under its own policy and serves it. Altered layouts are
// rejected image by image.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

// airgapWorld is a connected site (a registry, a lookaside, a store) and what it mirrored.
type airgapWorld struct {
	reg       *harness.Registry
	sig       *harness.SimpleSigning
	key       harness.GPGKey
	policy    string
	bin       string
	connected string // the connected site's configuration
	data      string // its store
	digests   map[string]v1.Hash
}

func newAirgapWorld(t *testing.T) *airgapWorld {
	w := &airgapWorld{reg: harness.StartRegistry(t), sig: harness.NewSimpleSigning(t), digests: map[string]v1.Hash{}}
	w.key = w.sig.Key(t, "trusted")
	w.policy = w.trustPolicy(t, w.key)
	binDir := t.TempDir()
	parallel(t, "set-up", map[string]func(*testing.T){
		"build": func(t *testing.T) { w.bin = harness.BuildPullgate(t, binDir) },
		"signed": func(t *testing.T) {
			w.reg.Push(t, "src/app:v1", harness.OCIImage(t, 2, 64<<10, harness.LinuxAMD64))
			w.sig.CopySigned(t, w.key, w.reg.Host+"/app:v1", "docker://"+w.reg.Host+"/src/app:v1", "docker://"+w.reg.Host+"/app:v1")
		},
		"multi": func(t *testing.T) {
			w.reg.PushIndex(t, "src/multi:v1", harness.OCIIndex(t, 32<<10, harness.LinuxAMD64, harness.LinuxARM64))
			w.sig.CopySigned(t, w.key, w.reg.Host+"/multi:v1", "docker://"+w.reg.Host+"/src/multi:v1", "docker://"+w.reg.Host+"/multi:v1", "--all")
		},
		"docker": func(t *testing.T) {
			// Docker media types: the layout keeps the bytes (and so the signature).
			w.reg.Push(t, "src/docker:v1", harness.DockerImage(t, 1, 16<<10))
			w.sig.CopySigned(t, w.key, w.reg.Host+"/docker:v1", "docker://"+w.reg.Host+"/src/docker:v1", "docker://"+w.reg.Host+"/docker:v1")
		},
		"unsigned": func(t *testing.T) {
			w.reg.Push(t, "unsigned:v1", harness.OCIImage(t, 1, 4096, harness.LinuxAMD64))
		},
	})
	for _, r := range []string{"app:v1", "multi:v1", "docker:v1", "unsigned:v1"} {
		w.digests[r] = mustHead(t, w.reg, r)
	}
	w.data = filepath.Join(t.TempDir(), "data")
	w.connected = harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams: []harness.Upstream{{Registry: w.reg.Host, URL: w.reg.URL}},
		Policy:    w.policy, RegistriesD: w.sig.RegistriesD,
		Extra: storeConfig(w.data),
	})
	return w
}

// trustPolicy wants a signature by key for the registry, and rejects everything else.
func (w *airgapWorld) trustPolicy(t testing.TB, key harness.GPGKey) string {
	p := filepath.Join(t.TempDir(), "policy.json")
	testsupport.WriteFile(t, p, fmt.Sprintf(`{
  "default": [{"type": "reject"}],
  "transports": {"docker": {%q: [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": %q}]}}
}
`, w.reg.Host, key.PublicKeyFile))
	return p
}

func storeConfig(dir string) string {
	return "content:\n  storage:\n    filesystem:\n      rootdirectory: " + dir + "\n"
}

// site writes the configuration of an air-gapped site: the registry offline, served
// as the default upstream, a store in data, and policy.
func (w *airgapWorld) site(t testing.TB, policy, data string) string {
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\nupstreams:\n  - registry: %q\n    offline: true\ndefaultUpstream: %q\npolicy:\n  path: %q\nlog:\n  level: info\n  format: json\n",
		w.reg.Host, w.reg.Host, policy) + storeConfig(data)
	p := filepath.Join(t.TempDir(), "site.yaml")
	testsupport.WriteFile(t, p, cfg)
	return p
}

func (w *airgapWorld) ref(r string) string { return w.reg.Host + "/" + r }

// airgapLines parses the per-image lines: reference → (digest, verdict, reason).
func airgapLines(t *testing.T, out string) map[string][3]string {
	t.Helper()
	got := map[string][3]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(line, " ", 4)
		if len(f) < 3 {
			t.Fatalf("malformed line %q in:\n%s", line, out)
		}
		if len(f) == 3 {
			f = append(f, "")
		}
		got[f[0]] = [3]string{f[1], f[2], f[3]}
	}
	return got
}

func wantVerdict(t *testing.T, lines map[string][3]string, ref, verdict string, d v1.Hash) {
	t.Helper()
	l, ok := lines[ref]
	if !ok {
		t.Errorf("no line for %s in %v", ref, lines)
		return
	}
	if l[1] != verdict || (d.Hex != "" && l[0] != d.String()) {
		t.Errorf("%s: %v, want %s %s", ref, l, d, verdict)
	}
}

// keptRepository reports whether the filesystem store in data holds a manifest of
// registry/repo.
func keptRepository(t *testing.T, data, registry, repo string) bool {
	t.Helper()
	enc := strings.ReplaceAll(registry, ":", "_3a")
	dir := filepath.Join(data, "docker", "registry", "v2", "repositories", enc, repo, "_manifests", "revisions", "sha256")
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "link")); err == nil {
			return true
		}
	}
	return false
}

// layoutBlobs lists the configs and layers (hex digests) of the image whose manifest in
// the layout dir is hex, an index's children included.
func layoutBlobs(t *testing.T, dir, hex string) []string {
	t.Helper()
	var doc struct {
		Config    *struct{ Digest string }  `json:"config"`
		Layers    []struct{ Digest string } `json:"layers"`
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	if err := json.Unmarshal([]byte(testsupport.ReadFile(t, filepath.Join(dir, "blobs", "sha256", hex))), &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	if doc.Config != nil {
		out = append(out, strings.TrimPrefix(doc.Config.Digest, "sha256:"))
	}
	for _, l := range doc.Layers {
		out = append(out, strings.TrimPrefix(l.Digest, "sha256:"))
	}
	for _, c := range doc.Manifests {
		out = append(out, layoutBlobs(t, dir, strings.TrimPrefix(c.Digest, "sha256:"))...)
	}
	return out
}

// keptBlobs reports which of blobs (hex digests) the filesystem store in data holds.
func keptBlobs(data string, blobs []string) []string {
	var kept []string
	for _, b := range blobs {
		if _, err := os.Stat(filepath.Join(data, "docker", "registry", "v2", "blobs", "sha256", b[:2], b, "data")); err == nil {
			kept = append(kept, b)
		}
	}
	return kept
}

// stagingLeft lists the files left in the filesystem store's staging (_uploads).
func stagingLeft(t *testing.T, data string) []string {
	t.Helper()
	var left []string
	filepath.WalkDir(filepath.Join(data, "docker", "registry", "v2", "_uploads"), func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	return left
}

func TestAirgap(t *testing.T) {
	t.Parallel()
	w := newAirgapWorld(t)

	// mirror: the signed image and the signed index are kept and pinned; the unsigned one
	// is rejected (exit 1) and nothing of it is kept.
	code, out, errOut := harness.RunPullgate(t, w.bin, "mirror", "--config", w.connected,
		w.ref("app:v1"), w.ref("multi:v1"), w.ref("unsigned:v1"))
	lines := airgapLines(t, out)
	if code != 1 {
		t.Fatalf("mirror: exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	wantVerdict(t, lines, w.ref("app:v1"), "accepted", w.digests["app:v1"])
	wantVerdict(t, lines, w.ref("multi:v1"), "accepted", w.digests["multi:v1"])
	wantVerdict(t, lines, w.ref("unsigned:v1"), "rejected", w.digests["unsigned:v1"])
	if !strings.Contains(lines[w.ref("unsigned:v1")][2], "signature") {
		t.Errorf("the rejection does not say why: %v", lines[w.ref("unsigned:v1")])
	}
	if keptRepository(t, w.data, w.reg.Host, "unsigned") {
		t.Errorf("the rejected image was kept")
	}
	if !keptRepository(t, w.data, w.reg.Host, "app") || !keptRepository(t, w.data, w.reg.Host, "multi") {
		t.Fatalf("the accepted images were not kept")
	}
	if !strings.Contains(errOut, "progress: 3/3 images") {
		t.Errorf("no progress lines on stderr:\n%s", errOut)
	}

	// Incremental: a second run reads no blob again.
	w.reg.ResetRequests()
	list := filepath.Join(t.TempDir(), "images.txt")
	testsupport.WriteFile(t, list, "# the images to carry over\n"+w.ref("app:v1")+"\n\n"+w.ref("multi:v1")+"  # multi-arch\n")
	code, out, errOut = harness.RunPullgate(t, w.bin, "mirror", "--config", w.connected, "--images", list)
	if code != 0 {
		t.Fatalf("second mirror: exit %d\n%s\n%s", code, out, errOut)
	}
	if n := w.reg.CountRequests("GET", "/blobs/"); n != 0 {
		t.Errorf("the second mirror fetched %d blobs again", n)
	}
	if n := w.reg.CountRequests("GET", "/manifests/"); n != 0 {
		t.Errorf("the second mirror fetched %d manifests again: %v", n, w.reg.Requests())
	}

	// export into a layout: skopeo and go-containerregistry read it.
	dir := filepath.Join(t.TempDir(), "layout")
	// Incremental: a second export adds to the layout the first one wrote. docker:v1 was
	// not mirrored: export mirrors it first (kept and pinned on the connected side too).
	for _, r := range []string{"app:v1", "multi:v1", "docker:v1"} {
		code, out, errOut = harness.RunPullgate(t, w.bin, "export", "--config", w.connected, "--output", dir, w.ref(r))
		if code != 0 {
			t.Fatalf("export %s: exit %d\n%s\n%s", r, code, out, errOut)
		}
	}
	for _, r := range []string{"app:v1", "multi:v1"} {
		inspect := harness.Skopeo(t, "inspect", "--raw", "oci:"+dir+":"+w.ref(r))
		if got := sha256Hash([]byte(inspect)); got != w.digests[r] {
			t.Errorf("skopeo inspect oci:DIR:%s: digest %s, want %s", r, got, w.digests[r])
		}
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Errorf("go-containerregistry does not read the layout whole: %v", err)
	}
	if n := pinnedManifests(t, w.data, w.reg.Host, "docker"); n != 1 {
		t.Errorf("export did not mirror docker:v1 first: %d manifests pinned", n)
	}
	for _, r := range []string{"app:v1", "multi:v1", "docker:v1"} {
		sigs, _ := filepath.Glob(filepath.Join(dir, "signatures", w.reg.Host, strings.Split(r, ":")[0]+"@sha256="+w.digests[r].Hex, "signature-*"))
		if len(sigs) == 0 {
			t.Errorf("no simple signature of %s in the layout", r)
		}
	}

	// import at a site with an empty store and the registry offline; then serve.
	siteData := filepath.Join(t.TempDir(), "data")
	site := w.site(t, w.policy, siteData)
	code, out, errOut = harness.RunPullgate(t, w.bin, "import", "--config", site, dir)
	if code != 0 {
		t.Fatalf("import: exit %d\n%s\n%s", code, out, errOut)
	}
	lines = airgapLines(t, out)
	wantVerdict(t, lines, w.ref("app:v1"), "accepted", w.digests["app:v1"])
	wantVerdict(t, lines, w.ref("multi:v1"), "accepted", w.digests["multi:v1"])
	wantVerdict(t, lines, w.ref("docker:v1"), "accepted", w.digests["docker:v1"])
	for _, r := range []string{"app:v1", "multi:v1", "docker:v1"} {
		blobs := layoutBlobs(t, dir, w.digests[r].Hex)
		if kept := keptBlobs(siteData, blobs); len(kept) != len(blobs) {
			t.Errorf("import kept %d of the %d blobs of %s", len(kept), len(blobs), r)
		}
	}
	if left := stagingLeft(t, siteData); len(left) != 0 {
		t.Errorf("import left staging files: %v", left)
	}
	w.reg.ResetRequests()
	pg := harness.StartPullgate(t, w.bin, site)
	podman := harness.NewPodman(t, "[[registry]]\nlocation = \""+pg.Host+"\"\ninsecure = true\n")
	ctrd := harness.StartContainerd(t)
	for _, r := range []string{"app:v1", "multi:v1", "docker:v1"} {
		if got := strings.TrimSpace(harness.Crane(t, "digest", pg.Host+"/"+r)); got != w.digests[r].String() {
			t.Errorf("crane digest %s: %s, want %s", r, got, w.digests[r])
		}
		harness.PullImage(t, pg.Host+"/"+r)
		harness.Skopeo(t, "copy", "--all", "--src-tls-verify=false", "docker://"+pg.Host+"/"+r, "dir:"+t.TempDir())
		if _, errOut, err := podman.Pull(t, pg.Host+"/"+r); err != nil {
			t.Errorf("podman pull %s from the offline site: %v\n%s", r, err, errOut)
		}
		if out, err := ctrd.CtrPull(t, t.TempDir(), pg.Host+"/"+r); err != nil {
			t.Errorf("ctr pull %s from the offline site: %v\n%s", r, err, out)
		} else if got := ctrd.CtrImageDigest(t, pg.Host+"/"+r); got != w.digests[r].String() {
			t.Errorf("containerd holds %s as %q, want %s", r, got, w.digests[r])
		}
	}
	if seen := w.reg.Requests(); len(seen) != 0 {
		t.Errorf("the offline site reached the registry: %v", seen)
	}

	t.Run("tampered", func(t *testing.T) { testAirgapTampered(t, w, dir, siteData) })
	t.Run("other key", func(t *testing.T) {
		other := w.sig.Key(t, "other")
		data := filepath.Join(t.TempDir(), "data")
		code, out, errOut := harness.RunPullgate(t, w.bin, "import", "--config", w.site(t, w.trustPolicy(t, other), data), dir)
		if code != 1 {
			t.Fatalf("import under another key: exit %d, want 1\n%s\n%s", code, out, errOut)
		}
		lines := airgapLines(t, out)
		wantVerdict(t, lines, w.ref("app:v1"), "rejected", v1.Hash{})
		wantVerdict(t, lines, w.ref("multi:v1"), "rejected", v1.Hash{})
		for _, repo := range []string{"app", "multi"} {
			if keptRepository(t, data, w.reg.Host, repo) {
				t.Errorf("%s was kept under a policy trusting another key", repo)
			}
			if kept := keptBlobs(data, layoutBlobs(t, dir, w.digests[repo+":v1"].Hex)); len(kept) != 0 {
				t.Errorf("blobs %v of %s were kept under a policy trusting another key", kept, repo)
			}
		}
		if left := stagingLeft(t, data); len(left) != 0 {
			t.Errorf("import left staging files: %v", left)
		}
	})
}

// testAirgapTampered: an altered layout rejects the altered image and imports the other,
// into a fresh site and into a copy of keptData, a site that keeps both images already.
func testAirgapTampered(t *testing.T, w *airgapWorld, dir, keptData string) {
	app := w.digests["app:v1"]
	appManifest := string(testsupport.ReadFile(t, filepath.Join(dir, "blobs", "sha256", app.Hex)))
	var layer string
	if i := strings.Index(appManifest, `"layers"`); i >= 0 {
		rest := appManifest[i:]
		j := strings.Index(rest, "sha256:")
		layer = rest[j+7 : j+7+64]
	}
	if layer == "" {
		t.Fatalf("no layer in %s", appManifest)
	}
	multiIndex := string(testsupport.ReadFile(t, filepath.Join(dir, "blobs", "sha256", w.digests["multi:v1"].Hex)))
	j := strings.Index(multiIndex, "sha256:")
	child := multiIndex[j+7 : j+7+64]
	for _, c := range []struct {
		name   string
		tamper func(t *testing.T, d string)
		// rejected is the image the change rejects (app:v1 unless said).
		rejected string
	}{
		{"flipped child manifest byte", func(t *testing.T, d string) { flipByte(t, filepath.Join(d, "blobs", "sha256", child), 10) }, "multi:v1"},
		{"flipped blob byte", func(t *testing.T, d string) { flipByte(t, filepath.Join(d, "blobs", "sha256", layer), 100) }, ""},
		// A blob of another size than the manifest's: refused before it is read, and
		// nothing of it staged.
		{"blob one byte longer", func(t *testing.T, d string) { appendByte(t, filepath.Join(d, "blobs", "sha256", layer)) }, ""},
		{"blob truncated", func(t *testing.T, d string) {
			if err := os.Truncate(filepath.Join(d, "blobs", "sha256", layer), 10); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"flipped manifest byte", func(t *testing.T, d string) { flipByte(t, filepath.Join(d, "blobs", "sha256", app.Hex), 10) }, ""},
		{"swapped signature", func(t *testing.T, d string) {
			from := filepath.Join(d, "signatures", w.reg.Host, "multi@sha256="+w.digests["multi:v1"].Hex, "signature-1")
			to := filepath.Join(d, "signatures", w.reg.Host, "app@sha256="+app.Hex, "signature-1")
			testsupport.WriteFile(t, to, testsupport.ReadFile(t, from))
		}, ""},
		{"garbage signature", func(t *testing.T, d string) {
			testsupport.WriteFile(t, filepath.Join(d, "signatures", w.reg.Host, "app@sha256="+app.Hex, "signature-1"), "<html>not a signature</html>")
		}, ""},
		// DIR comes from outside: a FIFO (whose open waits for a writer) or a link to a
		// device in place of a file must reject the image, not hang or feed the import
		// forever.
		{"blob a FIFO", func(t *testing.T, d string) { replaceWithFIFO(t, filepath.Join(d, "blobs", "sha256", layer)) }, ""},
		{"blob a link to /dev/zero", func(t *testing.T, d string) {
			p := filepath.Join(d, "blobs", "sha256", layer)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"manifest a FIFO", func(t *testing.T, d string) { replaceWithFIFO(t, filepath.Join(d, "blobs", "sha256", app.Hex)) }, ""},
		{"signature a FIFO", func(t *testing.T, d string) {
			replaceWithFIFO(t, filepath.Join(d, "signatures", w.reg.Host, "app@sha256="+app.Hex, "signature-1"))
		}, ""},
		{"removed signature", func(t *testing.T, d string) {
			if err := os.RemoveAll(filepath.Join(d, "signatures", w.reg.Host, "app@sha256="+app.Hex)); err != nil {
				t.Fatal(err)
			}
		}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "layout")
			if out, err := exec.Command("cp", "-a", dir, d).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			c.tamper(t, d)
			data := filepath.Join(t.TempDir(), "data")
			code, out, errOut := harness.RunPullgate(t, w.bin, "import", "--config", w.site(t, w.policy, data), d)
			if code != 1 {
				t.Fatalf("import: exit %d, want 1\n%s\n%s", code, out, errOut)
			}
			lines := airgapLines(t, out)
			rejected, accepted := "app:v1", "multi:v1"
			if c.rejected == "multi:v1" {
				rejected, accepted = accepted, rejected
			}
			wantVerdict(t, lines, w.ref(rejected), "rejected", v1.Hash{})
			wantVerdict(t, lines, w.ref(accepted), "accepted", w.digests[accepted])
			if keptRepository(t, data, w.reg.Host, strings.Split(rejected, ":")[0]) {
				t.Errorf("something of the altered image was kept")
			}
			// No blob of the rejected image is kept, nothing is left staged; the accepted
			// image's blobs are.
			if kept := keptBlobs(data, layoutBlobs(t, dir, w.digests[rejected].Hex)); len(kept) != 0 {
				t.Errorf("blobs %v of the altered image were kept", kept)
			}
			if blobs := layoutBlobs(t, dir, w.digests[accepted].Hex); len(keptBlobs(data, blobs)) != len(blobs) {
				t.Errorf("the blobs of %s were not all kept", accepted)
			}
			if left := stagingLeft(t, data); len(left) != 0 {
				t.Errorf("import left staging files: %v", left)
			}
			t.Logf("%s: %s", c.name, lines[w.ref(rejected)][2])

			// A re-import into a site that keeps both images: the altered image is decided
			// from DIR alone, never from the signatures or content the site keeps.
			kept := filepath.Join(t.TempDir(), "kept")
			if out, err := exec.Command("cp", "-a", keptData, kept).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			code, out, errOut = harness.RunPullgate(t, w.bin, "import", "--config", w.site(t, w.policy, kept), d)
			if code != 1 {
				t.Fatalf("import into a site that keeps the images: exit %d, want 1\n%s\n%s", code, out, errOut)
			}
			lines = airgapLines(t, out)
			wantVerdict(t, lines, w.ref(rejected), "rejected", v1.Hash{})
			wantVerdict(t, lines, w.ref(accepted), "accepted", w.digests[accepted])
			if left := stagingLeft(t, kept); len(left) != 0 {
				t.Errorf("the re-import left staging files: %v", left)
			}
		})
	}
}

// replaceWithFIFO puts a FIFO without a writer where path was.
func replaceWithFIFO(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

func appendByte(t *testing.T, path string) {
	t.Helper()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, at int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[at%len(b)] ^= 0x01
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
