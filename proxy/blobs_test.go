package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/gatetest"
)

func TestBlobGetHeadRange(t *testing.T) {
	u := startUpstream(t, nil)
	img := randomImage(t)
	u.push(t, "team/app", "v1", img)
	ld, content := testsupport.FirstLayer(t, img)
	p := startProxy(t, gatetest.AllowAll{}, u)
	path := "/v2/team/app/blobs/" + ld.String()

	resp, body, err := p.do(t, "GET", path, nil)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, content) {
		t.Fatalf("GET: %s %v, %d bytes", resp.Status, err, len(body))
	}
	if resp.Header.Get("Docker-Content-Digest") != ld.String() || resp.Header.Get("Content-Length") != strconv.Itoa(len(content)) {
		t.Fatalf("GET headers: %v", resp.Header)
	}
	head, hbody, _ := p.do(t, "HEAD", path, nil)
	if head.StatusCode != 200 || len(hbody) != 0 || head.Header.Get("Content-Length") != strconv.Itoa(len(content)) ||
		head.Header.Get("Docker-Content-Digest") != ld.String() {
		t.Fatalf("HEAD: %s %v", head.Status, head.Header)
	}
	part, pbody, err := p.do(t, "GET", path, http.Header{"Range": {"bytes=10-19"}})
	if err != nil || part.StatusCode != 206 || !bytes.Equal(pbody, content[10:20]) {
		t.Fatalf("Range: %s %v %q", part.Status, err, pbody)
	}
	if cr := part.Header.Get("Content-Range"); cr != "bytes 10-19/"+strconv.Itoa(len(content)) {
		t.Fatalf("Content-Range %q", cr)
	}
	missing, mbody, _ := p.do(t, "GET", "/v2/team/app/blobs/"+digest.FromString("absent").String(), nil)
	if missing.StatusCode != 404 {
		t.Fatalf("missing blob: %s", missing.Status)
	}
	if code, _ := ociError(t, mbody); code != "BLOB_UNKNOWN" {
		t.Fatalf("missing blob code %s", code)
	}
}

func TestRangeAnsweredWholeIsVerified(t *testing.T) {
	// An upstream that ignores Range answers 200 with the whole blob. pullgate never
	// sends Range upstream: it verifies the whole blob and cuts the range from it.
	u := startUpstream(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Del("Range")
			next.ServeHTTP(w, r)
		})
	})
	img := randomImage(t)
	u.push(t, "team/app", "v1", img)
	ld, content := testsupport.FirstLayer(t, img)
	p := startProxy(t, gatetest.AllowAll{}, u)
	u.Reset()
	resp, body, err := p.do(t, "GET", "/v2/team/app/blobs/"+ld.String(), http.Header{"Range": {"bytes=0-9"}})
	if err != nil || resp.StatusCode != 206 || !bytes.Equal(body, content[:10]) {
		t.Fatalf("%s %v %d bytes", resp.Status, err, len(body))
	}
	for _, r := range u.Requests() {
		if r.Header.Get("Range") != "" {
			t.Fatalf("Range %q sent upstream", r.Header.Get("Range"))
		}
	}
}

func TestDeniedBlobNeverReachesUpstream(t *testing.T) {
	u := startUpstream(t, nil)
	img := randomImage(t)
	u.push(t, "team/app", "v1", img)
	ld, _ := testsupport.FirstLayer(t, img)
	gate := gatetest.Funcs{Blob: func(_ context.Context, b *admission.BlobRequest) (admission.Decision, error) {
		return admission.Decision{Reason: "blob " + b.Digest.String() + " is not referenced by an accepted manifest"}, nil
	}}
	p := startProxy(t, gate, u)
	u.Reset()
	for _, method := range []string{"GET", "HEAD"} {
		resp, body, _ := p.do(t, method, "/v2/team/app/blobs/"+ld.String(), nil)
		if resp.StatusCode != 403 {
			t.Fatalf("%s: %s", method, resp.Status)
		}
		if method == "GET" {
			if code, _ := ociError(t, body); code != "DENIED" {
				t.Fatalf("code %s", code)
			}
		}
	}
	if n := len(u.Requests()); n != 0 {
		t.Fatalf("a denied blob reached the upstream %d times", n)
	}
}

// tamperBlobs rewrites blob GET answers.
func tamperBlobs(change func(w http.ResponseWriter, header http.Header, body []byte)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != "GET" || !strings.Contains(r.URL.Path, "/blobs/sha256:") {
				next.ServeHTTP(w, r)
				return
			}
			rec := testsupport.NewResponseBuffer()
			next.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			change(w, w.Header(), rec.Body.Bytes())
		})
	}
}

func TestLyingBlobUpstreamIsAborted(t *testing.T) {
	tests := []struct {
		name       string
		change     func(w http.ResponseWriter, h http.Header, body []byte)
		wantStatus int // 0: headers go out, then the body is cut
	}{
		{name: "corrupted byte", change: func(w http.ResponseWriter, h http.Header, b []byte) {
			b = bytes.Clone(b)
			b[len(b)/2] ^= 0xff
			w.WriteHeader(200)
			w.Write(b)
		}},
		{name: "short body", change: func(w http.ResponseWriter, h http.Header, b []byte) {
			w.WriteHeader(200)
			w.Write(b[:len(b)-1]) // Content-Length still says the whole size
		}},
		{name: "other blob announced", wantStatus: http.StatusBadGateway, change: func(w http.ResponseWriter, h http.Header, b []byte) {
			h.Set("Docker-Content-Digest", digest.FromString("other").String())
			w.WriteHeader(200)
			w.Write(b)
		}},
		{name: "no length, corrupted", change: func(w http.ResponseWriter, h http.Header, b []byte) {
			b = bytes.Clone(b)
			b[0] ^= 0xff
			h.Del("Content-Length")
			w.WriteHeader(200)
			w.(http.Flusher).Flush() // chunked
			w.Write(b)
		}},
		{name: "server error", wantStatus: http.StatusBadGateway, change: func(w http.ResponseWriter, h http.Header, b []byte) {
			h.Set("Content-Length", "0")
			w.WriteHeader(500)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := startUpstream(t, tamperBlobs(tt.change))
			img := randomImage(t)
			u.push(t, "team/app", "v1", img)
			ld, content := testsupport.FirstLayer(t, img)
			p := startProxy(t, gatetest.AllowAll{}, u)
			if tt.wantStatus == 0 {
				// Either no answer at all or a cut body: never a clean wrong body.
				resp, err := p.Client().Get(p.URL + "/v2/team/app/blobs/" + ld.String())
				if err == nil {
					body, readErr := io.ReadAll(resp.Body)
					resp.Body.Close()
					if readErr == nil {
						t.Fatalf("the client read a clean end of a wrong body (%s, %d bytes of %d)", resp.Status, len(body), len(content))
					}
				}
				if !strings.Contains(p.logs.String(), "failed to verify blob from upstream") {
					t.Fatalf("no verification error logged:\n%s", p.logs.String())
				}
				if !strings.Contains(p.logs.String(), "aborted=true") {
					t.Fatalf("access line does not say aborted:\n%s", p.logs.String())
				}
				return
			}
			resp, body, _ := p.do(t, "GET", "/v2/team/app/blobs/"+ld.String(), nil)
			if tt.wantStatus != 0 {
				if resp.StatusCode != tt.wantStatus {
					t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
				}
				ociError(t, body)
				return
			}
		})
	}
}

func TestTooManyRequestsRelayed(t *testing.T) {
	u := startUpstream(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "GET" && strings.Contains(r.URL.Path, "/manifests/") {
				w.Header().Set("Retry-After", "17")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(429)
				io.WriteString(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"pull rate limit"}]}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	p := startProxy(t, gatetest.AllowAll{}, u)
	resp, body, _ := p.do(t, "GET", "/v2/team/app/manifests/v1", nil)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "17" {
		t.Fatalf("%s Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
	if code, msg := ociError(t, body); code != "TOOMANYREQUESTS" || !strings.Contains(msg, "pull rate limit") {
		t.Fatalf("%s %q", code, msg)
	}
	if n := u.Count("GET", "/manifests/"); n != 1 {
		t.Fatalf("a 429 was retried: %d upstream GETs", n)
	}
}

func TestCorruptLargeBlobCutsBody(t *testing.T) {
	u := startUpstream(t, tamperBlobs(func(w http.ResponseWriter, h http.Header, b []byte) {
		b = bytes.Clone(b)
		b[len(b)-1] ^= 0xff // only the very last byte is wrong
		w.WriteHeader(200)
		w.Write(b)
	}))
	img, err := random.Image(1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	u.push(t, "team/app", "v1", img)
	ld, content := testsupport.FirstLayer(t, img)
	p := startProxy(t, gatetest.AllowAll{}, u)
	resp, err := p.Client().Get(p.URL + "/v2/team/app/blobs/" + ld.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || readErr == nil || len(body) >= len(content) {
		t.Fatalf("%s, read %d of %d bytes, error %v: want a cut body", resp.Status, len(body), len(content), readErr)
	}
}

func TestChunkedBlobStreamsVerified(t *testing.T) {
	u := startUpstream(t, tamperBlobs(func(w http.ResponseWriter, h http.Header, b []byte) {
		h.Del("Content-Length")
		w.WriteHeader(200)
		w.(http.Flusher).Flush() // chunked, as object storage sometimes answers
		w.Write(b)
	}))
	img := randomImage(t)
	u.push(t, "team/app", "v1", img)
	ld, content := testsupport.FirstLayer(t, img)
	p := startProxy(t, gatetest.AllowAll{}, u)
	resp, body, err := p.do(t, "GET", "/v2/team/app/blobs/"+ld.String(), nil)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, content) || resp.ContentLength != -1 {
		t.Fatalf("%s %v, %d bytes, Content-Length %d", resp.Status, err, len(body), resp.ContentLength)
	}
}

// TestGateErrorAnswer: a gate that could not decide is answered 503 UNAVAILABLE, even when
// the cause it carries is an upstream's OCI error about another request (a 403 on a .sig
// tag must not reach the client as DENIED); a *proxy.Error the gate returns itself is its
// chosen answer and is relayed.
func TestGateErrorAnswer(t *testing.T) {
	u := startUpstream(t, nil)
	u.push(t, "team/app", "v1", randomImage(t))
	upstreamDenied := &proxy.Error{Code: errcode.ErrorCodeDenied, Message: "upstream: access denied"}
	tests := []struct {
		name     string
		err      error
		status   int
		wantCode string
	}{
		{"upstream error deep in the cause", fmt.Errorf("reading sha256-x.sig: %w", upstreamDenied), 503, "UNAVAILABLE"},
		{"plain error", errors.New("lookaside unreachable"), 503, "UNAVAILABLE"},
		{"the gate's own answer", &proxy.Error{Code: errcode.ErrorCodeTooManyRequests, Message: "slow down"}, 429, "TOOMANYREQUESTS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := gatetest.Funcs{Manifest: func(context.Context, *admission.ManifestRequest) (admission.Decision, error) {
				return admission.Decision{}, tt.err
			}}
			p := startProxy(t, gate, u)
			resp, body, _ := p.do(t, "GET", "/v2/team/app/manifests/v1", nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %s, want %d", resp.Status, tt.status)
			}
			if code, _ := ociError(t, body); code != tt.wantCode {
				t.Fatalf("code %s, want %s", code, tt.wantCode)
			}
		})
	}
}
