package upstream_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/upstream"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy/content"
)

func TestNewRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	testsupport.WriteFile(t, notPEM, "not a certificate")
	badConfig := filepath.Join(dir, "config.json")
	testsupport.WriteFile(t, badConfig, `{"auths":`)
	mustURL := func(s string) *url.URL { u, _ := url.Parse(s); return u }
	tests := []struct {
		name    string
		opts    upstream.Options
		wantErr string
	}{
		{name: "no registry", opts: upstream.Options{URL: mustURL("https://r.test")}, wantErr: "registry name"},
		{name: "no url", opts: upstream.Options{Registry: "r.test"}, wantErr: "url is missing"},
		{name: "ftp", opts: upstream.Options{Registry: "r.test", URL: mustURL("ftp://r.test")}, wantErr: "scheme"},
		{name: "path", opts: upstream.Options{Registry: "r.test", URL: mustURL("https://r.test/prefix")}, wantErr: "path"},
		{name: "query", opts: upstream.Options{Registry: "r.test", URL: mustURL("https://r.test/?x=1")}, wantErr: "query"},
		{name: "credentials in url", opts: upstream.Options{Registry: "r.test", URL: mustURL("https://bob:hunter2@r.test")}, wantErr: "credentials"},
		{name: "password alone", opts: upstream.Options{Registry: "r.test", URL: mustURL("https://r.test"), Password: "hunter2"}, wantErr: "without a username"},
		{name: "missing docker config", opts: upstream.Options{Registry: "r.test", URL: mustURL("https://r.test"), DockerConfig: filepath.Join(dir, "none.json")}, wantErr: "docker config"},
		{name: "broken docker config", opts: upstream.Options{Registry: "r.test", URL: mustURL("https://r.test"), DockerConfig: badConfig}, wantErr: "docker config"},
		{name: "missing CA file", opts: upstream.Options{Registry: "r.test", URL: mustURL("https://r.test"), CAFile: filepath.Join(dir, "none.pem")}, wantErr: "CA file"},
		{name: "CA file without PEM", opts: upstream.Options{Registry: "r.test", URL: mustURL("https://r.test"), CAFile: notPEM}, wantErr: "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := upstream.New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
}

// fixedAnswer serves /v2/ with 200 and everything else with status, headers and body.
func fixedAnswer(status int, header http.Header, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(200)
			return
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
}

func TestUpstreamErrorsMapToOCICodes(t *testing.T) {
	ociBody := func(code, msg string) string {
		return `{"errors":[{"code":"` + code + `","message":"` + msg + `"}]}`
	}
	const dgst = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	type call func(c *upstream.Client) error
	manifest := func(c *upstream.Client) error {
		_, err := c.Manifest(context.Background(), "team/app", "v1", nil)
		return err
	}
	blob := func(c *upstream.Client) error {
		_, err := c.Blob(context.Background(), "team/app", dgst)
		return err
	}
	tags := func(c *upstream.Client) error { _, err := c.Tags(context.Background(), "team/app", nil); return err }
	headManifest := func(c *upstream.Client) error {
		_, err := c.HeadManifest(context.Background(), "team/app", "v1", nil)
		return err
	}
	tests := []struct {
		name           string
		status         int
		header         http.Header
		body           string
		call           call
		wantCode       errcode.ErrorCode
		wantStatus     int
		wantRetryAfter string
		wantMessage    string
	}{
		{name: "manifest unknown", status: 404, body: ociBody("MANIFEST_UNKNOWN", "manifest unknown"), call: manifest,
			wantCode: errcode.ErrorCodeManifestUnknown, wantStatus: 404},
		{name: "name unknown on manifest", status: 404, body: ociBody("NAME_UNKNOWN", "repository name not known"), call: manifest,
			wantCode: errcode.ErrorCodeNameUnknown, wantStatus: 404, wantMessage: "repository name not known"},
		{name: "bare 404 on manifest", status: 404, body: "404 page not found", call: manifest,
			wantCode: errcode.ErrorCodeManifestUnknown, wantStatus: 404},
		{name: "404 on HEAD manifest", status: 404, call: headManifest, wantCode: errcode.ErrorCodeManifestUnknown, wantStatus: 404},
		{name: "bare 404 on blob", status: 404, call: blob, wantCode: errcode.ErrorCodeBlobUnknown, wantStatus: 404},
		{name: "blob unknown", status: 404, body: ociBody("BLOB_UNKNOWN", "blob unknown"), call: blob, wantCode: errcode.ErrorCodeBlobUnknown, wantStatus: 404},
		{name: "bare 404 on tags", status: 404, call: tags, wantCode: errcode.ErrorCodeNameUnknown, wantStatus: 404},
		{name: "unauthorized", status: 401, body: ociBody("UNAUTHORIZED", "authentication required"), call: manifest,
			wantCode: errcode.ErrorCodeUnauthorized, wantStatus: 401},
		{name: "denied", status: 403, body: ociBody("DENIED", "requested access to the resource is denied"), call: manifest,
			wantCode: errcode.ErrorCodeDenied, wantStatus: 403},
		{name: "too many requests", status: 429, header: http.Header{"Retry-After": {"42"}}, body: ociBody("TOOMANYREQUESTS", "slow down"), call: blob,
			wantCode: errcode.ErrorCodeTooManyRequests, wantStatus: 429, wantRetryAfter: "42", wantMessage: "slow down"},
		{name: "range", status: 416, call: blob, wantCode: errcode.ErrorCodeRangeInvalid, wantStatus: 416},
		{name: "unavailable", status: 503, call: manifest, wantCode: errcode.ErrorCodeUnavailable, wantStatus: 503},
		{name: "server error", status: 500, body: "boom", call: manifest, wantCode: errcode.ErrorCodeUnavailable, wantStatus: 502},
		{name: "bad gateway", status: 502, call: tags, wantCode: errcode.ErrorCodeUnavailable, wantStatus: 502},
		{name: "named client error", status: 400, body: ociBody("DIGEST_INVALID", "bad digest"), call: manifest,
			wantCode: errcode.ErrorCodeDigestInvalid, wantStatus: 400},
		{name: "unnamed client error", status: 418, body: "teapot", call: manifest, wantCode: errcode.ErrorCodeUnknown, wantStatus: 502},
		{name: "lowercase code", status: 404, body: ociBody("blob_unknown", "x"), call: blob, wantCode: errcode.ErrorCodeBlobUnknown, wantStatus: 404},
		{name: "redirect loop", status: 307, header: http.Header{"Location": {"/v2/team/app/manifests/v1"}}, call: manifest,
			wantCode: errcode.ErrorCodeUnavailable, wantStatus: 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(fixedAnswer(tt.status, tt.header, tt.body))
			defer srv.Close()
			c, _ := newClient(t, srv.URL, nil)
			err := tt.call(c)
			pe := proxy.Answer(err)
			if err == nil {
				t.Fatalf("no error")
			}
			if pe.Code != tt.wantCode || pe.HTTPStatus() != tt.wantStatus || pe.RetryAfter != tt.wantRetryAfter {
				t.Fatalf("got %s %d Retry-After %q, want %s %d %q (%v)", pe.Code, pe.HTTPStatus(), pe.RetryAfter,
					tt.wantCode, tt.wantStatus, tt.wantRetryAfter, err)
			}
			if !strings.Contains(pe.Message, "registry.test") || !strings.Contains(pe.Message, tt.wantMessage) {
				t.Fatalf("message %q should name the upstream and contain %q", pe.Message, tt.wantMessage)
			}
		})
	}
}

func TestErrorBodyIsBounded(t *testing.T) {
	// A huge error body is neither read whole nor relayed.
	huge := `{"errors":[{"code":"DENIED","message":"` + strings.Repeat("x", 1<<20) + `"}]}`
	srv := httptest.NewServer(fixedAnswer(403, nil, huge))
	defer srv.Close()
	c, _ := newClient(t, srv.URL, nil)
	_, err := c.Manifest(context.Background(), "team/app", "v1", nil)
	pe := proxy.Answer(err)
	if err == nil || pe.HTTPStatus() != 403 || len(pe.Message) > 1024 {
		t.Fatalf("%v (message %d bytes)", err, len(pe.Message))
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		statuses  []int // answered in turn to manifest GETs, then 200
		retries   int
		wantCalls int
		wantOK    bool
	}{
		{name: "503 then ok", statuses: []int{503, 503}, retries: 3, wantCalls: 3, wantOK: true},
		{name: "502 and 504 then ok", statuses: []int{502, 504}, retries: 3, wantCalls: 3, wantOK: true},
		{name: "gives up", statuses: []int{503, 503, 503, 503, 503}, retries: 2, wantCalls: 3},
		{name: "429 never retried", statuses: []int{429}, retries: 3, wantCalls: 1},
		{name: "500 not retried", statuses: []int{500}, retries: 3, wantCalls: 1},
		{name: "disabled", statuses: []int{503}, retries: -1, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			s := startServer(t, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == "GET" && strings.Contains(r.URL.Path, "/manifests/") {
						if n := int(calls.Add(1)); n <= len(tt.statuses) {
							w.WriteHeader(tt.statuses[n-1])
							return
						}
					}
					next.ServeHTTP(w, r)
				})
			})
			s.push(t, "team/app", "v1", nil)
			c, _ := newClient(t, s.URL, func(o *upstream.Options) { o.Retries = tt.retries })
			_, err := c.Manifest(context.Background(), "team/app", "v1", nil)
			if (err == nil) != tt.wantOK {
				t.Fatalf("Manifest: %v, want success %v", err, tt.wantOK)
			}
			if got := int(calls.Load()); got != tt.wantCalls {
				t.Fatalf("%d upstream calls, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestDownUpstreamIsPromptBadGateway(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more
	c, _ := newClient(t, "http://"+addr, func(o *upstream.Options) { o.Retries = 2 })
	_, err = c.Manifest(context.Background(), "team/app", "v1", nil)
	pe := proxy.Answer(err)
	if err == nil || pe.Code != errcode.ErrorCodeUnavailable || pe.HTTPStatus() != 502 {
		t.Fatalf("down upstream: %v", err)
	}
}

func TestHangingUpstreamTimesOut(t *testing.T) {
	addr := testsupport.HangingAddr(t)
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			c, _ := newClient(t, scheme+"://"+addr, func(o *upstream.Options) {
				o.DialTimeout = 300 * time.Millisecond
				o.ResponseHeaderTimeout = 300 * time.Millisecond
				o.Retries = 3 // timeouts are not retried
			})
			_, err := c.Manifest(context.Background(), "team/app", "v1", nil)
			pe := proxy.Answer(err)
			if err == nil || pe.Code != errcode.ErrorCodeUnavailable || pe.HTTPStatus() != 504 {
				t.Fatalf("hanging upstream: %v", err)
			}
		})
	}
}

func TestClientContextCancelsUpstream(t *testing.T) {
	addr := testsupport.HangingAddr(t)
	c, _ := newClient(t, "http://"+addr, nil) // default timeouts: 30 s for headers
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	_, err := c.Manifest(ctx, "team/app", "v1", nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Manifest with a cancelled context: %v", err)
	}
}

// tlsCounter counts connections that start with a TLS handshake record.
type tlsCounter struct {
	net.Listener
	tls atomic.Int32
}

func (l *tlsCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &peekConn{Conn: c, l: l}, nil
}

type peekConn struct {
	net.Conn
	l      *tlsCounter
	peeked bool
}

func (c *peekConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.peeked && n > 0 {
		c.peeked = true
		if p[0] == 0x16 {
			c.l.tls.Add(1)
		}
	}
	return n, err
}

func TestPlainHTTPOnlyWhenTheURLSaysSo(t *testing.T) {
	s := startServer(t, nil)
	s.push(t, "team/app", "v1", nil)
	// Serve the same registry on a listener that notices TLS attempts.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counter := &tlsCounter{Listener: l}
	plain := &httptest.Server{Listener: counter, Config: &http.Server{Handler: s.Config.Handler}}
	plain.Start()
	defer plain.Close()
	c, _ := newClient(t, plain.URL, nil)
	if _, err := c.Manifest(context.Background(), "team/app", "v1", nil); err != nil {
		t.Fatal(err)
	}
	if n := counter.tls.Load(); n != 0 {
		t.Fatalf("%d TLS handshakes tried against an http:// upstream", n)
	}

	// An https:// upstream is reached over TLS with the configured CA, and never over http.
	tlsSrv := httptest.NewUnstartedServer(s.Config.Handler)
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	testsupport.WriteFile(t, caFile, pemBytes)
	withCA, _ := newClient(t, tlsSrv.URL, func(o *upstream.Options) { o.CAFile = caFile })
	if _, err := withCA.Manifest(context.Background(), "team/app", "v1", nil); err != nil {
		t.Fatalf("https with the CA file: %v", err)
	}
	withoutCA, _ := newClient(t, tlsSrv.URL, nil)
	_, err = withoutCA.Manifest(context.Background(), "team/app", "v1", nil)
	pe := proxy.Answer(err)
	var uae x509.UnknownAuthorityError
	if err == nil || pe.HTTPStatus() != 502 || !errors.As(err, &uae) {
		t.Fatalf("https without the CA: %v", err)
	}
}

func TestManifestChecks(t *testing.T) {
	s := startServer(t, nil)
	img := s.push(t, "team/app", "v1", nil)
	d, _ := img.Digest()
	raw, _ := img.RawManifest()
	c, _ := newClient(t, s.URL, nil)
	for _, ref := range []string{"v1", d.String()} {
		m, err := c.Manifest(context.Background(), "team/app", ref, []string{"application/vnd.docker.distribution.manifest.v2+json"})
		if err != nil {
			t.Fatal(err)
		}
		if m.Digest.String() != d.String() || !bytes.Equal(m.Bytes, raw) || m.ContentType != "application/vnd.docker.distribution.manifest.v2+json" {
			t.Fatalf("%s: %+v", ref, m.Digest)
		}
	}
	desc, err := c.HeadManifest(context.Background(), "team/app", "v1", nil)
	if err != nil || desc.Digest.String() != d.String() || desc.Size != int64(len(raw)) {
		t.Fatalf("HeadManifest: %+v %v", desc, err)
	}
}

func TestBasicAuthAndDockerConfig(t *testing.T) {
	const user, pass = "puller", "s3cret-Pa55"
	s := startServer(t, requireBasic(user, pass))
	s.push(t, "team/app", "v1", &authn.Basic{Username: user, Password: pass})
	b64 := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))

	configFor := func(key, auth string) string {
		p := filepath.Join(t.TempDir(), "config.json")
		testsupport.WriteFile(t, p, `{"auths":{"`+key+`":{"auth":"`+auth+`"}}}`)
		return p
	}
	wrong := base64.StdEncoding.EncodeToString([]byte(user + ":wrong-" + pass))
	tests := []struct {
		name   string
		change func(*upstream.Options)
		wantOK bool
	}{
		{name: "username and password", wantOK: true, change: func(o *upstream.Options) { o.Username, o.Password = user, pass }},
		{name: "docker config by host", wantOK: true, change: func(o *upstream.Options) { o.DockerConfig = configFor(s.host(), b64) }},
		{name: "docker config by registry name", wantOK: true, change: func(o *upstream.Options) { o.DockerConfig = configFor("registry.test", b64) }},
		{name: "username wins over docker config", wantOK: true, change: func(o *upstream.Options) {
			o.Username, o.Password, o.DockerConfig = user, pass, configFor(s.host(), wrong)
		}},
		{name: "wrong password", change: func(o *upstream.Options) { o.Username, o.Password = user, "wrong-"+pass }},
		{name: "docker config without entry", change: func(o *upstream.Options) { o.DockerConfig = configFor("other.test", b64) }},
		{name: "anonymous", change: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, logs := newClient(t, s.URL, tt.change)
			_, err := c.Manifest(context.Background(), "team/app", "v1", nil)
			if tt.wantOK {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				pe := proxy.Answer(err)
				if err == nil || pe.Code != errcode.ErrorCodeUnauthorized || pe.HTTPStatus() != 401 {
					t.Fatalf("want UNAUTHORIZED, got %v", err)
				}
			}
			// Whatever happened, the secret shows nowhere.
			text := logs.String()
			if err != nil {
				text += err.Error()
				pe := proxy.Answer(err)
				if err != nil {
					text += pe.Message
				}
			}
			for _, secret := range []string{pass, b64, base64.StdEncoding.EncodeToString([]byte(pass))} {
				if strings.Contains(text, secret) {
					t.Fatalf("a credential appears in logs or errors:\n%s", text)
				}
			}
		})
	}
}

func TestRedirectedBlobCarriesNoCredentials(t *testing.T) {
	const user, pass = "puller", "s3cret-Pa55"
	content := []byte("layer bytes kept in object storage")
	dgst := digest.FromBytes(content)
	var sawAuth atomic.Value
	sawAuth.Store("")
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawAuth.Store(r.Header.Get("Authorization"))
		w.Write(content)
	}))
	defer storage.Close()
	s := startServer(t, func(next http.Handler) http.Handler {
		auth := requireBasic(user, pass)(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/blobs/") {
				if _, _, ok := r.BasicAuth(); !ok {
					auth.ServeHTTP(w, r)
					return
				}
				http.Redirect(w, r, storage.URL+"/bucket/"+dgst.Encoded()+"?sig=abc", http.StatusTemporaryRedirect)
				return
			}
			auth.ServeHTTP(w, r)
		})
	})
	c, _ := newClient(t, s.URL, func(o *upstream.Options) { o.Username, o.Password = user, pass })
	got, err := readBlob(t, c, "team/app", dgst)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("blob: %q %v", got, err)
	}
	if a := sawAuth.Load().(string); a != "" {
		t.Fatalf("the redirect target received Authorization %q", a)
	}
	if n := s.CountExact("GET", "/v2/team/app/blobs/"+dgst.String()); n == 0 {
		t.Fatal("the upstream was not asked")
	}
}

func TestStatBlob(t *testing.T) {
	s := startServer(t, nil)
	img := s.push(t, "team/app", "v1", nil)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	size, _ := layers[0].Size()
	c, _ := newClient(t, s.URL, nil)
	desc, err := c.StatBlob(context.Background(), "team/app", digest.Digest(ld.String()))
	if err != nil || desc.Size != size || desc.Digest.String() != ld.String() {
		t.Fatalf("StatBlob: %+v %v", desc, err)
	}
	_, err = c.StatBlob(context.Background(), "team/app", digest.FromString("absent"))
	if !content.IsNotFound(err) {
		t.Fatalf("StatBlob of an absent blob: %v", err)
	}
	var _ v1.Hash = ld
}
