package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

// Attacks by an upstream registry on pullgate's upstream client, through the built
// binary: stalls that would hold every request forever, and redirects that would make
// pullgate fetch an internal URL and hand over what it got.

// attackTimeouts are short upstream deadlines for these tests (the defaults are tens of
// seconds).
const attackTimeouts = `upstreamTimeouts:
  dial: 1s
  responseHeader: 2s
  setup: 1s
  request: 2s
  blobStall: 1s
`

// attackWatchdog bounds how long the tests wait for pullgate: far beyond every deadline
// above, so that an answer before it came from pullgate's own bound.
const attackWatchdog = 60 * time.Second

// startAttackPullgate runs the binary in front of upstreamURL with an accept-anything
// policy and the short deadlines.
func startAttackPullgate(t *testing.T, upstreamURL *url.URL) *harness.Pullgate {
	t.Helper()
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	testsupport.WriteFile(t, policy, `{"default": [{"type": "insecureAcceptAnything"}]}`)
	config := harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams:       []harness.Upstream{{Registry: upstreamName, URL: upstreamURL}},
		DefaultUpstream: upstreamName,
		Policy:          policy,
		Extra:           attackTimeouts,
	})
	return harness.StartPullgate(t, harness.BuildPullgate(t, t.TempDir()), config)
}

// guardedDo sends one request to pullgate and reads the whole answer; a pullgate that
// does not answer within attackWatchdog fails the test.
func guardedDo(t *testing.T, method, rawURL string) answer {
	t.Helper()
	return callWith(t, &http.Client{Timeout: attackWatchdog}, method, rawURL, nil)
}

// stallUntilDone holds a handler until its request or the test ends.
func stallUntilDone(r *http.Request, stop <-chan struct{}) {
	select {
	case <-r.Context().Done():
	case <-stop:
	}
}

func TestAttackUpstreamStalls(t *testing.T) {
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","pad":"` + strings.Repeat("x", 4096) + `"}`)
	tests := []struct {
		name string
		// serve answers everything but what the test is about normally: /v2/ 200.
		serve func(w http.ResponseWriter, r *http.Request, stop <-chan struct{})
	}{
		{name: "ping body stalls", serve: func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
			testsupport.StallBody(w, r, stop, 1024, nil)
		}},
		{name: "manifest trickled", serve: func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
			if r.URL.Path == "/v2/" {
				w.WriteHeader(http.StatusOK)
				return
			}
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			testsupport.TrickleBody(w, r, stop, manifest, 200*time.Millisecond, nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := testsupport.StallingServer(t, tt.serve)
			upURL, _ := url.Parse(up.URL)
			pg := startAttackPullgate(t, upURL)
			for _, path := range []string{"/v2/team/app/manifests/v1", "/v2/team/app/tags/list"} {
				a := guardedDo(t, http.MethodGet, "http://"+pg.Host+path)
				t.Logf("GET %s: %d %s", path, a.status, a.body)
				if a.status != http.StatusGatewayTimeout {
					t.Fatalf("GET %s: %d %s, want 504", path, a.status, a.body)
				}
				if code := ociCode(t, a.body); code != "UNAVAILABLE" {
					t.Fatalf("GET %s: code %s, want UNAVAILABLE", path, code)
				}
			}
		})
	}
}

func TestAttackUpstreamBlobStallEndsTheBlob(t *testing.T) {
	var stalling atomic.Bool
	stop := make(chan struct{})
	reg := harness.StartRegistry(t, harness.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !stalling.Load() || !isBlobGET(r) {
				next.ServeHTTP(w, r)
				return
			}
			// Send the headers and a few bytes, then nothing.
			w.Header().Set("Content-Length", "65536")
			w.WriteHeader(http.StatusOK)
			w.Write(bytes.Repeat([]byte{0x1f}, 100))
			w.(http.Flusher).Flush()
			stallUntilDone(r, stop)
		})
	}))
	t.Cleanup(func() { close(stop) })
	reg.Push(t, "team/app:v1", harness.OCIImage(t, 1, 32<<10, harness.LinuxAMD64))
	stalling.Store(true)
	pg := startAttackPullgate(t, reg.URL)
	done := make(chan error, 1)
	go func() { done <- pullAll(harness.ParseRef(t, pg.Host+"/team/app:v1")) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a pull whose blobs stall succeeded")
		}
	case <-time.After(attackWatchdog):
		t.Fatal("a pull whose blobs stall never ended")
	}
}

// credentialsJSON is what the "internal metadata service" answers: a JSON object, which
// would parse as an (empty) referrers index or tag list.
const credentialsJSON = `{"Code":"Success","AccessKeyId":"ASIA-internal","SecretAccessKey":"internal-secret-key","Token":"internal-session-token"}`

// startInternalService stands for a service only pullgate's network reaches (a metadata
// service, an admin API): it answers every request with body and counts the requests.
func startInternalService(t *testing.T, contentType, body string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	hits := &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", contentType)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, hits
}

func TestAttackUpstreamRedirectsAPIToInternal(t *testing.T) {
	internal, internalHits := startInternalService(t, "application/json", credentialsJSON)
	var redirecting atomic.Bool
	reg := harness.StartRegistry(t, harness.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := r.URL.Path
			if redirecting.Load() && (strings.Contains(p, "/manifests/") || strings.Contains(p, "/referrers/") || strings.HasSuffix(p, "/tags/list")) {
				http.Redirect(w, r, internal.URL+"/latest/meta-data/iam/security-credentials/role", http.StatusTemporaryRedirect)
				return
			}
			next.ServeHTTP(w, r)
		})
	}))
	d := reg.Push(t, "team/app:v1", harness.OCIImage(t, 1, 1024, harness.LinuxAMD64))
	redirecting.Store(true)
	pg := startAttackPullgate(t, reg.URL)
	for _, req := range []struct{ method, path string }{
		{http.MethodGet, "/v2/team/app/manifests/v1"},
		{http.MethodHead, "/v2/team/app/manifests/v1"},
		{http.MethodGet, "/v2/team/app/manifests/" + d.String()},
		{http.MethodGet, "/v2/team/app/tags/list"},
		{http.MethodGet, "/v2/team/app/referrers/" + d.String()},
	} {
		a := guardedDo(t, req.method, "http://"+pg.Host+req.path)
		t.Logf("%s %s: %d %s", req.method, req.path, a.status, a.body)
		if bytes.Contains(a.body, []byte("internal-secret-key")) || bytes.Contains(a.body, []byte("ASIA-internal")) {
			t.Fatalf("%s %s: the internal service's answer reached the client: %s", req.method, req.path, a.body)
		}
		if a.status != http.StatusBadGateway {
			t.Fatalf("%s %s: %d, want 502", req.method, req.path, a.status)
		}
		if req.method == http.MethodGet {
			if code := ociCode(t, a.body); code == "" {
				t.Fatalf("%s %s: no OCI error code", req.method, req.path)
			}
		}
	}
	if n := internalHits.Load(); n != 0 {
		t.Fatalf("pullgate fetched the internal service %d times for redirected API requests", n)
	}
	if !strings.Contains(pg.Logs.String(), "redirect") {
		t.Fatalf("pullgate logged no refused redirect:\n%s", pg.Logs)
	}
}

func TestAttackUpstreamBlobRedirectToStorageStillPulls(t *testing.T) {
	img := harness.OCIImage(t, 2, 32<<10, harness.LinuxAMD64)
	stored := harness.LayerBlobs(t, img)
	cfgName, _ := img.ConfigName()
	cfgBytes, _ := img.RawConfigFile()
	stored[cfgName.String()] = cfgBytes
	storage := harness.StartObjectStorage(t, stored)
	var redirecting atomic.Bool
	reg := harness.StartRegistry(t, harness.WithMiddleware(storage.RedirectBlobs(func(*http.Request) bool { return redirecting.Load() })))
	want := reg.Push(t, "team/app:v1", img)
	redirecting.Store(true)
	pg := startAttackPullgate(t, reg.URL)

	got := harness.PullImage(t, pg.Host+"/team/app:v1")
	if got.Manifest != want || len(got.Layers) != 2 {
		t.Fatalf("pulled %+v", got)
	}
	// crane too, into a tarball.
	tarball := filepath.Join(t.TempDir(), "image.tar")
	harness.Crane(t, "pull", pg.Host+"/team/app:v1", tarball)
	if st, err := os.Stat(tarball); err != nil || st.Size() == 0 {
		t.Fatalf("crane wrote no image: %v", err)
	}
	storageAuth := storage.Authorizations()
	if len(storageAuth) == 0 {
		t.Fatal("the blobs were not fetched from storage")
	}
	for _, a := range storageAuth {
		if a != "" {
			t.Fatalf("object storage received Authorization %q", a)
		}
	}
}

// internalSecret is what the "internal service" answers to a redirected blob request:
// large enough (200 KiB) that a relay which streams before it verifies would hand most of
// it to the client.
var internalSecret = strings.Repeat("internal-secret-line\n", 10000)

// TestAttackUpstreamBlobRedirectToInternal: an upstream answers the blob request of an
// image that passed the gate with a redirect to an address that reaches this machine or
// its network's internals without naming 127.0.0.1 (0.0.0.0 and [::] connect to the
// local host on Linux), or to the cloud metadata address. The upstream here is itself on
// loopback, so a redirect to 127.0.0.1 is allowed (the test storage of the test above);
// the unspecified and link-local addresses are never dialled for an upstream, whatever
// its own address. Nothing reaches the internal service and the client gets a 502.
func TestAttackUpstreamBlobRedirectToInternal(t *testing.T) {
	internal, internalHits := startInternalService(t, "text/plain", internalSecret)
	port := internal.Listener.Addr().(*net.TCPAddr).Port
	var target atomic.Value // the redirect target of the current row, "" for none
	target.Store("")
	reg := harness.StartRegistry(t, harness.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if to := target.Load().(string); to != "" && strings.Contains(r.URL.Path, "/blobs/") {
				http.Redirect(w, r, to, http.StatusTemporaryRedirect)
				return
			}
			next.ServeHTTP(w, r)
		})
	}))
	img := harness.OCIImage(t, 1, 32<<10, harness.LinuxAMD64)
	reg.Push(t, "team/app:v1", img)
	layer, _ := testsupport.FirstLayer(t, img)
	pg := startAttackPullgate(t, reg.URL)
	if a := guardedDo(t, http.MethodGet, "http://"+pg.Host+"/v2/team/app/manifests/v1"); a.status != http.StatusOK {
		t.Fatalf("manifest: %d %s", a.status, a.body)
	}
	for _, to := range []string{
		fmt.Sprintf("http://0.0.0.0:%d/latest/meta-data/", port),
		fmt.Sprintf("http://[::]:%d/latest/meta-data/", port),
		fmt.Sprintf("http://[::ffff:0.0.0.0]:%d/latest/meta-data/", port),
		fmt.Sprintf("http://0.1.2.3:%d/latest/meta-data/", port),
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"http://[fe80::1]/latest/meta-data/",
	} {
		target.Store(to)
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			a := guardedDo(t, method, "http://"+pg.Host+"/v2/team/app/blobs/"+layer.String())
			if strings.Contains(string(a.body), "internal-secret-line") {
				t.Fatalf("%s redirected to %s: %d bytes of the internal answer reached the client", method, to, len(a.body))
			}
			if a.status != http.StatusBadGateway {
				t.Fatalf("%s redirected to %s: %d, want 502 (%s)", method, to, a.status, a.body)
			}
		}
	}
	if n := internalHits.Load(); n != 0 {
		t.Fatalf("pullgate connected to the internal service %d times", n)
	}
	if !strings.Contains(pg.Logs.String(), "refused to connect") {
		t.Fatalf("pullgate logged no refused connection:\n%s", pg.Logs)
	}
	// Not a blanket refusal: the same blob without the redirect is served.
	target.Store("")
	if a := guardedDo(t, http.MethodGet, "http://"+pg.Host+"/v2/team/app/blobs/"+layer.String()); a.status != http.StatusOK {
		t.Fatalf("blob without redirect: %d %s", a.status, a.body)
	}
}

// TestAttackUpstreamTokenRealmInternal: an upstream's challenge names a token realm at an
// address that reaches this machine without naming 127.0.0.1, or at the metadata
// address. pullgate never asks it for a token (it would send the upstream's credentials
// there, and send back whatever it answered as a bearer token). go-containerregistry
// refuses these IP literals as realms itself; a realm named by a host name that resolves
// inside is refused by pullgate's dial guard, which TestDialGuard in proxy/upstream
// checks ("localhost" for an upstream at a public address): a name resolving to
// 0.0.0.0 cannot be made here without changing the machine's resolver.
func TestAttackUpstreamTokenRealmInternal(t *testing.T) {
	internal, internalHits := startInternalService(t, "application/json", credentialsJSON)
	port := internal.Listener.Addr().(*net.TCPAddr).Port
	var realm atomic.Value
	upstreamSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Authorization"), "Bearer") {
			t.Errorf("the upstream received a bearer token: %q", r.Header.Get("Authorization"))
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="registry"`, realm.Load().(string)))
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(upstreamSrv.Close)
	u, err := url.Parse(upstreamSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	pg := startAttackPullgate(t, u)
	for _, r := range []string{
		fmt.Sprintf("http://0.0.0.0:%d/token", port),
		fmt.Sprintf("http://[::]:%d/token", port),
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/role",
	} {
		realm.Store(r)
		a := guardedDo(t, http.MethodGet, "http://"+pg.Host+"/v2/team/app/manifests/v1")
		if a.status < 500 {
			t.Fatalf("realm %s: %d, want a 5xx (%s)", r, a.status, a.body)
		}
		if strings.Contains(string(a.body), "internal") {
			t.Fatalf("realm %s: the answer names the internal service: %s", r, a.body)
		}
	}
	if n := internalHits.Load(); n != 0 {
		t.Fatalf("pullgate asked the internal service for a token %d times", n)
	}
}

// TestAttackUpstreamBlobRedirectToDeadStorageHidesSignature: the upstream sends a blob
// to a presigned object-store URL that cannot be reached (nothing listens). pullgate
// answers an error, and neither the answer nor the log (the ERROR line's error field
// included) holds the URL's query, the credential; the error line still names the
// store's scheme, host and path.
func TestAttackUpstreamBlobRedirectToDeadStorageHidesSignature(t *testing.T) {
	dead := "http://" + testsupport.ClosedAddr(t)
	const presigned = "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDSECRET%2F20261203&X-Amz-Signature=TOPSECRET"
	var redirecting atomic.Bool
	reg := harness.StartRegistry(t, harness.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if i := strings.Index(r.URL.Path, "/blobs/"); i >= 0 && redirecting.Load() {
				http.Redirect(w, r, dead+"/bucket/"+r.URL.Path[i+len("/blobs/"):]+presigned, http.StatusTemporaryRedirect)
				return
			}
			next.ServeHTTP(w, r)
		})
	}))
	img := harness.OCIImage(t, 1, 1024, harness.LinuxAMD64)
	reg.Push(t, "team/app:v1", img)
	redirecting.Store(true)
	var layer string
	for d := range harness.LayerBlobs(t, img) {
		layer = d
	}
	pg := startAttackPullgate(t, reg.URL)
	if a := guardedDo(t, http.MethodGet, "http://"+pg.Host+"/v2/team/app/manifests/v1"); a.status != http.StatusOK {
		t.Fatalf("manifest: %d %s", a.status, a.body)
	}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		a := guardedDo(t, method, "http://"+pg.Host+"/v2/team/app/blobs/"+layer)
		if a.status < 500 {
			t.Fatalf("%s blob from dead storage: %d, want a 5xx", method, a.status)
		}
		if bytes.Contains(a.body, []byte("TOPSECRET")) || bytes.Contains(a.body, []byte("AKIDSECRET")) {
			t.Fatalf("%s: the presigned query reached the client: %s", method, a.body)
		}
	}
	line := pg.WaitLog(t, "failed to serve request", 0)
	for _, secret := range []string{"TOPSECRET", "AKIDSECRET", "X-Amz"} {
		if strings.Contains(pg.Logs.String(), secret) {
			t.Fatalf("%q is in the log:\n%s", secret, pg.Logs)
		}
	}
	if msg, _ := line["error"].(string); line["level"] != "ERROR" || !strings.Contains(msg, `"`+dead+"/bucket/"+layer+`"`) {
		t.Fatalf("the error line does not name the store's URL: %v", line)
	}
}
