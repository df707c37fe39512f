package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// hangBound bounds every wait of the listener tests. It only tells a hang from an answer
// (readHeaderTimeout, 10 s, is the longest pullgate lets a held body keep a connection);
// it is no performance assertion.
const hangBound = 20 * time.Second

// startListenerServer serves handler through newHTTPServer on a loopback listener, as
// both of pullgate's listeners are served. stop shuts it down gracefully and returns
// serveUntilDone's result; the cleanup stops it too.
func startListenerServer(t *testing.T, handler http.Handler) (addr string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.DiscardHandler)
	ln := listenLoopback(t)
	done := make(chan error, 1)
	go func() { done <- serveUntilDone(ctx, newHTTPServer(ctx, handler, logger), ln, logger, nil, nil) }()
	stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() { stop() })
	return ln.Addr().String(), stop
}

// dialRaw connects to addr with hangBound as the deadline of everything done on it.
func dialRaw(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(hangBound)); err != nil {
		t.Fatal(err)
	}
	return conn, bufio.NewReader(conn)
}

// refuseUnread answers 401 without reading the body, as the auth wrapper does.
var refuseUnread = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Basic realm="pullgate"`)
	w.WriteHeader(http.StatusUnauthorized)
})

// TestHTTPServerHeldBody is the attack of a request that declares a body (a length, or
// chunked) and never sends it: the answer comes, the connection is closed within
// hangBound, and a graceful shutdown started meanwhile is clean (it waited forever,
// then its whole 30 s, before). A request without a body keeps its connection.
func TestHTTPServerHeldBody(t *testing.T) {
	for _, c := range []struct{ name, header string }{
		{"content-length", "Content-Length: 100\r\n"},
		{"chunked", "Transfer-Encoding: chunked\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			addr, stop := startListenerServer(t, refuseUnread)
			conn, br := dialRaw(t, addr)
			if _, err := io.WriteString(conn, "GET /v2/ HTTP/1.1\r\nHost: x\r\n"+c.header+"\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer to a request whose body never comes: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
				t.Errorf("status %d, Connection %q; want 401 and close", resp.StatusCode, resp.Header.Get("Connection"))
			}
			shut := make(chan error, 1)
			go func() { shut <- stop() }()
			if n, err := io.Copy(io.Discard, br); err != nil || n != 0 {
				t.Fatalf("connection not closed after the answer (read %d bytes, %v)", n, err)
			}
			select {
			case err := <-shut:
				if err != nil {
					t.Fatalf("shutdown with a held body: %v, want a clean one", err)
				}
			case <-time.After(hangBound):
				t.Fatal("shutdown still waits for a connection that holds a body")
			}
		})
	}

	t.Run("no body keeps the connection", func(t *testing.T) {
		t.Parallel()
		addr, _ := startListenerServer(t, refuseUnread)
		conn, br := dialRaw(t, addr)
		for i := range 2 {
			if _, err := io.WriteString(conn, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("request %d on one connection: %v", i+1, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || resp.Close {
				t.Fatalf("request %d: status %d, close %v; want 401 and keep-alive", i+1, resp.StatusCode, resp.Close)
			}
		}
	})

	t.Run("a body that is sent gets its usual answer", func(t *testing.T) {
		t.Parallel()
		addr, _ := startListenerServer(t, refuseUnread)
		conn, br := dialRaw(t, addr)
		if _, err := io.WriteString(conn, "POST /v2/x/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
			t.Errorf("status %d, close %v; want 401 and close", resp.StatusCode, resp.Close)
		}
	})
}

// TestHTTPServerHeaderLimit: a request whose headers exceed maxHeaderBytes is 431 and
// never reaches the handler; headers the size of a large bearer token plus cookies
// (48 KiB) are served.
func TestHTTPServerHeaderLimit(t *testing.T) {
	reached := make(chan string, 4)
	addr, _ := startListenerServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- r.URL.Path
		io.WriteString(w, "ok")
	}))
	send := func(t *testing.T, path string, header string) *http.Response {
		t.Helper()
		conn, br := dialRaw(t, addr)
		// Written while the answer is read: the server stops reading at its limit.
		go io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: x\r\n"+header+"\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: no answer: %v", path, err)
		}
		resp.Body.Close()
		return resp
	}

	big := "X-Pad: " + strings.Repeat("a", 100<<10) + "\r\n"
	if resp := send(t, "/big", big); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("100 KiB of headers: status %d, want 431", resp.StatusCode)
	}
	token := "Authorization: Bearer " + strings.Repeat("t", 40<<10) + "\r\n"
	cookie := "Cookie: session=" + strings.Repeat("c", 8<<10) + "\r\n"
	if resp := send(t, "/token", token+cookie); resp.StatusCode != http.StatusOK {
		t.Errorf("a 40 KiB bearer token and 8 KiB of cookies: status %d, want 200", resp.StatusCode)
	}
	close(reached)
	var paths []string
	for p := range reached {
		paths = append(paths, p)
	}
	if strings.Join(paths, ",") != "/token" {
		t.Errorf("the handler saw %v, want only /token", paths)
	}
}
