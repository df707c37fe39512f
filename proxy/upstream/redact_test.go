package upstream_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy/upstream"
)

// presignedQuery is what an object store's presigned URL carries: a credential.
const presignedQuery = "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDSECRET%2F20261203&X-Amz-Signature=TOPSECRET"

// resettingAddr is a 127.0.0.1 address that accepts connections and closes them at once.
func resettingAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	return ln.Addr().String()
}

// TestFailedBlobRedirectHidesThePresignedQuery: an upstream redirects blob GET and HEAD
// to a presigned object-store URL whose request fails (refused, reset). The error names
// the storage URL's scheme, host and path, never its query (the signature), and the
// client's log does not hold it either.
func TestFailedBlobRedirectHidesThePresignedQuery(t *testing.T) {
	dgst := digest.FromString("a layer in object storage")
	for _, target := range []struct{ name, addr string }{
		{"refused", testsupport.ClosedAddr(t)},
		{"reset", resettingAddr(t)},
	} {
		storage := "http://" + target.addr + "/bucket/blobs/" + dgst.Encoded()
		reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/blobs/"+dgst.String()) {
				http.Redirect(w, r, storage+presignedQuery+"#frag", http.StatusTemporaryRedirect)
				return
			}
			w.WriteHeader(http.StatusOK)
		}))
		t.Cleanup(reg.Close)
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			t.Run(target.name+" "+method, func(t *testing.T) {
				c, logs := newClient(t, reg.URL, nil)
				err := blobOrStat(c, method, "team/app", dgst)
				if err == nil {
					t.Fatal("a blob redirected to a failing store was served")
				}
				msg := err.Error()
				for _, secret := range []string{"TOPSECRET", "AKIDSECRET", "X-Amz", "frag"} {
					if strings.Contains(msg, secret) || strings.Contains(logs.String(), secret) {
						t.Fatalf("%q in the error or the log:\n%s\n%s", secret, msg, logs.String())
					}
				}
				if !strings.Contains(msg, `"`+storage+`"`) {
					t.Fatalf("the error does not name %s: %s", storage, msg)
				}
			})
		}
	}
}

func TestRedactedURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@bucket.example/a/b?X-Amz-Signature=s#f": "https://bucket.example/a/b",
		"http://127.0.0.1:9000/a%2Fb/c?token=t":                  "http://127.0.0.1:9000/a%2Fb/c",
		"https://registry.example/v2/":                           "https://registry.example/v2/",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := upstream.RedactedURL(u); got != want {
			t.Errorf("RedactedURL(%s) = %q, want %q", in, got, want)
		}
	}
	if got := upstream.RedactedURL(nil); got != "" {
		t.Errorf("RedactedURL(nil) = %q", got)
	}
}
