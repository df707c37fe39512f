package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/content"
	"github.com/pullgate/pullgate/proxy/gatetest"
)

// heldSource is an in-memory content.VerifiedBlobSource: it holds blobs by digest and
// counts every call that would reach an upstream.
type heldSource struct {
	blobs    map[digest.Digest][]byte
	upstream atomic.Int32 // calls of the content.Source methods
	opened   atomic.Int32
	closed   atomic.Int32
}

var errNoUpstream = errors.New("heldSource has no upstream")

func (s *heldSource) Manifest(context.Context, string, string, []string) (*content.Manifest, error) {
	s.upstream.Add(1)
	return nil, errNoUpstream
}

func (s *heldSource) HeadManifest(context.Context, string, string, []string) (content.Descriptor, error) {
	s.upstream.Add(1)
	return content.Descriptor{}, errNoUpstream
}

func (s *heldSource) Blob(context.Context, string, digest.Digest) (*content.Blob, error) {
	s.upstream.Add(1)
	return nil, errNoUpstream
}

func (s *heldSource) StatBlob(context.Context, string, digest.Digest) (content.Descriptor, error) {
	s.upstream.Add(1)
	return content.Descriptor{}, errNoUpstream
}

func (s *heldSource) Tags(context.Context, string, url.Values) (*content.Listing, error) {
	s.upstream.Add(1)
	return nil, errNoUpstream
}

func (s *heldSource) Referrers(context.Context, string, digest.Digest, url.Values) (*content.Listing, error) {
	s.upstream.Add(1)
	return nil, errNoUpstream
}

func (s *heldSource) OpenVerified(_ context.Context, _ string, d digest.Digest) (*content.VerifiedBlob, error) {
	b, ok := s.blobs[d]
	if !ok {
		return nil, content.ErrNotHeld
	}
	s.opened.Add(1)
	return &content.VerifiedBlob{Body: &heldBody{Reader: bytes.NewReader(b), closed: &s.closed},
		Size: int64(len(b)), ContentType: "application/vnd.oci.image.layer.v1.tar+gzip"}, nil
}

// fileSource holds one blob in a file: what a content store on disk hands the handler
// (net/http may send it with sendfile).
type fileSource struct {
	heldSource
	path string
	d    digest.Digest
}

func (s *fileSource) OpenVerified(_ context.Context, _ string, d digest.Digest) (*content.VerifiedBlob, error) {
	if d != s.d {
		return nil, content.ErrNotHeld
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &content.VerifiedBlob{Body: f, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// TestHeldFileServed: a held file larger than several write chunks is sent whole and
// by range, with its modification time, and no upstream call is made.
func TestHeldFileServed(t *testing.T) {
	data := bytes.Repeat([]byte("held file "), 50000)
	d := digest.FromBytes(data)
	path := filepath.Join(t.TempDir(), "blob")
	testsupport.WriteFile(t, path, data)
	src := &fileSource{path: path, d: d}
	h, err := proxy.New(proxy.Options{Upstreams: []proxy.Upstream{{Registry: testRegistry, Source: src}},
		DefaultUpstream: testRegistry, Gate: gatetest.AllowAll{}})
	if err != nil {
		t.Fatal(err)
	}
	p := &testProxy{Server: httptest.NewServer(h)}
	t.Cleanup(p.Close)
	resp, body, readErr := p.do(t, "GET", "/v2/team/app/blobs/"+d.String(), nil)
	if readErr != nil || resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("whole: %d, %d bytes, %v", resp.StatusCode, len(body), readErr)
	}
	if resp.Header.Get("Last-Modified") == "" || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("headers %v", resp.Header)
	}
	resp, body, readErr = p.do(t, "GET", "/v2/team/app/blobs/"+d.String(), http.Header{"Range": {"bytes=200000-"}})
	if readErr != nil || resp.StatusCode != 206 || !bytes.Equal(body, data[200000:]) {
		t.Fatalf("range: %d, %d bytes, %v", resp.StatusCode, len(body), readErr)
	}
	if n := src.upstream.Load(); n != 0 {
		t.Fatalf("%d calls reached the upstream side of the Source", n)
	}
}

type heldBody struct {
	*bytes.Reader
	closed *atomic.Int32
}

func (b *heldBody) Close() error { b.closed.Add(1); return nil }

// TestHeldBlobServedWithoutUpstream: a blob a VerifiedBlobSource holds is answered from
// it, whole, by range and to a HEAD, after the gate admitted it, and no upstream call is
// made; a blob it does not hold goes to Blob; a denied blob is never opened.
func TestHeldBlobServedWithoutUpstream(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 20000) // several write chunks
	d := digest.FromBytes(data)
	size := strconv.Itoa(len(data))
	src := &heldSource{blobs: map[digest.Digest][]byte{d: data}}
	gate := &gatetest.Recorder{}
	h, err := proxy.New(proxy.Options{
		Upstreams:       []proxy.Upstream{{Registry: testRegistry, Source: src}},
		DefaultUpstream: testRegistry,
		Gate:            gate,
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &testProxy{Server: httptest.NewServer(h)}
	t.Cleanup(p.Close)
	path := "/v2/team/app/blobs/" + d.String()

	for _, tc := range []struct {
		name, method  string
		header        http.Header
		status        int
		body          []byte
		length, crang string
	}{
		{"whole", "GET", nil, 200, data, size, ""},
		{"head", "HEAD", nil, 200, nil, size, ""},
		{"range", "GET", http.Header{"Range": {"bytes=10-19"}}, 206, data[10:20], "10", "bytes 10-19/" + size},
		{"suffix range", "GET", http.Header{"Range": {"Bytes = -5"}}, 206, data[len(data)-5:], "5", "bytes " + strconv.Itoa(len(data)-5) + "-" + strconv.Itoa(len(data)-1) + "/" + size},
		{"several ranges ignored", "GET", http.Header{"Range": {"bytes=0-1,5-6"}}, 200, data, size, ""},
		{"unsatisfiable", "GET", http.Header{"Range": {"bytes=" + size + "-"}}, 416, nil, "", "bytes */" + size},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, readErr := p.do(t, tc.method, path, tc.header)
			if readErr != nil || resp.StatusCode != tc.status {
				t.Fatalf("status %d (read %v), want %d: %s", resp.StatusCode, readErr, tc.status, body)
			}
			if tc.status == 416 {
				if code, _ := ociError(t, body); code != "RANGE_INVALID" {
					t.Fatalf("code %s, want RANGE_INVALID", code)
				}
			} else if !bytes.Equal(body, tc.body) {
				t.Fatalf("body: %d bytes, want %d", len(body), len(tc.body))
			}
			if tc.length != "" && resp.Header.Get("Content-Length") != tc.length {
				t.Errorf("Content-Length %q, want %q", resp.Header.Get("Content-Length"), tc.length)
			}
			if got := resp.Header.Get("Content-Range"); got != tc.crang {
				t.Errorf("Content-Range %q, want %q", got, tc.crang)
			}
			if tc.status != 416 {
				if got := resp.Header.Get("Docker-Content-Digest"); got != d.String() {
					t.Errorf("Docker-Content-Digest %q", got)
				}
				if got := resp.Header.Get("Content-Type"); got != "application/vnd.oci.image.layer.v1.tar+gzip" {
					t.Errorf("Content-Type %q", got)
				}
			}
		})
	}
	if n := src.upstream.Load(); n != 0 {
		t.Fatalf("%d calls reached the upstream side of the Source", n)
	}
	if o, c := src.opened.Load(), src.closed.Load(); o != 6 || c != o {
		t.Fatalf("opened %d, closed %d; want 6 each", o, c)
	}
	if n := len(gate.Blobs()); n != 6 {
		t.Fatalf("the gate saw %d blob requests, want 6", n)
	}

	// Not held: streamed through Blob (which this Source fails).
	other := digest.FromString("not held")
	if resp, _, _ := p.do(t, "GET", "/v2/team/app/blobs/"+other.String(), nil); resp.StatusCode == 200 {
		t.Fatal("a blob not held was served")
	}
	if n := src.upstream.Load(); n != 1 {
		t.Fatalf("a blob not held made %d Blob calls, want 1", n)
	}

	// Denied: never opened.
	gate.Next = gatetest.Funcs{Blob: func(context.Context, *admission.BlobRequest) (admission.Decision, error) {
		return admission.Decision{Reason: "no"}, nil
	}}
	opened := src.opened.Load()
	if resp, _, _ := p.do(t, "GET", path, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("denied blob answered %d", resp.StatusCode)
	}
	if src.opened.Load() != opened {
		t.Fatal("a denied blob was opened")
	}
}
