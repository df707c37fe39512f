package proxy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullgate/pullgate/proxy"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy/admission"
)

// testRegistry is the registry name the proxy under test knows its upstream by.
const testRegistry = "registry.test"

// upstreamServer is go-containerregistry's in-memory registry on 127.0.0.1, with every
// request recorded and an optional middleware to make it misbehave.
type upstreamServer struct {
	*httptest.Server
	testsupport.RequestLog
}

func startUpstream(t *testing.T, mw func(http.Handler) http.Handler) *upstreamServer {
	t.Helper()
	u := &upstreamServer{}
	u.Server = httptest.NewServer(u.Record(testsupport.MemoryRegistry(mw, registry.WithReferrersSupport(true))))
	t.Cleanup(u.Close)
	return u
}

func (u *upstreamServer) host() string { return strings.TrimPrefix(u.URL, "http://") }

// push writes img to the upstream as repo:tag and returns its digest.
func (u *upstreamServer) push(t *testing.T, repo, tag string, img v1.Image) v1.Hash {
	t.Helper()
	ref, err := name.ParseReference(u.host() + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

type testProxy struct {
	*httptest.Server
	logs *testsupport.LogBuffer
}

// startProxy serves the proxy in front of u on 127.0.0.1 with gate, u being both the
// registry.test upstream and the default upstream.
func startProxy(t *testing.T, gate admission.Gate, u *upstreamServer) *testProxy {
	t.Helper()
	return startProxyWith(t, gate, u, func(*proxy.Options) {})
}

// do sends a request to the proxy and reads the whole answer. A body that ends
// abnormally is reported in readErr.
func (p *testProxy) do(t *testing.T, method, path string, header http.Header) (resp *http.Response, body []byte, readErr error) {
	t.Helper()
	req, err := http.NewRequest(method, p.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err = p.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, readErr = io.ReadAll(resp.Body)
	return resp, body, readErr
}

// ociError decodes an OCI error body and returns its first code and message.
func ociError(t *testing.T, body []byte) (code, message string) {
	t.Helper()
	var e struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not an OCI error body: %q (%v)", body, err)
	}
	return e.Errors[0].Code, e.Errors[0].Message
}
