package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/gatetest"
	"github.com/pullgate/pullgate/proxy/upstream"
)

// startProxyWith is startProxy with options changed by change.
func startProxyWith(t *testing.T, gate admission.Gate, u *upstreamServer, change func(*proxy.Options)) *testProxy {
	t.Helper()
	logs := &testsupport.LogBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	client, err := upstream.New(upstream.Options{Registry: testRegistry, URL: &url.URL{Scheme: "http", Host: u.host()}, Retries: -1, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	opts := proxy.Options{
		Upstreams:       []proxy.Upstream{{Registry: testRegistry, Source: client}},
		DefaultUpstream: testRegistry, Gate: gate, Logger: logger,
	}
	change(&opts)
	h, err := proxy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	p := &testProxy{Server: httptest.NewServer(h), logs: logs}
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			t.Logf("proxy log:\n%s", logs.String())
		}
	})
	return p
}

func TestNosniffOnEveryAnswer(t *testing.T) {
	u := startUpstream(t, nil)
	img := randomImage(t)
	d := u.push(t, "team/app", "v1", img)
	ld, _ := testsupport.FirstLayer(t, img)
	p := startProxy(t, gatetest.AllowAll{}, u)
	no := func() (admission.Decision, error) { return admission.Decision{Reason: "denied by the test"}, nil }
	deny := startProxy(t, gatetest.Funcs{
		Manifest: func(context.Context, *admission.ManifestRequest) (admission.Decision, error) { return no() },
		Blob:     func(context.Context, *admission.BlobRequest) (admission.Decision, error) { return no() },
	}, u)
	for _, tt := range []struct {
		p            *testProxy
		method, path string
	}{
		{p, "GET", "/v2/"},
		{p, "GET", "/v2/team/app/manifests/v1"},
		{p, "GET", "/v2/team/app/manifests/" + d.String()},
		{p, "GET", "/v2/team/app/blobs/" + ld.String()},
		{p, "HEAD", "/v2/team/app/blobs/" + ld.String()},
		{p, "GET", "/v2/team/app/tags/list"},
		{p, "GET", "/v2/team/app/referrers/" + d.String()},
		{p, "GET", "/v2/team/nothing/manifests/v1"},
		{p, "GET", "/v2/_catalog"},
		{p, "POST", "/v2/team/app/blobs/uploads/"},
		{p, "GET", "/not/the/api"},
		{deny, "GET", "/v2/team/app/manifests/v1"},
		{deny, "GET", "/v2/team/app/blobs/" + ld.String()},
	} {
		resp, _, _ := tt.p.do(t, tt.method, tt.path, nil)
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s (%s): X-Content-Type-Options %q", tt.method, tt.path, resp.Status, got)
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != "default-src 'none'; sandbox" {
			t.Errorf("%s %s (%s): Content-Security-Policy %q", tt.method, tt.path, resp.Status, got)
		}
	}
}

func TestRangeServedFromVerifiedBlob(t *testing.T) {
	u := startUpstream(t, nil)
	img := randomImage(t)
	u.push(t, "team/app", "v1", img)
	ld, content := testsupport.FirstLayer(t, img)
	size := len(content)
	p := startProxy(t, gatetest.AllowAll{}, u)
	path := "/v2/team/app/blobs/" + ld.String()
	tests := []struct {
		header     http.Header
		wantStatus int
		wantBody   []byte
		wantRange  string
	}{
		{http.Header{"Range": {"bytes=0-0"}}, 206, content[:1], "bytes 0-0/" + strconv.Itoa(size)},
		{http.Header{"Range": {"bytes=100-"}}, 206, content[100:], "bytes 100-" + strconv.Itoa(size-1) + "/" + strconv.Itoa(size)},
		{http.Header{"Range": {"bytes=-50"}}, 206, content[size-50:], "bytes " + strconv.Itoa(size-50) + "-" + strconv.Itoa(size-1) + "/" + strconv.Itoa(size)},
		{http.Header{"Range": {"bytes=5-" + strconv.Itoa(size*2)}}, 206, content[5:], "bytes 5-" + strconv.Itoa(size-1) + "/" + strconv.Itoa(size)},
		{http.Header{"Range": {"bytes=" + strconv.Itoa(size) + "-"}}, 416, nil, "bytes */" + strconv.Itoa(size)},
		{http.Header{"Range": {"bytes=0-1,5-6"}}, 200, content, ""},
		{http.Header{"Range": {"bytes=9-2"}}, 200, content, ""},
		{http.Header{"Range": {"pages=1-2"}}, 200, content, ""},
		{http.Header{"Range": {"bytes=0-9"}, "If-Range": {`"` + ld.String() + `"`}}, 200, content, ""},
	}
	for _, tt := range tests {
		u.Reset()
		resp, body, err := p.do(t, "GET", path, tt.header)
		if err != nil || resp.StatusCode != tt.wantStatus || resp.Header.Get("Content-Range") != tt.wantRange {
			t.Errorf("%v: %s %v, Content-Range %q", tt.header, resp.Status, err, resp.Header.Get("Content-Range"))
			continue
		}
		if tt.wantBody != nil && !bytes.Equal(body, tt.wantBody) {
			t.Errorf("%v: %d bytes, not the range", tt.header, len(body))
		}
		if tt.wantStatus == 416 {
			if code, _ := ociError(t, body); code != "RANGE_INVALID" {
				t.Errorf("416 code %s", code)
			}
		} else if resp.Header.Get("Accept-Ranges") != "bytes" {
			t.Errorf("%v: Accept-Ranges %q", tt.header, resp.Header.Get("Accept-Ranges"))
		}
		for _, r := range u.Requests() {
			if r.Header.Get("Range") != "" {
				t.Errorf("%v: Range %q sent upstream", tt.header, r.Header.Get("Range"))
			}
		}
	}
}

// TestRangeOfLyingBlobIsAborted: one wrong byte anywhere in the blob, before, inside or
// after the range asked for, and the client never gets a complete 206.
func TestRangeOfLyingBlobIsAborted(t *testing.T) {
	img, err := random.Image(64<<10, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, content := testsupport.FirstLayer(t, img)
	size := len(content)
	for name, at := range map[string]int{"before": 10, "first byte of the range": 1000, "inside": 1500, "last byte of the range": 1999, "after": size - 10} {
		t.Run(name, func(t *testing.T) {
			u := startUpstream(t, tamperBlobs(func(w http.ResponseWriter, h http.Header, b []byte) {
				b = bytes.Clone(b)
				if len(b) == size {
					b[at] ^= 0xff
				}
				w.WriteHeader(200)
				w.Write(b)
			}))
			u.push(t, "team/app", "v1", img)
			ld, _ := testsupport.FirstLayer(t, img)
			p := startProxy(t, gatetest.AllowAll{}, u)
			req, _ := http.NewRequest("GET", p.URL+"/v2/team/app/blobs/"+ld.String(), nil)
			req.Header.Set("Range", "bytes=1000-1999")
			resp, err := p.Client().Do(req)
			if err != nil {
				return // aborted before the headers
			}
			defer resp.Body.Close()
			body, readErr := io.ReadAll(resp.Body)
			if resp.StatusCode == 206 && readErr == nil {
				t.Fatalf("a clean 206 (%d bytes) of a blob that failed verification", len(body))
			}
			if !p.logs.Contains("failed to verify blob from upstream") {
				t.Fatal("the mismatch was not logged")
			}
		})
	}
}

func TestReferrersReencodedAndChecked(t *testing.T) {
	sub := digest.FromString("subject")
	good := digest.FromString("referrer")
	tests := []struct {
		name       string
		body       string
		wantStatus int
		want       string // the answer's manifests, re-encoded
	}{
		{name: "extra members dropped", wantStatus: 200,
			body: `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","extra":"<script>x</script>","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + good.String() + `","size":10,"artifactType":"application/vnd.example+json","annotations":{"a":"b"},"urls":["http://internal.example/"],"data":"AAAA","platform":{"os":"linux","architecture":"amd64"}}]}`,
			want: `[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + good.String() + `","size":10,"annotations":{"a":"b"},"artifactType":"application/vnd.example+json"}]`},
		{name: "no mediaType member", wantStatus: 200, body: `{"schemaVersion":2,"manifests":[]}`, want: `[]`},
		{name: "not an index", wantStatus: 502, body: `{"schemaVersion":2,"mediaType":"text/html","manifests":[]}`},
		{name: "schema version 1", wantStatus: 502, body: `{"schemaVersion":1,"manifests":[]}`},
		{name: "no schema version", wantStatus: 502, body: `{"AccessKeyId":"AKIA","SecretAccessKey":"s3cr3t"}`},
		{name: "invalid digest", wantStatus: 502, body: `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:nothex","size":1}]}`},
		{name: "invalid media type", wantStatus: 502, body: `{"schemaVersion":2,"manifests":[{"mediaType":"<html>","digest":"` + good.String() + `","size":1}]}`},
		{name: "negative size", wantStatus: 502, body: `{"schemaVersion":2,"manifests":[{"mediaType":"a/b","digest":"` + good.String() + `","size":-1}]}`},
		{name: "too many", wantStatus: 502, body: `{"schemaVersion":2,"manifests":[` + strings.Repeat(`{"mediaType":"a/b","digest":"`+good.String()+`","size":1},`, 4096) + `{"mediaType":"a/b","digest":"` + good.String() + `","size":1}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := startUpstream(t, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if !strings.Contains(r.URL.Path, "/referrers/") {
						next.ServeHTTP(w, r)
						return
					}
					w.Header().Set("Content-Type", "text/html")
					w.Header().Set("OCI-Filters-Applied", "anything<script>")
					io.WriteString(w, tt.body)
				})
			})
			p := startProxy(t, gatetest.AllowAll{}, u)
			resp, body, _ := p.do(t, "GET", "/v2/team/app/referrers/"+sub.String(), nil)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%s: %s", resp.Status, body)
			}
			if strings.Contains(string(body), "<script") || strings.Contains(string(body), "s3cr3t") || strings.Contains(string(body), "internal.example") {
				t.Fatalf("upstream bytes relayed: %s", body)
			}
			if resp.Header.Get("OCI-Filters-Applied") != "" {
				t.Fatalf("OCI-Filters-Applied %q relayed", resp.Header.Get("OCI-Filters-Applied"))
			}
			if tt.wantStatus != 200 {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.oci.image.index.v1+json" {
				t.Fatalf("Content-Type %q", ct)
			}
			var idx struct {
				SchemaVersion int             `json:"schemaVersion"`
				MediaType     string          `json:"mediaType"`
				Manifests     json.RawMessage `json:"manifests"`
			}
			if err := json.Unmarshal(body, &idx); err != nil || idx.SchemaVersion != 2 || string(idx.Manifests) != tt.want {
				t.Fatalf("answer %s, want manifests %s", body, tt.want)
			}
		})
	}
}

// listingGate allows everything but the listings of one repository.
type listingGate struct {
	gatetest.AllowAll
	closed string
	asked  atomic.Int32
}

func (g *listingGate) AdmitListing(_ context.Context, t admission.Target) (admission.Decision, error) {
	g.asked.Add(1)
	if t.Repository == g.closed {
		return admission.Decision{Reason: "policy x rejects every image of " + t.Repository}, nil
	}
	return admission.Decision{Allow: true}, nil
}

func TestListingGateRefusesBeforeTheUpstream(t *testing.T) {
	u := startUpstream(t, nil)
	img := randomImage(t)
	d := u.push(t, "team/closed", "v1", img)
	u.push(t, "team/open", "v1", img)
	g := &listingGate{closed: "team/closed"}
	p := startProxy(t, g, u)
	u.Reset()
	for _, path := range []string{"/v2/team/closed/tags/list", "/v2/team/closed/referrers/" + d.String()} {
		resp, body, _ := p.do(t, "GET", path, nil)
		if code, msg := ociError(t, body); resp.StatusCode != 403 || code != "DENIED" || !strings.Contains(msg, "team/closed") {
			t.Errorf("%s: %s %s", path, resp.Status, body)
		}
	}
	if n := len(u.Requests()); n != 0 {
		t.Errorf("refused listings reached the upstream %d times", n)
	}
	for _, path := range []string{"/v2/team/open/tags/list", "/v2/team/open/referrers/" + d.String()} {
		if resp, body, _ := p.do(t, "GET", path, nil); resp.StatusCode != 200 {
			t.Errorf("%s: %s %s", path, resp.Status, body)
		}
	}
	if g.asked.Load() != 4 {
		t.Errorf("the listing gate was asked %d times, want 4", g.asked.Load())
	}
}

// blobsInFlight is an upstream middleware counting blob GETs being answered.
func blobsInFlight(n *atomic.Int32) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "GET" && strings.Contains(r.URL.Path, "/blobs/") {
				n.Add(1)
				defer n.Add(-1)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// TestStalledClientFreesItsStream: a client that never reads a large blob is cut off by
// the write stall timeout, which frees its upstream stream; while it holds the only
// stream, another blob request is 503 UNAVAILABLE with Retry-After.
func TestStalledClientFreesItsStream(t *testing.T) {
	var inFlight atomic.Int32
	u := startUpstream(t, blobsInFlight(&inFlight))
	img, err := random.Image(16<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	u.push(t, "team/app", "v1", img)
	ld, content := testsupport.FirstLayer(t, img)
	p := startProxyWith(t, gatetest.AllowAll{}, u, func(o *proxy.Options) {
		o.WriteStallTimeout = 500 * time.Millisecond
		o.MaxBlobStreams = 1
		o.BlobStreamWait = 50 * time.Millisecond
	})
	path := "/v2/team/app/blobs/" + ld.String()

	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := dialer.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	for inFlight.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	// The one stream is taken by a client that does not read.
	busy, body, _ := p.do(t, "GET", path, nil)
	if code, _ := ociError(t, body); busy.StatusCode != 503 || code != "UNAVAILABLE" || busy.Header.Get("Retry-After") == "" {
		t.Fatalf("while the stream is taken: %s %s, Retry-After %q", busy.Status, body, busy.Header.Get("Retry-After"))
	}
	// The stall timeout ends the stalled request and closes its upstream body.
	for !p.logs.Contains("write stall timeout") || inFlight.Load() != 0 {
		time.Sleep(10 * time.Millisecond)
	}
	resp, body, err := p.do(t, "GET", path, nil)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, content) {
		t.Fatalf("after the stalled client was cut off: %s %v, %d bytes", resp.Status, err, len(body))
	}
}
