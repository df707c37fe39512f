package integration

// Attacks on pullgate's HTTP handler through the built binary: slow readers (issue 8.6),
// Range answers from a lying upstream or redirect target (issue 15.1), listings served
// with the upstream's Content-Type (issue 8.8), listings of a reject scope (issue 15.4)
// and pushes (issue 8.10).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

// handlerAttackPolicy accepts everything except one repository, rejected outright.
const handlerAttackPolicy = `{
  "default": [{"type": "insecureAcceptAnything"}],
  "transports": {"docker": {"registry.test/rejected": [{"type": "reject"}]}}
}`

// handlerAttackPullgate builds and starts pullgate in front of reg with
// handlerAttackPolicy; extra is appended to its configuration.
func handlerAttackPullgate(t *testing.T, reg *harness.Registry, extra string) *harness.Pullgate {
	t.Helper()
	policy := filepath.Join(t.TempDir(), "policy.json")
	testsupport.WriteFile(t, policy, handlerAttackPolicy)
	cfg := harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams:       []harness.Upstream{harness.UpstreamFor(upstreamName, reg)},
		DefaultUpstream: upstreamName, Policy: policy, Extra: extra,
	})
	return harness.StartPullgate(t, harness.BuildPullgate(t, t.TempDir()), cfg)
}

// blobStreamCounter is an upstream middleware counting the blob GETs in progress (the
// upstream streams a body until pullgate closes the connection) and their peak. A stream
// stops counting at its first failed write, as soon as the upstream sees pullgate close
// it, not when distribution's handler gets round to returning.
type blobStreamCounter struct {
	open, peak, total atomic.Int64
}

// countedWriter calls done once, at the first failed write.
type countedWriter struct {
	http.ResponseWriter
	once sync.Once
	done func()
}

func (w *countedWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	if err != nil {
		w.once.Do(w.done)
	}
	return n, err
}

func (c *blobStreamCounter) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isBlobGET(r) {
			next.ServeHTTP(w, r)
			return
		}
		c.total.Add(1)
		n := c.open.Add(1)
		for {
			p := c.peak.Load()
			if n <= p || c.peak.CompareAndSwap(p, n) {
				break
			}
		}
		cw := &countedWriter{ResponseWriter: w, done: func() { c.open.Add(-1) }}
		defer cw.once.Do(cw.done)
		next.ServeHTTP(cw, r)
	})
}

// pushedLayer pushes a one-layer image to team/app:v1 and returns the layer's digest and
// bytes.
func pushedLayer(t *testing.T, reg *harness.Registry, repo string, size int64) (v1.Hash, []byte) {
	t.Helper()
	img := harness.OCIImage(t, 1, size, harness.LinuxAMD64)
	reg.Push(t, repo+":v1", img)
	return testsupport.FirstLayer(t, img)
}

// admit fetches repo:v1's manifest through pullgate, so that its blobs are admitted.
func admit(t *testing.T, pg *harness.Pullgate, repo string) {
	t.Helper()
	resp, body := httpGet(t, "http://"+pg.Host+"/v2/"+repo+"/manifests/v1",
		http.Header{"Accept": {"application/vnd.oci.image.manifest.v1+json"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("manifest through pullgate: %s %s", resp.Status, body)
	}
}

// TestAttackSlowReaders: many clients ask for an accepted multi-MiB layer and never read.
// Each must be ended by the write-stall deadline, at most limits.blobStreams upstream
// streams may be open at once, and pullgate's peak memory must stay bounded.
func TestAttackSlowReaders(t *testing.T) {
	const (
		clients    = 200
		streams    = 16
		layerBytes = 16 << 20
		// memoryBound is the growth of pullgate's peak RSS the attack may cause: streams
		// relay buffers (512 KiB each) plus goroutines and connection buffers, with room
		// for the garbage collector's slack. Without the bounds 200 streams pin 100 MiB
		// of relay buffers alone.
		memoryBound = 48 << 20
	)
	var counter blobStreamCounter
	reg := harness.StartRegistry(t, harness.WithMiddleware(counter.middleware))
	ld, _ := pushedLayer(t, reg, "team/app", layerBytes)
	pg := handlerAttackPullgate(t, reg, fmt.Sprintf("clientTimeouts:\n  writeStall: 2s\nlimits:\n  blobStreams: %d\n", streams))
	admit(t, pg, "team/app")
	baseline := pg.VmHWM(t)

	request := "GET /v2/team/app/blobs/" + ld.String() + " HTTP/1.1\r\nHost: " + pg.Host + "\r\n\r\n"
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		// A tiny receive window: the kernel must not absorb the layer for the client.
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	conns := make([]net.Conn, 0, clients)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range clients {
		c, err := dialer.Dial("tcp", pg.Host)
		if err != nil {
			t.Fatalf("dial pullgate: %v", err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, request); err != nil {
			t.Fatal(err)
		}
	}

	// Every request must end (aborted by the stall deadline, or refused for want of a
	// stream) and every upstream stream be closed; the wait is a bound, not the check.
	blobLines := func() []map[string]any {
		var out []map[string]any
		for _, e := range pg.LogEntries("request") {
			if p, _ := e["path"].(string); strings.Contains(p, "/blobs/") {
				out = append(out, e)
			}
		}
		return out
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) && (len(blobLines()) < clients || counter.open.Load() != 0) {
		time.Sleep(100 * time.Millisecond)
	}
	lines := blobLines()
	hwm := pg.VmHWM(t)
	t.Logf("requests ended: %d of %d; upstream blob streams: open %d, peak %d, total %d; VmHWM %d MiB -> %d MiB (+%d MiB)",
		len(lines), clients, counter.open.Load(), counter.peak.Load(), counter.total.Load(), baseline>>20, hwm>>20, (hwm-baseline)>>20)
	statuses := map[float64]int{}
	for _, e := range lines {
		s, _ := e["status"].(float64)
		statuses[s]++
	}
	t.Logf("statuses: %v", statuses)
	if len(lines) < clients {
		t.Errorf("only %d of %d requests of clients that never read were ended", len(lines), clients)
	}
	if n := counter.open.Load(); n != 0 {
		t.Errorf("%d upstream blob streams are still open for clients that never read", n)
	}
	// pullgate frees a stream once it closed the upstream body; net/http closes that
	// connection from its read loop, so the upstream may still count a closing stream
	// when the next one starts: a few over the bound, never the 200 of the attack.
	if p := counter.peak.Load(); p > streams+streams/4 {
		t.Errorf("%d upstream blob streams were open at once; limits.blobStreams is %d", p, streams)
	}
	if grew := hwm - baseline; grew > memoryBound {
		t.Errorf("pullgate's peak RSS grew by %d MiB under the attack; the bound is %d MiB", grew>>20, memoryBound>>20)
	}
	// The streams are free again: an honest client gets the layer.
	resp, body := httpGet(t, "http://"+pg.Host+"/v2/team/app/blobs/"+ld.String(), nil)
	if resp.StatusCode != http.StatusOK || len(body) != layerBytes && int64(len(body)) < layerBytes {
		t.Fatalf("after the attack: %s, %d bytes", resp.Status, len(body))
	}
}

// rangeClient asks for bytes [start, end] of a blob through pullgate; readErr is the
// error reading the body, nil for one read to its end.
func rangeClient(t *testing.T, url, rangeHeader string) (status int, body []byte, contentRange string, readErr error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Range", rangeHeader)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	body, readErr = io.ReadAll(resp.Body)
	return resp.StatusCode, body, resp.Header.Get("Content-Range"), readErr
}

// TestAttackRangeFromLyingUpstream: a Range request on an admitted blob is never
// answered with a clean 206 of bytes that were not verified, whether the upstream or a
// storage server it redirects to lies, and wherever the wrong bytes are.
func TestAttackRangeFromLyingUpstream(t *testing.T) {
	const size = 256 << 10
	const rangeHeader = "bytes=1000-1999"
	flip := func(b []byte, at int) []byte {
		b = bytes.Clone(b)
		b[at] ^= 0xff
		return b
	}
	// lie answers a blob GET with content changed: a Range asked for is answered 206
	// with flipped bytes; a whole GET with one byte flipped at wholeAt (-1: honest).
	lie := func(content []byte, wholeAt int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if rg := r.Header.Get("Range"); rg != "" {
				part := bytes.Repeat([]byte{'X'}, 1000)
				w.Header().Set("Content-Range", "bytes 1000-1999/"+strconv.Itoa(len(content)))
				w.Header().Set("Content-Length", "1000")
				w.WriteHeader(http.StatusPartialContent)
				_, _ = w.Write(part)
				return
			}
			body := content
			if wholeAt >= 0 {
				body = flip(content, wholeAt)
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(body)
		}
	}
	tests := []struct {
		name     string
		redirect bool
		wholeAt  int // -1: the whole blob is honest
	}{
		{name: "upstream answers the range with wrong bytes", wholeAt: -1},
		{name: "upstream wrong before the range", wholeAt: 10},
		{name: "upstream wrong inside the range", wholeAt: 1500},
		{name: "upstream wrong after the range", wholeAt: size - 100},
		{name: "redirect target answers the range with wrong bytes", redirect: true, wholeAt: -1},
		{name: "redirect target wrong after the range", redirect: true, wholeAt: size - 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var content []byte
			var sawRange atomic.Int64
			var storage *httptest.Server
			mw := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if !isBlobGET(r) || content == nil {
						next.ServeHTTP(w, r)
						return
					}
					if r.Header.Get("Range") != "" {
						sawRange.Add(1)
					}
					if tt.redirect {
						http.Redirect(w, r, storage.URL+"/blob", http.StatusTemporaryRedirect)
						return
					}
					lie(content, tt.wholeAt)(w, r)
				})
			}
			reg := harness.StartRegistry(t, harness.WithMiddleware(mw))
			ld, c := pushedLayer(t, reg, "team/app", size)
			storage = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Range") != "" {
					sawRange.Add(1)
				}
				lie(c, tt.wholeAt)(w, r)
			}))
			t.Cleanup(storage.Close)
			pg := handlerAttackPullgate(t, reg, "")
			admit(t, pg, "team/app")
			content = c

			status, body, cr, readErr := rangeClient(t, "http://"+pg.Host+"/v2/team/app/blobs/"+ld.String(), rangeHeader)
			want := c[1000:2000]
			t.Logf("status %d, %d bytes, read error %v, Content-Range %q, Range seen upstream %d times", status, len(body), readErr, cr, sawRange.Load())
			clean := status == http.StatusPartialContent && readErr == nil
			if clean && !bytes.Equal(body, want) {
				t.Fatalf("a client got a clean 206 of wrong bytes (%q...)", body[:min(len(body), 16)])
			}
			if tt.wholeAt >= 0 && clean {
				t.Fatalf("a client got a clean 206 of a blob whose bytes do not match its digest")
			}
			if tt.wholeAt < 0 && (!clean || cr != "bytes 1000-1999/"+strconv.Itoa(len(c))) {
				t.Fatalf("an honest blob's range: status %d, read error %v, Content-Range %q", status, readErr, cr)
			}
		})
	}
}

// TestAttackReferrersContentType: an upstream answering referrers with text/html cannot
// make pullgate serve HTML from its origin: the answer is the OCI index type (re-encoded
// from what was parsed) or an error, with nosniff.
func TestAttackReferrersContentType(t *testing.T) {
	const script = "<script>alert(document.domain)</script>"
	bodies := map[string]string{
		"html in a JSON index": `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"x":"` + script + `"}`,
		"plain html":           "<html><body>" + script + "</body></html>",
	}
	for name, payload := range bodies {
		t.Run(name, func(t *testing.T) {
			reg := harness.StartRegistry(t, harness.WithMiddleware(func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if !strings.Contains(r.URL.Path, "/referrers/") {
						next.ServeHTTP(w, r)
						return
					}
					w.Header().Set("Content-Type", "text/html; charset=utf-8")
					_, _ = io.WriteString(w, payload)
				})
			}))
			ld, _ := pushedLayer(t, reg, "team/app", 1024)
			pg := handlerAttackPullgate(t, reg, "")
			resp, body := httpGet(t, "http://"+pg.Host+"/v2/team/app/referrers/"+ld.String(), nil)
			ct := resp.Header.Get("Content-Type")
			t.Logf("%s, Content-Type %q, nosniff %q, body %.120s", resp.Status, ct, resp.Header.Get("X-Content-Type-Options"), body)
			if strings.Contains(string(body), "<script") {
				t.Errorf("the upstream's script reached the client")
			}
			if strings.Contains(ct, "html") {
				t.Errorf("served as %q", ct)
			}
			if resp.StatusCode == http.StatusOK && ct != "application/vnd.oci.image.index.v1+json" {
				t.Errorf("a referrers answer served as %q", ct)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("no X-Content-Type-Options: nosniff")
			}
		})
	}
}

// TestAttackListingsUnderRejectScope: tags and referrers of a repository whose policy
// scope is reject are refused before the upstream is asked.
func TestAttackListingsUnderRejectScope(t *testing.T) {
	reg := harness.StartRegistry(t)
	ld, _ := pushedLayer(t, reg, "rejected", 1024)
	pushedLayer(t, reg, "team/app", 1024)
	pg := handlerAttackPullgate(t, reg, "")
	reg.ResetRequests()
	for _, path := range []string{"/v2/rejected/tags/list", "/v2/rejected/referrers/" + ld.String()} {
		resp, body := httpGet(t, "http://"+pg.Host+path, nil)
		t.Logf("%s: %s %s", path, resp.Status, body)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"DENIED"`) ||
			!strings.Contains(string(body), `registry.test/rejected`) {
			t.Errorf("%s under a reject scope: %s %s", path, resp.Status, body)
		}
	}
	if n := len(reg.Requests()); n != 0 {
		t.Errorf("refused listings reached the upstream %d times", n)
	}
	resp, body := httpGet(t, "http://"+pg.Host+"/v2/team/app/tags/list", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"v1"`) {
		t.Errorf("tags of an accepted repository: %s %s", resp.Status, body)
	}
}

// TestAttackPushIsUnsupported: every write to the API is the read-only UNSUPPORTED
// answer, and crane pushing through pullgate fails.
func TestAttackPushIsUnsupported(t *testing.T) {
	reg := harness.StartRegistry(t)
	ld, _ := pushedLayer(t, reg, "team/app", 1024)
	pg := handlerAttackPullgate(t, reg, "")
	reg.ResetRequests()
	base := "http://" + pg.Host
	for _, tt := range []struct{ method, path string }{
		{"POST", "/v2/team/app/blobs/uploads/"},
		{"POST", "/v2/team/app/blobs/uploads/?mount=" + ld.String() + "&from=team/other"},
		{"PATCH", "/v2/team/app/blobs/uploads/some-session"},
		{"PUT", "/v2/team/app/blobs/uploads/some-session?digest=" + ld.String()},
		{"PUT", "/v2/team/app/blobs/" + ld.String()},
		{"DELETE", "/v2/team/app/blobs/" + ld.String()},
		{"PUT", "/v2/team/app/manifests/v2"},
		{"DELETE", "/v2/team/app/manifests/v1"},
		{"POST", "/v2/"},
		{"PUT", "/v2/team/app/unknown/path"},
	} {
		req, _ := http.NewRequest(tt.method, base+tt.path, strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct {
			Errors []struct{ Code, Message string } `json:"errors"`
		}
		_ = json.Unmarshal(body, &e)
		if resp.StatusCode != http.StatusMethodNotAllowed || len(e.Errors) == 0 || e.Errors[0].Code != "UNSUPPORTED" ||
			!strings.Contains(e.Errors[0].Message, "read-only") {
			t.Errorf("%s %s: %s %s", tt.method, tt.path, resp.Status, body)
		}
	}

	// crane push of a new image: its first request after the manifest check is a HEAD of
	// a blob no accepted manifest references, which stays 403 (DESIGN.md "Answers").
	img := harness.OCIImage(t, 1, 1024, harness.LinuxAMD64)
	tar := filepath.Join(t.TempDir(), "img.tar")
	if err := tarball.WriteToFile(tar, harness.ParseRef(t, "example.test/img:v1"), img); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	env := []string{"HOME=" + home, "DOCKER_CONFIG=" + home}
	_, errOut, err := harness.Run(t, harness.ToolTimeout, env, "crane", "push", tar, pg.Host+"/team/new:v1", "--insecure")
	t.Logf("crane push of a new image: %v\n%s", err, errOut)
	if err == nil {
		t.Fatal("crane pushed through pullgate")
	}
	// crane copy within an accepted repository: the blobs exist, so the first write is
	// the manifest PUT, and crane shows pullgate's read-only message.
	_, errOut, err = harness.Run(t, harness.ToolTimeout, env, "crane", "copy", pg.Host+"/team/app:v1", pg.Host+"/team/app:copy", "--insecure")
	t.Logf("crane copy of an accepted image: %v\n%s", err, errOut)
	if err == nil || !strings.Contains(errOut, "UNSUPPORTED") || !strings.Contains(errOut, "read-only") {
		t.Fatalf("crane copy through pullgate: %v, output %q", err, errOut)
	}
	for _, m := range []string{"PUT", "POST", "PATCH", "DELETE"} {
		if n := reg.CountRequests(m, "/"); n != 0 {
			t.Fatalf("%d %s requests of the pushes reached the upstream", n, m)
		}
	}
}
