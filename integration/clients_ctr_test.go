package integration

// containerd's hosts.toml forms from the README, tested with a real containerd and ctr:
// pullgate (the binary) in front of distribution's registry with a signed and an
// unsigned image. The mirror form lets containerd go around a denial (it falls back to
// the registry); the only-location form makes the denial final; the only-location form
// the README used to give (server and capabilities without a [host] table) is refused
// by containerd 1.6, which then pulls straight from the registry.

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

// Markers of the README's containerd snippets: the first line of each fenced block.
const (
	readmeCtrMirror = "# /etc/containerd/certs.d/docker.io/hosts.toml: pullgate as a mirror"
	readmeCtrOnly   = "# /etc/containerd/certs.d/docker.io/hosts.toml: pullgate as the only location"
)

// oldCtrOnlyLocation is the only-location hosts.toml the README gave before: containerd
// 1.6 (Debian 12) and early 1.7 refuse it ("invalid `host` tree") and then use the
// registry named in the reference, as if there were no hosts.toml.
const oldCtrOnlyLocation = `server = "http://pullgate.example:5000"
capabilities = ["pull", "resolve"]
`

// ctrClientWorld is an upstream registry named by its own address (127.0.0.1:<port>),
// so that containerd going around pullgate really reaches it, with a policy that wants a
// signature by the trusted key for that registry.
type ctrClientWorld struct {
	reg      *harness.Registry
	sig      *harness.SimpleSigning
	policy   string
	bin      string
	ctrd     *harness.Containerd
	signed   v1.Hash
	unsigned v1.Hash
}

func TestClientsCtr(t *testing.T) {
	t.Parallel()
	w := &ctrClientWorld{reg: harness.StartRegistry(t), sig: harness.NewSimpleSigning(t)}
	key := w.sig.Key(t, "trusted")
	w.policy = filepath.Join(t.TempDir(), "policy.json")
	testsupport.WriteFile(t, w.policy, fmt.Sprintf(`{
  "default": [{"type": "reject"}],
  "transports": {"docker": {%q: [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": %q}]}}
}
`, w.reg.Host, key.PublicKeyFile))
	binDir := t.TempDir()
	parallel(t, "set-up", map[string]func(*testing.T){
		"build": func(t *testing.T) { w.bin = harness.BuildPullgate(t, binDir) },
		"signed": func(t *testing.T) {
			w.reg.Push(t, "src/signed:v1", harness.OCIImage(t, 2, 2048, harness.LinuxAMD64))
			w.sig.CopySigned(t, key, w.reg.Host+"/signed:v1", "docker://"+w.reg.Host+"/src/signed:v1", "docker://"+w.reg.Host+"/signed:v1")
		},
		"unsigned": func(t *testing.T) {
			w.unsigned = w.reg.Push(t, "unsigned:v1", harness.OCIImage(t, 2, 2048, harness.LinuxAMD64))
		},
	})
	w.signed = mustHead(t, w.reg, "signed:v1")
	w.ctrd = harness.StartContainerd(t)
	pg := harness.StartPullgate(t, w.bin, harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams: []harness.Upstream{{Registry: w.reg.Host, URL: w.reg.URL}},
		Policy:    w.policy, RegistriesD: w.sig.RegistriesD,
	}))

	// Each subtest pulls both images; they run in turn (one daemon, one request log).
	t.Run("only location: denial is final", func(t *testing.T) { testCtrOnlyLocation(t, w, pg) })
	t.Run("mirror: containerd falls back to the registry", func(t *testing.T) { testCtrMirror(t, w, pg) })
	t.Run("old only-location form", func(t *testing.T) { testCtrOldForm(t, w, pg) })
}

// testCtrOnlyLocation: with the README's only-location hosts.toml the signed image comes
// through pullgate, the unsigned one fails with 403 Forbidden, and ctr never asks the
// registry itself.
func testCtrOnlyLocation(t *testing.T, w *ctrClientWorld, pg *harness.Pullgate) {
	hosts := w.hostsDir(t, readmeSnippet(t, readmeCtrOnly), pg)

	w.reg.ResetRequests()
	ref := w.reg.Host + "/signed:v1"
	w.pullOK(t, hosts, ref, w.signed)
	w.noDirectRequests(t)
	// ctr resolves the tag (HEAD) and fetches the manifest by digest: two decisions.
	for _, d := range waitDecisions(t, pg, "signed", "manifest", 2) {
		if d["verdict"] != "accept" {
			t.Errorf("decision on signed:v1: %v, want accept", d)
		}
	}

	w.reg.ResetRequests()
	ref = w.reg.Host + "/unsigned:v1"
	out := w.pullFails(t, hosts, ref)
	// ctr resolves a tag with HEAD, so the 403 reaches it without pullgate's OCI error
	// body: it shows the status alone. The reason is in pullgate's decision log.
	if !strings.Contains(out, "403 Forbidden") {
		t.Errorf("ctr output does not show 403 Forbidden:\n%s", out)
	}
	if strings.Contains(out, "signature") {
		t.Errorf("ctr shows a reason (expected only the status, HEAD has no body):\n%s", out)
	}
	w.noDirectRequests(t)
	// containerd asks every host of the file in turn after a 4xx: pullgate as [host] and
	// as server, so two requests, two (cached) decisions.
	d := decisions(pg, "unsigned", "manifest")
	if len(d) == 0 {
		t.Fatal("pullgate logged no decision about unsigned:v1")
	}
	for _, e := range d {
		if e["verdict"] != "deny" || !strings.Contains(fmt.Sprint(e["reason"]), "signature") {
			t.Errorf("decision on unsigned:v1: %v, want deny with the missing signature as reason", e)
		}
	}
	t.Logf("ctr shows: %s", lastLine(out))
	t.Logf("pullgate's decision log has the reason: %v", d[0]["reason"])
}

// testCtrMirror: with the README's mirror hosts.toml the signed image still comes
// through pullgate, but the denied unsigned image is fetched from the registry
// directly: containerd tries the server after the mirror's 403.
func testCtrMirror(t *testing.T, w *ctrClientWorld, pg *harness.Pullgate) {
	hosts := w.hostsDir(t, readmeSnippet(t, readmeCtrMirror), pg)

	w.reg.ResetRequests()
	w.pullOK(t, hosts, w.reg.Host+"/signed:v1", w.signed)
	w.noDirectRequests(t)

	w.reg.ResetRequests()
	before := len(decisions(pg, "unsigned", "manifest"))
	w.pullOK(t, hosts, w.reg.Host+"/unsigned:v1", w.unsigned)
	if n := len(decisions(pg, "unsigned", "manifest")); n <= before {
		t.Errorf("pullgate was not asked for unsigned:v1 (%d decisions before, %d after)", before, n)
	}
	if n := w.directRequests(t, "/v2/unsigned/manifests/"); n == 0 {
		t.Errorf("the unsigned image was pulled but ctr never asked the registry for it: %v", w.reg.Requests())
	}
}

// testCtrOldForm: the only-location form without a [host] table. containerd 1.6 refuses
// the file and pulls the unsigned image straight from the registry; a containerd that
// accepts the file must send everything through pullgate.
func testCtrOldForm(t *testing.T, w *ctrClientWorld, pg *harness.Pullgate) {
	hosts := w.hostsDir(t, oldCtrOnlyLocation, pg)
	version := ctrVersion(t)

	w.reg.ResetRequests()
	before := len(decisions(pg, "unsigned", "manifest"))
	ref := w.reg.Host + "/unsigned:v1"
	w.ctrd.CtrRemove(t, ref)
	out, err := w.ctrd.CtrPull(t, hosts, ref)
	refused := strings.Contains(out, "invalid `host` tree")
	t.Logf("containerd %s: refused the file: %v\n%s", version, refused, out)
	if strings.HasPrefix(version, "1.6.") && !refused {
		t.Fatalf("containerd %s accepted the old only-location form; the README says 1.6 refuses it", version)
	}
	if !refused {
		if err == nil {
			t.Errorf("containerd %s accepted the file and pulled the unsigned image", version)
		}
		w.noDirectRequests(t)
		return
	}
	// Refused: the file is ignored, the registry is used as if there were none.
	if err != nil {
		t.Fatalf("ctr pull with the refused file failed (expected a direct pull): %v\n%s", err, out)
	}
	if got := w.ctrd.CtrImageDigest(t, ref); got != w.unsigned.String() {
		t.Errorf("containerd holds %s as %q, want the unsigned image %s", ref, got, w.unsigned)
	}
	if n := w.directRequests(t, "/v2/unsigned/manifests/"); n == 0 {
		t.Errorf("ctr did not ask the registry directly: %v", w.reg.Requests())
	}
	if n := len(decisions(pg, "unsigned", "manifest")); n != before {
		t.Errorf("pullgate was asked (%d decisions, %d before); containerd should have ignored it", n, before)
	}
}

// hostsDir writes snippet, with the README's names replaced by the test's, as the
// hosts.toml of the upstream's registry in a new folder, and returns the folder.
func (w *ctrClientWorld) hostsDir(t *testing.T, snippet string, pg *harness.Pullgate) string {
	t.Helper()
	content := strings.NewReplacer(
		"https://registry-1.docker.io", "http://"+w.reg.Host, // the registry itself
		"pullgate.example:5000", pg.Host,
	).Replace(snippet)
	dir := t.TempDir()
	harness.WriteHostsToml(t, dir, w.reg.Host, content)
	t.Logf("hosts.toml:\n%s", content)
	return dir
}

// pullOK pulls ref afresh with ctr and checks that containerd holds it with digest want.
func (w *ctrClientWorld) pullOK(t *testing.T, hosts, ref string, want v1.Hash) {
	t.Helper()
	w.ctrd.CtrRemove(t, ref)
	out, err := w.ctrd.CtrPull(t, hosts, ref)
	if err != nil {
		t.Fatalf("ctr pull %s: %v\n%s", ref, err, out)
	}
	if got := w.ctrd.CtrImageDigest(t, ref); got != want.String() {
		t.Fatalf("containerd holds %s as %q, want %s", ref, got, want)
	}
}

// pullFails pulls ref afresh with ctr, expecting a failure, and returns ctr's output.
func (w *ctrClientWorld) pullFails(t *testing.T, hosts, ref string) string {
	t.Helper()
	w.ctrd.CtrRemove(t, ref)
	out, err := w.ctrd.CtrPull(t, hosts, ref)
	if err == nil {
		t.Fatalf("ctr pulled %s, want a failure:\n%s", ref, out)
	}
	if got := w.ctrd.CtrImageDigest(t, ref); got != "" {
		t.Fatalf("containerd holds %s (%s) after a failed pull", ref, got)
	}
	return out
}

// directRequests counts the requests ctr itself (not pullgate) sent to the registry
// whose path contains part.
func (w *ctrClientWorld) directRequests(t *testing.T, part string) int {
	t.Helper()
	n := 0
	for _, q := range w.reg.Requests() {
		if strings.HasPrefix(q.Header.Get("User-Agent"), "containerd/") && strings.Contains(q.Path, part) {
			n++
		}
	}
	return n
}

// noDirectRequests checks that ctr sent nothing to the registry itself.
func (w *ctrClientWorld) noDirectRequests(t *testing.T) {
	t.Helper()
	if n := w.directRequests(t, "/"); n != 0 {
		var seen []string
		for _, q := range w.reg.Requests() {
			seen = append(seen, q.Method+" "+q.Path+" ("+q.Header.Get("User-Agent")+")")
		}
		t.Errorf("ctr sent %d requests to the registry directly, bypassing pullgate: %v", n, seen)
	}
}

// ctrVersion is the version `ctr --version` reports (1.6.20~ds1).
func ctrVersion(t *testing.T) string {
	t.Helper()
	out, errOut, err := harness.Run(t, harness.ToolTimeout, nil, "ctr", "--version")
	if err != nil {
		t.Fatalf("ctr --version: %v\n%s", err, errOut)
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		t.Fatalf("ctr --version printed nothing")
	}
	return f[len(f)-1]
}

// mustHead is the digest the registry holds for repoRef.
func mustHead(t *testing.T, reg *harness.Registry, repoRef string) v1.Hash {
	t.Helper()
	desc, err := remote.Head(reg.Ref(t, repoRef))
	if err != nil {
		t.Fatalf("HEAD %s: %v", repoRef, err)
	}
	return desc.Digest
}

// readmeSnippet returns the fenced code block of README.md whose first line starts with
// marker (that line included), so that the tests run the snippets users copy.
func readmeSnippet(t *testing.T, marker string) string {
	t.Helper()
	b := testsupport.ReadFile(t, filepath.Join("..", "README.md"))
	blocks := regexp.MustCompile("(?ms)^ *```[a-z]*\n(.*?)^ *```").FindAllStringSubmatch(string(b), -1)
	for _, m := range blocks {
		body := dedent(m[1])
		if first, _, _ := strings.Cut(body, "\n"); strings.HasPrefix(first, marker) {
			return body
		}
	}
	t.Fatalf("README.md has no code block starting with %q", marker)
	return ""
}

// dedent removes the indentation of the block's first line from every line (snippets in
// list items are indented).
func dedent(s string) string {
	lines := strings.Split(s, "\n")
	indent := len(lines[0]) - len(strings.TrimLeft(lines[0], " "))
	for i, l := range lines {
		if len(l) >= indent && strings.TrimSpace(l[:indent]) == "" {
			lines[i] = l[indent:]
		}
	}
	return strings.Join(lines, "\n")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
