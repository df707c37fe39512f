package harness

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/pullgate/pullgate/internal/testsupport"

	// The storage driver and the access controllers register themselves by name.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// Registry is distribution's registry running in-process on 127.0.0.1 with in-memory
// storage, optionally behind basic or bearer-token auth.
type Registry struct {
	// URL is http://127.0.0.1:<port>; Host is 127.0.0.1:<port>.
	URL  *url.URL
	Host string
	// Username and Password are the credentials the registry accepts (empty when it
	// needs none).
	Username, Password string

	tokens *tokenServer
	log    testsupport.RequestLog
	srv    *httptest.Server
}

// Request is one request the registry received.
type Request = testsupport.Request

type registryConfig struct {
	tokenAuth, basicAuth bool
	user, password       string
	middleware           []func(http.Handler) http.Handler
}

// RegistryOption configures StartRegistry.
type RegistryOption func(*registryConfig)

// WithTokenAuth puts the registry behind bearer-token auth (distribution's token access
// controller with a real signing key). The token server is served on the registry's
// own host and port under /token, so go-containerregistry's realm checks accept it; it
// issues tokens for any scope to user:password and refuses anything else.
func WithTokenAuth(user, password string) RegistryOption {
	return func(c *registryConfig) { c.tokenAuth, c.user, c.password = true, user, password }
}

// WithBasicAuth puts the registry behind HTTP basic auth (distribution's htpasswd).
func WithBasicAuth(user, password string) RegistryOption {
	return func(c *registryConfig) { c.basicAuth, c.user, c.password = true, user, password }
}

// WithMiddleware wraps the registry's handler (not the token server), for example to
// make it lie or fail. Middlewares apply in the order given, the first outermost.
func WithMiddleware(mw func(http.Handler) http.Handler) RegistryOption {
	return func(c *registryConfig) { c.middleware = append(c.middleware, mw) }
}

var quietLogrus sync.Once

// StartRegistry starts a registry and stops it when the test ends.
func StartRegistry(t testing.TB, opts ...RegistryOption) *Registry {
	t.Helper()
	var rc registryConfig
	for _, o := range opts {
		o(&rc)
	}
	// distribution logs through logrus' global logger; NewApp ignores cfg.Log.
	quietLogrus.Do(func() {
		logrus.SetOutput(io.Discard)
		logrus.SetLevel(logrus.PanicLevel)
	})

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: listen: %v", err)
	}
	r := &Registry{URL: &url.URL{Scheme: "http", Host: l.Addr().String()}, Host: l.Addr().String(),
		Username: rc.user, Password: rc.password}

	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{"inmemory": configuration.Parameters{}, "delete": configuration.Parameters{"enabled": true}}
	cfg.HTTP.Secret = "pullgate-harness"
	cfg.Log.AccessLog.Disabled = true
	dir := t.TempDir()
	switch {
	case rc.tokenAuth:
		r.tokens, err = newTokenServer(rc.user, rc.password, r.Host)
		if err != nil {
			t.Fatalf("harness: token server: %v", err)
		}
		bundle := filepath.Join(dir, "token-ca.pem")
		if err := os.WriteFile(bundle, r.tokens.certPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.Auth = configuration.Auth{"token": configuration.Parameters{
			"realm":          r.URL.String() + tokenPath,
			"service":        r.tokens.service,
			"issuer":         r.tokens.issuer,
			"rootcertbundle": bundle,
		}}
	case rc.basicAuth:
		hash, err := bcrypt.GenerateFromPassword([]byte(rc.password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(rc.user+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "pullgate-harness", "path": htpasswd}}
	}

	ctx, cancel := context.WithCancel(context.Background())
	var app http.Handler = handlers.NewApp(ctx, cfg)
	for i := len(rc.middleware) - 1; i >= 0; i-- {
		app = rc.middleware[i](app)
	}
	mux := http.NewServeMux()
	if r.tokens != nil {
		mux.Handle(tokenPath, r.tokens)
	}
	mux.Handle("/", r.log.Record(app))
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: mux}}
	srv.Start()
	r.srv = srv
	t.Cleanup(func() {
		srv.Close()
		cancel()
	})
	return r
}

// Stop closes the registry before the test ends: from then on connections to its
// address are refused, as from an upstream that went down. Requests in flight are
// waited for (release a Throttle first). Calling it again does nothing.
func (r *Registry) Stop() { r.srv.Close() }

// Auth is what a client needs to push to or pull from the registry directly.
func (r *Registry) Auth() authn.Authenticator {
	if r.Username == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: r.Username, Password: r.Password}
}

// Requests returns the registry requests (token requests excluded) received so far.
func (r *Registry) Requests() []Request { return r.log.Requests() }

// CountRequests counts received requests whose method is method and whose path
// contains part.
func (r *Registry) CountRequests(method, part string) int { return r.log.Count(method, part) }

// ResetRequests forgets the requests received so far.
func (r *Registry) ResetRequests() {
	r.log.Reset()
	if r.tokens != nil {
		r.tokens.reset()
	}
}

// TokenRequests returns how many tokens were issued per requested scope (each scope
// of a request counted), and how many requests were refused. Zero values without
// token auth.
func (r *Registry) TokenRequests() (issued map[string]int, refused int) {
	if r.tokens == nil {
		return map[string]int{}, 0
	}
	return r.tokens.counts()
}
