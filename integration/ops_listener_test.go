package integration

// The listener limits through the binary, on the proxy and the metrics listener: a
// request that declares a body and never sends it is answered and its connection closed
// (it held the connection, and graceful shutdown, forever), headers beyond 64 KiB are
// 431 (Go's default let each connection hold 1 MiB), and neither cuts a long blob
// stream.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullgate/pullgate/integration/harness"
)

const (
	// listenerHangBound only tells a hang from an answer: pullgate gives a declared body
	// at most 10 s (its header timeout). It is no performance assertion.
	listenerHangBound = 20 * time.Second
	// streamChunks of 64 KiB make the streamed layer; the upstream pauses streamPause
	// between them, so that the stream lasts 11 s, longer than the 10 s a connection is
	// given for its headers (and a declared body): a read deadline put on a request
	// without a body would cut it.
	streamChunks = 12
	streamPause  = time.Second
	// headerTimeout is pullgate's readHeaderTimeout.
	headerTimeout = 10 * time.Second
)

// streamedImage is a signed image whose one layer the upstream can be told to trickle.
type streamedImage struct {
	image, layer v1.Hash
}

// newStreamedImage pushes an image of one streamChunks*64 KiB layer and signs it as
// ops/stream:v1.
func (w *enforceWorld) newStreamedImage(t *testing.T) streamedImage {
	layer := harness.RandomLayer(t, streamChunks*64<<10)
	ld, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	w.reg.Push(t, "src/ops/stream:v1", harness.ImageOf(t, layer))
	w.copySigned(t, w.trusted, fullName("ops/stream")+":v1", "src/ops/stream:v1", "ops/stream:v1")
	return streamedImage{image: w.digest(t, "ops/stream:v1"), layer: ld}
}

// rawConn connects to addr; everything done on it has listenerHangBound as its deadline.
func rawConn(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(listenerHangBound)); err != nil {
		t.Fatal(err)
	}
	return conn, bufio.NewReader(conn)
}

// heldBody sends a GET of path that declares a body (header) and sends none, and
// checks that it is answered with status and Connection: close. The connection is
// left open for closedSoon.
func heldBody(t *testing.T, addr, path, header string, status int) *bufio.Reader {
	t.Helper()
	conn, br := rawConn(t, addr)
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", path, addr, header); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%s %s (%q, no body sent): no answer: %v", addr, path, header, err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("%s %s (%q, no body sent): reading the answer: %v", addr, path, header, err)
	}
	resp.Body.Close()
	if resp.StatusCode != status || !resp.Close {
		t.Errorf("%s %s (%q, no body sent): status %d, Connection %q; want %d and close",
			addr, path, header, resp.StatusCode, resp.Header.Get("Connection"), status)
	}
	return br
}

// closedSoon checks that pullgate closes the connection br reads.
func closedSoon(t *testing.T, what string, br *bufio.Reader) {
	t.Helper()
	if n, err := io.Copy(io.Discard, br); err != nil || n != 0 {
		t.Errorf("%s: connection still open after its answer (read %d bytes, %v)", what, n, err)
	}
}

// rawGET sends a GET of path with header lines and returns the answer.
func rawGET(t *testing.T, addr, path, header string) *http.Response {
	t.Helper()
	conn, br := rawConn(t, addr)
	// Written while the answer is read: pullgate stops reading at its limit.
	go fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", path, addr, header)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%s %s: no answer: %v", addr, path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(strings.NewReader(string(body)))
	return resp
}

// testListenerLimits: with auth and metrics on, a request that declares a body (a
// length, or chunked) and never sends it is answered (401 without login, 200 on
// /healthz) and its connection closed, on both listeners; SIGTERM while such a
// connection is open exits cleanly. 100 KiB of headers are 431 on both listeners; a
// logged-in request with 40 KiB of cookies is served. A blob that takes 11 s to stream
// arrives whole.
func testListenerLimits(t *testing.T, w *enforceWorld, th *harness.Throttle, img streamedImage) {
	const password = "listener pw"
	extra := fmt.Sprintf("auth:\n  htpasswd: %q\nmetrics:\n  listen: 127.0.0.1:0\n", htpasswdFile(t, map[string]string{"alice": password}))
	login := "Authorization: " + basic("alice", password) + "\r\n"

	t.Run("held body", func(t *testing.T) {
		t.Parallel()
		pg := harness.StartPullgate(t, w.bin, opsConfig(t, w, w.policy, extra))
		ops, _ := pg.WaitLog(t, "metrics listening", 0)["addr"].(string)
		held := map[string]*bufio.Reader{
			"proxy, Content-Length":   heldBody(t, pg.Host, "/v2/", "Content-Length: 100\r\n", http.StatusUnauthorized),
			"proxy, chunked":          heldBody(t, pg.Host, "/v2/", "Transfer-Encoding: chunked\r\n", http.StatusUnauthorized),
			"proxy, logged in":        heldBody(t, pg.Host, "/v2/", login+"Content-Length: 100\r\n", http.StatusOK),
			"metrics, Content-Length": heldBody(t, ops, "/healthz", "Content-Length: 100\r\n", http.StatusOK),
			"metrics, chunked":        heldBody(t, ops, "/metrics", "Transfer-Encoding: chunked\r\n", http.StatusOK),
		}
		for what, br := range held {
			closedSoon(t, what, br)
		}

		// Headers: 100 KiB are refused before the credential check; a large cookie fits.
		pad := "X-Pad: " + strings.Repeat("a", 100<<10) + "\r\n"
		for _, addr := range []string{pg.Host, ops} {
			if resp := rawGET(t, addr, "/v2/", pad); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("%s: 100 KiB of headers: status %d, want 431", addr, resp.StatusCode)
			}
		}
		cookie := "Cookie: session=" + strings.Repeat("c", 40<<10) + "\r\n"
		if resp := rawGET(t, pg.Host, "/v2/", login+cookie); resp.StatusCode != http.StatusOK {
			t.Errorf("logged in with 40 KiB of cookies: status %d, want 200", resp.StatusCode)
		}

		// SIGTERM while a body is held: the graceful shutdown ends cleanly (exit 0),
		// it does not wait its 30 s out and fail.
		br := heldBody(t, pg.Host, "/v2/", "Content-Length: 100\r\n", http.StatusUnauthorized)
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			pg.Stop(t)
		}()
		closedSoon(t, "proxy during shutdown", br)
		select {
		case <-stopped:
		case <-time.After(listenerHangBound):
			t.Error("pullgate did not stop while a connection held a body")
			<-stopped
		}
	})

	t.Run("long blob stream", func(t *testing.T) {
		t.Parallel()
		pg := harness.StartPullgate(t, w.bin, opsConfig(t, w, w.policy, extra))
		base := "http://" + pg.Host + "/v2/" + fullName("ops/stream")
		callAuth(t, base+"/manifests/v1", basic("alice", password)).served(t, "the streamed image's manifest", img.image)
		th.Pace(img.layer.String(), streamPause)
		defer th.Clear(img.layer.String())
		start := time.Now()
		a := callAuth(t, base+"/blobs/"+img.layer.String(), basic("alice", password))
		took := time.Since(start)
		sum := sha256.Sum256(a.body)
		if a.status != http.StatusOK || "sha256:"+hex.EncodeToString(sum[:]) != img.layer.String() {
			t.Fatalf("streamed blob: status %d, %d bytes hashing to %x; want 200 and %s", a.status, len(a.body), sum, img.layer)
		}
		// The sum of the upstream's pauses; checked only so that the test keeps meaning
		// what it says.
		if took < headerTimeout {
			t.Fatalf("test set-up: the stream took %s, it must outlast the %s header timeout", took, headerTimeout)
		}
	})
}
