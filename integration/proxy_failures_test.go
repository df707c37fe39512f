package integration

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/proxy/content"
	"github.com/pullgate/pullgate/proxy/gatetest"
)

func isManifestGET(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/")
}

func isBlobGET(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:")
}

// TestLyingUpstreamIsCaught: whatever an upstream gets wrong, a client pulling through
// pullgate gets an error, never a clean wrong body.
func TestLyingUpstreamIsCaught(t *testing.T) {
	tests := []struct {
		name      string
		match     func(*http.Request) bool
		change    func(r *http.Request, status int, h http.Header, body []byte) (int, []byte)
		wantInLog string
	}{
		{
			name:  "wrong Docker-Content-Digest",
			match: isManifestGET,
			change: func(_ *http.Request, s int, h http.Header, b []byte) (int, []byte) {
				h.Set("Docker-Content-Digest", digest.FromString("another manifest").String())
				return s, b
			},
			wantInLog: "does not match its Docker-Content-Digest",
		},
		{
			name:  "corrupted blob",
			match: isBlobGET,
			change: func(_ *http.Request, s int, h http.Header, b []byte) (int, []byte) {
				b = bytes.Clone(b)
				b[len(b)-1] ^= 0x55
				return s, b
			},
			wantInLog: "failed to verify blob from upstream",
		},
		{
			name:  "manifest over 4 MiB",
			match: isManifestGET,
			change: func(_ *http.Request, s int, h http.Header, b []byte) (int, []byte) {
				// Honest about its digest, but too large to be accepted.
				b = append(bytes.Clone(b), bytes.Repeat([]byte(" "), content.MaxManifestBytes)...)
				h.Set("Docker-Content-Digest", digest.FromBytes(b).String())
				return s, b
			},
			wantInLog: "larger than pullgate accepts",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := harness.StartRegistry(t, harness.WithMiddleware(harness.RewriteResponses(tt.match, tt.change)))
			// Pushing only HEADs and PUTs: the lies do not disturb it.
			reg.Push(t, "team/app:v1", harness.OCIImage(t, 1, 64<<10, harness.LinuxAMD64))
			p := harness.StartProxy(t, harness.ProxyOptions{
				Upstreams:       []harness.Upstream{harness.UpstreamFor(upstreamName, reg)},
				DefaultUpstream: upstreamName, Gate: gatetest.AllowAll{},
			})
			// go-containerregistry: the pull fails.
			ref := harness.ParseRef(t, p.Host+"/team/app:v1")
			if err := pullAll(ref); err == nil {
				t.Fatal("go-containerregistry pulled through a lying upstream without an error")
			}
			// skopeo: the copy fails.
			errOut := harness.SkopeoFails(t, "copy", "--src-tls-verify=false", "docker://"+p.Host+"/team/app:v1", "oci:"+t.TempDir()+":v1")
			if errOut == "" {
				t.Fatal("skopeo failed without saying why")
			}
			if !p.Logs.Contains(tt.wantInLog) || len(p.Logs.Lines("level=ERROR")) == 0 {
				t.Fatalf("pullgate did not log the failure (%q) at ERROR", tt.wantInLog)
			}
		})
	}
}

// pullAll pulls an image and reads every blob, returning the first error.
func pullAll(ref name.Reference) error {
	// No client-side retries of the 502s: they would only slow the test down.
	img, err := remote.Image(ref, remote.WithRetryBackoff(remote.Backoff{Steps: 1}))
	if err != nil {
		return err
	}
	_, err = harness.ReadWhole(img)
	return err
}

func TestDownOrHangingUpstreamIsPromptError(t *testing.T) {
	tests := []struct {
		name       string
		addr       string
		wantStatus int
	}{
		{name: "connection refused", addr: harness.ClosedAddr(t), wantStatus: http.StatusBadGateway},
		{name: "accepts and never answers", addr: harness.HangingAddr(t), wantStatus: http.StatusGatewayTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := harness.StartProxy(t, harness.ProxyOptions{
				Upstreams:             []harness.Upstream{{Registry: upstreamName, URL: &url.URL{Scheme: "http", Host: tt.addr}}},
				DefaultUpstream:       upstreamName,
				Gate:                  gatetest.AllowAll{},
				DialTimeout:           250 * time.Millisecond,
				ResponseHeaderTimeout: 250 * time.Millisecond,
			})
			for _, path := range []string{"/v2/team/app/manifests/v1", "/v2/team/app/blobs/" + digest.FromString("x").String(), "/v2/team/app/tags/list"} {
				resp, body := httpGet(t, p.URL.String()+path, nil)
				if resp.StatusCode != tt.wantStatus {
					t.Fatalf("GET %s: %s %s", path, resp.Status, body)
				}
				if code := ociCode(t, body); code != "UNAVAILABLE" {
					t.Fatalf("GET %s: code %s", path, code)
				}
			}
			// /v2/ itself never depends on an upstream.
			if resp, _ := httpGet(t, p.URL.String()+"/v2/", nil); resp.StatusCode != 200 {
				t.Fatalf("GET /v2/: %s", resp.Status)
			}
		})
	}
}

// TestRedirectedBlobsKeepCredentialsHome: the upstream sends blobs to object storage on
// another host with a 307; pullgate follows, and neither its password nor its bearer
// token goes along.
func TestRedirectedBlobsKeepCredentialsHome(t *testing.T) {
	img := harness.OCIImage(t, 2, 32<<10, harness.LinuxAMD64)
	stored := harness.LayerBlobs(t, img)
	storage := harness.StartObjectStorage(t, stored)
	redirect := storage.RedirectBlobs(func(r *http.Request) bool {
		return r.Method == http.MethodGet && r.Header.Get("Authorization") != ""
	})
	reg := harness.StartRegistry(t, harness.WithTokenAuth(testUser, testPassword), harness.WithMiddleware(redirect))
	want := reg.Push(t, "team/app:v1", img)
	p := harness.StartProxy(t, harness.ProxyOptions{
		Upstreams:       []harness.Upstream{harness.UpstreamFor(upstreamName, reg)},
		DefaultUpstream: upstreamName, Gate: gatetest.AllowAll{},
	})
	got := harness.PullImage(t, p.Host+"/team/app:v1")
	if got.Manifest != want || len(got.Layers) != 2 {
		t.Fatalf("pulled %+v", got)
	}
	storageAuth := storage.Authorizations()
	if len(storageAuth) != len(stored) {
		t.Fatalf("object storage saw %d requests, want %d", len(storageAuth), len(stored))
	}
	for _, a := range storageAuth {
		if a != "" {
			t.Fatalf("object storage received Authorization %q", a)
		}
	}
}

func TestRangeAndHeadAgainstDistribution(t *testing.T) {
	reg := harness.StartRegistry(t)
	img := harness.OCIImage(t, 1, 8<<10, harness.LinuxAMD64)
	reg.Push(t, "team/app:v1", img)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	rc, _ := layers[0].Compressed()
	content, _ := io.ReadAll(rc)
	rc.Close()
	p := harness.StartProxy(t, harness.ProxyOptions{
		Upstreams:       []harness.Upstream{harness.UpstreamFor(upstreamName, reg)},
		DefaultUpstream: upstreamName, Gate: gatetest.AllowAll{},
	})
	blobPath := "/v2/team/app/blobs/" + ld.String()
	resp, body := httpGet(t, p.URL.String()+blobPath, http.Header{"Range": {"bytes=100-199"}})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, content[100:200]) {
		t.Fatalf("Range: %s, %d bytes", resp.Status, len(body))
	}
	if cr := resp.Header.Get("Content-Range"); cr != "bytes 100-199/"+strconv.Itoa(len(content)) {
		t.Fatalf("Content-Range %q", cr)
	}
	// HEAD answers carry what GET answers carry, for manifests (containerd resolves
	// tags with HEAD) and blobs.
	accept := http.Header{"Accept": {"application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json"}}
	for _, path := range []string{"/v2/team/app/manifests/v1", blobPath} {
		direct := head(t, reg.URL.String()+path, accept)
		via := head(t, p.URL.String()+path, accept)
		for _, h := range []string{"Content-Type", "Docker-Content-Digest", "Content-Length"} {
			if via.Header.Get(h) != direct.Header.Get(h) || via.Header.Get(h) == "" {
				t.Errorf("HEAD %s: %s = %q, upstream says %q", path, h, via.Header.Get(h), direct.Header.Get(h))
			}
		}
	}
}

func head(t *testing.T, url string, header http.Header) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HEAD %s: %s", url, resp.Status)
	}
	return resp
}
