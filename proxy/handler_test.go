package proxy_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/content"
	"github.com/pullgate/pullgate/proxy/gatetest"
)

// nopSource satisfies content.Source for constructor tests; it is never called.
type nopSource struct{ content.Source }

func TestNewValidatesOptions(t *testing.T) {
	src := nopSource{}
	tests := []struct {
		name    string
		opts    proxy.Options
		wantErr string
	}{
		{name: "no gate", opts: proxy.Options{Upstreams: []proxy.Upstream{{Registry: "a.test", Source: src}}}, wantErr: "no enforcement gate"},
		{name: "no upstream", opts: proxy.Options{Gate: gatetest.AllowAll{}}, wantErr: "no upstream"},
		{name: "empty registry", opts: proxy.Options{Gate: gatetest.AllowAll{}, Upstreams: []proxy.Upstream{{Source: src}}}, wantErr: "invalid registry name"},
		{name: "registry with a path", opts: proxy.Options{Gate: gatetest.AllowAll{}, Upstreams: []proxy.Upstream{{Registry: "a.test/x", Source: src}}}, wantErr: "invalid registry name"},
		{name: "no source", opts: proxy.Options{Gate: gatetest.AllowAll{}, Upstreams: []proxy.Upstream{{Registry: "a.test"}}}, wantErr: "no source"},
		{name: "twice", opts: proxy.Options{Gate: gatetest.AllowAll{}, Upstreams: []proxy.Upstream{{Registry: "a.test", Source: src}, {Registry: "a.test", Source: src}}}, wantErr: "configured twice"},
		{name: "unknown default", opts: proxy.Options{Gate: gatetest.AllowAll{}, DefaultUpstream: "b.test", Upstreams: []proxy.Upstream{{Registry: "a.test", Source: src}}}, wantErr: "default upstream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := proxy.New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New = %v, %v; want error containing %q", h, err, tt.wantErr)
			}
		})
	}
	if _, err := proxy.New(proxy.Options{Upstreams: []proxy.Upstream{{Registry: "a.test", Source: src}}}); !errors.Is(err, proxy.ErrNoGate) {
		t.Fatalf("New without a gate: %v, want ErrNoGate", err)
	}
	if _, err := proxy.New(proxy.Options{Gate: gatetest.AllowAll{}, Upstreams: []proxy.Upstream{{Registry: "a.test", Source: src}}}); err != nil {
		t.Fatalf("New with a valid configuration: %v", err)
	}
}

func TestFixedAnswers(t *testing.T) {
	u := startUpstream(t, nil)
	p := startProxy(t, gatetest.AllowAll{}, u)
	tests := []struct {
		method, path string
		wantStatus   int
		wantCode     string // OCI error code; empty for success
		wantBody     string
	}{
		{method: "GET", path: "/v2/", wantStatus: 200, wantBody: "{}"},
		{method: "GET", path: "/v2", wantStatus: 200, wantBody: "{}"},
		{method: "HEAD", path: "/v2/", wantStatus: 200},
		{method: "GET", path: "/v2/_catalog", wantStatus: 404, wantCode: "UNSUPPORTED"},
		{method: "GET", path: "/", wantStatus: 404, wantCode: "UNSUPPORTED"},
		{method: "PUT", path: "/v2/team/app/manifests/v1", wantStatus: 405, wantCode: "UNSUPPORTED"},
		{method: "DELETE", path: "/v2/team/app/manifests/v1", wantStatus: 405, wantCode: "UNSUPPORTED"},
		{method: "POST", path: "/v2/team/app/blobs/uploads/", wantStatus: 405, wantCode: "UNSUPPORTED"},
		{method: "PATCH", path: "/v2/team/app/blobs/uploads/abc", wantStatus: 405, wantCode: "UNSUPPORTED"},
		{method: "DELETE", path: "/v2/team/app/blobs/" + strings.Repeat("0", 0) + "sha256:" + strings.Repeat("a", 64), wantStatus: 405, wantCode: "UNSUPPORTED"},
		{method: "PUT", path: "/v2/", wantStatus: 405, wantCode: "UNSUPPORTED"},
		{method: "GET", path: "/v2/team/app/blobs/uploads/abc", wantStatus: 405, wantCode: "UNSUPPORTED"},
		{method: "GET", path: "/v2/Team/app/manifests/v1", wantStatus: 400, wantCode: "NAME_INVALID"},
		{method: "GET", path: "/v2/team/app/manifests/v1?ns=evil.example", wantStatus: 404, wantCode: "NAME_UNKNOWN"},
		{method: "GET", path: "/v2/team/app/blobs/latest", wantStatus: 400, wantCode: "DIGEST_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, body, err := p.do(t, tt.method, tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantCode != "" {
				if tt.method == "HEAD" {
					return
				}
				if code, _ := ociError(t, body); code != tt.wantCode {
					t.Fatalf("code %s, want %s", code, tt.wantCode)
				}
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Fatalf("Content-Type %q", ct)
				}
				return
			}
			if v := resp.Header.Get("Docker-Distribution-API-Version"); v != "registry/2.0" {
				t.Fatalf("Docker-Distribution-API-Version = %q", v)
			}
			if string(body) != tt.wantBody {
				t.Fatalf("body %q, want %q", body, tt.wantBody)
			}
		})
	}
	if n := len(u.Requests()); n != 0 {
		t.Fatalf("the upstream saw %d requests; none of these should reach it: %+v", n, u.Requests())
	}
}

func TestNSUnknownReachesNoUpstream(t *testing.T) {
	u := startUpstream(t, nil)
	p := startProxy(t, gatetest.AllowAll{}, u)
	for _, path := range []string{
		"/v2/team/app/manifests/v1?ns=evil.example",
		"/v2/team/app/blobs/sha256:" + strings.Repeat("a", 64) + "?ns=evil.example",
		"/v2/team/app/tags/list?ns=evil.example",
	} {
		resp, body, _ := p.do(t, "GET", path, nil)
		if resp.StatusCode != 404 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		if code, msg := ociError(t, body); code != "NAME_UNKNOWN" || !strings.Contains(msg, "evil.example") {
			t.Fatalf("GET %s: %s %q", path, code, msg)
		}
	}
	if n := len(u.Requests()); n != 0 {
		t.Fatalf("the upstream saw %d requests", n)
	}
}

func TestAccessLogOneLinePerRequest(t *testing.T) {
	u := startUpstream(t, nil)
	d := u.push(t, "team/app", "v1", randomImage(t))
	p := startProxy(t, gatetest.AllowAll{}, u)
	resp, _, err := p.do(t, "GET", "/v2/team/app/manifests/v1", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET: %v %v", resp.Status, err)
	}
	var lines []string
	for _, l := range strings.Split(p.logs.String(), "\n") {
		if strings.Contains(l, "msg=request ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d access lines, want 1:\n%s", len(lines), p.logs.String())
	}
	for _, want := range []string{"level=INFO", "method=GET", "path=/v2/team/app/manifests/v1", "upstream=" + testRegistry,
		"repo=team/app", "reference=v1", "digest=" + d.String(), "status=200", "bytes=", "duration="} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("access line lacks %q: %s", want, lines[0])
		}
	}
}

func TestGateErrorIsUnavailable(t *testing.T) {
	u := startUpstream(t, nil)
	u.push(t, "team/app", "v1", randomImage(t))
	gate := gatetest.Funcs{Manifest: func(context.Context, *admission.ManifestRequest) (admission.Decision, error) {
		return admission.Decision{}, errors.New("lookaside unreachable")
	}}
	p := startProxy(t, gate, u)
	resp, body, _ := p.do(t, "GET", "/v2/team/app/manifests/v1", nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	if code, msg := ociError(t, body); code != "UNAVAILABLE" || strings.Contains(msg, "lookaside") {
		t.Fatalf("%s %q: want UNAVAILABLE without internals", code, msg)
	}
}

func TestNamespaceEchoedForNS(t *testing.T) {
	u := startUpstream(t, nil)
	u.push(t, "team/app", "v1", randomImage(t))
	p := startProxy(t, gatetest.AllowAll{}, u)
	tests := []struct{ path, want string }{
		{path: "/v2/team/app/manifests/v1?ns=" + testRegistry, want: testRegistry},
		{path: "/v2/" + testRegistry + "/team/app/manifests/v1", want: ""},
		{path: "/v2/team/app/manifests/v1", want: ""},
		{path: "/v2/team/app/tags/list?ns=" + testRegistry, want: testRegistry},
	}
	for _, tt := range tests {
		resp, body, _ := p.do(t, "GET", tt.path, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s %s", tt.path, resp.Status, body)
		}
		if got := resp.Header.Get("OCI-Namespace"); got != tt.want {
			t.Errorf("GET %s: OCI-Namespace %q, want %q", tt.path, got, tt.want)
		}
	}
}
