// Package integration holds pullgate's end-to-end tests: distribution's registry
// in-process as the upstream, pullgate's handler in front of it, and real clients
// (go-containerregistry, skopeo, crane, the OCI conformance suite) pulling through it,
// all on 127.0.0.1.
package integration

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy/gatetest"
)

const (
	// upstreamName is the registry name pullgate knows the main test registry by.
	upstreamName = "registry.test"
	// testUser and testPassword are what the authenticated test registries accept.
	testUser     = "puller"
	testPassword = "pw-9f2c-Secret"
)

// fixture is a token-auth registry holding one image of each kind, and a second,
// anonymous registry standing in for docker.io with library/alpine.
type fixture struct {
	reg, hub                          *harness.Registry
	docker, oci, multi, dlist, alpine v1.Hash
	ociImage                          v1.Image
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		reg: harness.StartRegistry(t, harness.WithTokenAuth(testUser, testPassword)),
		hub: harness.StartRegistry(t),
	}
	f.docker = f.reg.Push(t, "team/docker:v1", harness.DockerImage(t, 2, 4096))
	f.ociImage = harness.OCIImage(t, 2, 4096, harness.LinuxAMD64)
	f.oci = f.reg.Push(t, "team/oci:v1", f.ociImage)
	f.multi = f.reg.PushIndex(t, "team/multi:v1", harness.OCIIndex(t, 2048, harness.LinuxAMD64, harness.LinuxARM64))
	f.dlist = f.reg.PushIndex(t, "team/dlist:v1", harness.DockerIndex(t, 2048, harness.LinuxAMD64, harness.LinuxARM64))
	f.alpine = f.hub.Push(t, "library/alpine:3.20", harness.DockerImage(t, 1, 2048))
	f.reg.ResetRequests()
	return f
}

// proxy starts pullgate in front of both registries with an allow-all gate.
func (f *fixture) proxy(t *testing.T, defaultUpstream string) *harness.Proxy {
	t.Helper()
	return harness.StartProxy(t, harness.ProxyOptions{
		Upstreams: []harness.Upstream{
			harness.UpstreamFor(upstreamName, f.reg),
			harness.UpstreamFor("docker.io", f.hub),
		},
		DefaultUpstream: defaultUpstream,
		Gate:            gatetest.AllowAll{},
	})
}

func TestGGCRPullsThroughAllRoutingModes(t *testing.T) {
	f := newFixture(t)
	p := f.proxy(t, upstreamName)
	direct := func(repoTag string) harness.Pulled {
		return harness.PullImage(t, f.reg.Host+"/"+repoTag, remote.WithAuth(f.reg.Auth()))
	}
	for _, repoTag := range []string{"team/docker:v1", "team/oci:v1"} {
		want := direct(repoTag)
		modes := map[string]harness.Pulled{
			"prefix":  harness.PullImage(t, p.Host+"/"+upstreamName+"/"+repoTag),
			"default": harness.PullImage(t, p.Host+"/"+repoTag),
			"ns":      harness.PullImage(t, p.Host+"/"+repoTag, remote.WithTransport(harness.NSTransport(upstreamName, nil))),
		}
		for mode, got := range modes {
			if got.Manifest != want.Manifest || got.Config != want.Config || !slices.Equal(got.Layers, want.Layers) {
				t.Errorf("%s via %s: pulled %+v, direct pull gave %+v", repoTag, mode, got, want)
			}
		}
	}
	// ns= routes to another upstream than the default one would: docker.io, with
	// library/ added to the one-component name.
	got := harness.PullImage(t, p.Host+"/alpine:3.20", remote.WithTransport(harness.NSTransport("docker.io", nil)))
	if got.Manifest != f.alpine {
		t.Errorf("alpine via ns=docker.io: %s, want %s", got.Manifest, f.alpine)
	}
	// Every platform of both index kinds, through the prefix path.
	for _, repoTag := range []string{"team/multi:v1", "team/dlist:v1"} {
		ref := harness.ParseRef(t, p.Host+"/"+upstreamName+"/"+repoTag)
		idx, err := remote.Index(ref)
		if err != nil {
			t.Fatalf("%s: %v", repoTag, err)
		}
		im, err := idx.IndexManifest()
		if err != nil || len(im.Manifests) != 2 {
			t.Fatalf("%s: %d manifests, %v", repoTag, len(im.Manifests), err)
		}
		for _, desc := range im.Manifests {
			img, err := idx.Image(desc.Digest)
			if err != nil {
				t.Fatalf("%s %s: %v", repoTag, desc.Platform, err)
			}
			if pulled := harness.ReadImage(t, img); pulled.Manifest != desc.Digest {
				t.Errorf("%s %s: %s", repoTag, desc.Platform, pulled.Manifest)
			}
		}
	}
}

func TestSkopeoPullsThroughPrefixAndDefault(t *testing.T) {
	f := newFixture(t)
	p := f.proxy(t, upstreamName)
	creds := "--src-creds=" + testUser + ":" + testPassword
	for _, tc := range []struct{ mode, source string }{
		{"prefix", p.Host + "/" + upstreamName + "/"},
		{"default", p.Host + "/"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			// Single-arch OCI image into an OCI layout: the same as a direct copy.
			viaProxy, viaDirect := t.TempDir(), t.TempDir()
			harness.Skopeo(t, "copy", "--src-tls-verify=false", "docker://"+tc.source+"team/oci:v1", "oci:"+viaProxy+":v1")
			harness.Skopeo(t, "copy", "--src-tls-verify=false", creds, "docker://"+f.reg.Host+"/team/oci:v1", "oci:"+viaDirect+":v1")
			sameLayout(t, viaProxy, viaDirect, f.oci)

			// Multi-arch index with --all: every platform, index digest preserved.
			viaProxy, viaDirect = t.TempDir(), t.TempDir()
			harness.Skopeo(t, "copy", "--all", "--src-tls-verify=false", "docker://"+tc.source+"team/multi:v1", "oci:"+viaProxy+":v1")
			harness.Skopeo(t, "copy", "--all", "--src-tls-verify=false", creds, "docker://"+f.reg.Host+"/team/multi:v1", "oci:"+viaDirect+":v1")
			sameLayout(t, viaProxy, viaDirect, f.multi)

			// Docker schema 2 into a dir: (an OCI layout would convert it): the
			// manifest bytes are the upstream's.
			dir := t.TempDir()
			harness.Skopeo(t, "copy", "--src-tls-verify=false", "docker://"+tc.source+"team/docker:v1", "dir:"+dir)
			raw := testsupport.ReadFile(t, filepath.Join(dir, "manifest.json"))
			if sum := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(sum[:]) != f.docker.String() {
				t.Fatalf("dir: manifest is not the upstream's %s", f.docker)
			}
		})
	}
	// docker.io through the prefix: alpine becomes library/alpine.
	dir := t.TempDir()
	harness.Skopeo(t, "copy", "--src-tls-verify=false", "docker://"+p.Host+"/docker.io/alpine:3.20", "dir:"+dir)
	raw := testsupport.ReadFile(t, filepath.Join(dir, "manifest.json"))
	if sum := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(sum[:]) != f.alpine.String() {
		t.Fatal("docker.io/alpine: not library/alpine's manifest")
	}
}

// sameLayout checks that two OCI layouts name the same manifest (want) and hold the
// same blobs.
func sameLayout(t *testing.T, got, direct string, want v1.Hash) {
	t.Helper()
	gm, dm := harness.LayoutManifests(t, got), harness.LayoutManifests(t, direct)
	if len(gm) != 1 || gm[0].Digest != want || len(dm) != 1 || dm[0].Digest != want {
		t.Fatalf("layout manifests: via pullgate %v, direct %v, want %s", gm, dm, want)
	}
	gb, db := harness.LayoutBlobs(t, got), harness.LayoutBlobs(t, direct)
	if len(gb) != len(db) {
		t.Fatalf("blobs: via pullgate %d, direct %d", len(gb), len(db))
	}
	for d := range db {
		if !gb[d] {
			t.Fatalf("blob %s missing from the pull through pullgate", d)
		}
	}
}

func TestCraneThroughPrefix(t *testing.T) {
	f := newFixture(t)
	p := f.proxy(t, upstreamName)
	out := harness.Crane(t, "digest", p.Host+"/"+upstreamName+"/team/multi:v1")
	if strings.TrimSpace(out) != f.multi.String() {
		t.Fatalf("crane digest: %q, want %s", out, f.multi)
	}
	tags := harness.Crane(t, "ls", p.Host+"/"+upstreamName+"/team/oci")
	if strings.TrimSpace(tags) != "v1" {
		t.Fatalf("crane ls: %q", tags)
	}
}

func TestTokenFetchedOncePerScope(t *testing.T) {
	f := newFixture(t)
	f.reg.Push(t, "team/other:v1", harness.DockerImage(t, 1, 1024))
	f.reg.ResetRequests()
	p := f.proxy(t, upstreamName)
	for range 3 {
		harness.PullImage(t, p.Host+"/team/oci:v1")
	}
	harness.PullImage(t, p.Host+"/team/other:v1")
	issued, refused := f.reg.TokenRequests()
	want := map[string]int{"repository:team/oci:pull": 1, "repository:team/other:pull": 1}
	if refused != 0 || len(issued) != len(want) {
		t.Fatalf("tokens issued %v (refused %d), want %v", issued, refused, want)
	}
	for scope, n := range want {
		if issued[scope] != n {
			t.Fatalf("tokens issued %v, want %v", issued, want)
		}
	}
	// And the registry saw every pull, each carrying the bearer token.
	reqs := f.reg.Requests()
	blobs := 0
	for _, r := range reqs {
		if strings.Contains(r.Path, "/blobs/") {
			blobs++
			if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
				t.Fatalf("blob request without bearer token: %s", r.Path)
			}
		}
	}
	if blobs == 0 {
		t.Fatal("no blob reached the registry")
	}
}

func TestBasicAuthUpstream(t *testing.T) {
	reg := harness.StartRegistry(t, harness.WithBasicAuth(testUser, testPassword))
	d := reg.Push(t, "team/app:v1", harness.DockerImage(t, 1, 1024))
	good := harness.StartProxy(t, harness.ProxyOptions{
		Upstreams:       []harness.Upstream{harness.UpstreamFor(upstreamName, reg)},
		DefaultUpstream: upstreamName, Gate: gatetest.AllowAll{},
	})
	if got := harness.PullImage(t, good.Host+"/team/app:v1"); got.Manifest != d {
		t.Fatalf("pulled %s, want %s", got.Manifest, d)
	}
}

func TestCredentialsStayPrivate(t *testing.T) {
	f := newFixture(t)
	wrong := harness.StartProxy(t, harness.ProxyOptions{
		Upstreams:       []harness.Upstream{{Registry: upstreamName, URL: f.reg.URL, Username: testUser, Password: testPassword + "-wrong"}},
		DefaultUpstream: upstreamName, Gate: gatetest.AllowAll{},
	})
	resp, body := httpGet(t, wrong.URL.String()+"/v2/team/oci/manifests/v1", nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `"UNAUTHORIZED"`) {
		t.Fatalf("wrong upstream password: %s %s", resp.Status, body)
	}
	// A client's own credentials are not passed on to the upstream.
	good := f.proxy(t, upstreamName)
	clientAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("client:client-secret"))
	f.reg.ResetRequests()
	resp, body = httpGet(t, good.URL.String()+"/v2/team/oci/manifests/v1", http.Header{"Authorization": {clientAuth}, "Accept": {"application/vnd.oci.image.manifest.v1+json"}})
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s", resp.Status, body)
	}
	for _, r := range f.reg.Requests() {
		if a := r.Header.Get("Authorization"); a == clientAuth || strings.Contains(a, "client-secret") {
			t.Fatalf("the client's Authorization reached the upstream: %s %s", r.Method, r.Path)
		}
	}
	secrets := []string{
		testPassword,
		base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testPassword)),
		base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testPassword + "-wrong")),
	}
	for _, s := range secrets {
		for what, text := range map[string]string{"logs of the failing proxy": wrong.Logs.String(), "logs": good.Logs.String(), "error body": string(body)} {
			if strings.Contains(text, s) {
				t.Fatalf("a credential appears in the %s", what)
			}
		}
	}
}

func TestGateTargetsUseUpstreamNames(t *testing.T) {
	f := newFixture(t)
	rec := &gatetest.Recorder{}
	p := harness.StartProxy(t, harness.ProxyOptions{
		Upstreams:       []harness.Upstream{harness.UpstreamFor(upstreamName, f.reg), harness.UpstreamFor("docker.io", f.hub)},
		DefaultUpstream: "docker.io",
		Gate:            rec,
	})
	for _, ref := range []string{p.Host + "/docker.io/alpine:3.20", p.Host + "/alpine:3.20", p.Host + "/library/alpine:3.20"} {
		harness.PullImage(t, ref)
	}
	harness.PullImage(t, p.Host+"/alpine:3.20", remote.WithTransport(harness.NSTransport("docker.io", nil)))
	harness.PullImage(t, p.Host+"/"+upstreamName+"/team/oci:v1")
	ms := rec.Manifests()
	if len(ms) != 5 {
		t.Fatalf("gate saw %d manifests, want 5", len(ms))
	}
	for i, m := range ms[:4] {
		if m.Registry != "docker.io" || m.Repository != "library/alpine" || m.Reference != "3.20" || m.Digest.String() != f.alpine.String() {
			t.Errorf("pull %d: gate saw %+v %s %s", i, m.Target, m.Reference, m.Digest)
		}
	}
	if m := ms[4]; m.Registry != upstreamName || m.Repository != "team/oci" {
		t.Errorf("gate saw %+v", m.Target)
	}
	for _, b := range rec.Blobs() {
		if b.Registry == "docker.io" && b.Repository != "library/alpine" {
			t.Errorf("blob gated for %+v", b.Target)
		}
	}
}

func httpGet(t *testing.T, url string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// ociCode is the first error code of an OCI error body.
func ociCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not an OCI error body: %q", body)
	}
	return e.Errors[0].Code
}

var _ = fmt.Sprint
