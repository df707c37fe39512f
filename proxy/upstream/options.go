package upstream

import (
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// The kinds of request a Client sends, as WrapTransport is told them.
const (
	// KindUpstream is a request to the registry API, or to where its answer redirects.
	KindUpstream = "upstream"
	// KindToken is a request to a token endpoint an upstream's challenge named.
	KindToken = "token"
)

// Options configures a Client for one upstream registry.
type Options struct {
	// Registry is the registry name clients and signatures use (docker.io).
	Registry string
	// URL is where the registry's API is reached (https://registry-1.docker.io). Plain
	// http is used only when the URL says http://.
	URL *url.URL
	// Username and Password, when set, are used for basic auth or to obtain bearer tokens.
	Username string
	Password string
	// DockerConfig is the path of a docker config.json whose credentials for the URL's
	// host (or the Registry name) are used when Username is empty.
	DockerConfig string
	// CAFile is a PEM bundle of extra roots trusted for the upstream's TLS certificate.
	CAFile string
	// DialTimeout bounds connection set-up (TCP and TLS); ResponseHeaderTimeout bounds the
	// wait for response headers. Zero means the package defaults.
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	// SetupTimeout bounds the ping and token exchange that set up a repository's
	// credentials; RequestTimeout bounds each API request with its body (and the wait for
	// a blob answer's headers); BlobStallTimeout ends a blob body that sends no byte for
	// that long. Zero means the package defaults (limits.go).
	SetupTimeout     time.Duration
	RequestTimeout   time.Duration
	BlobStallTimeout time.Duration
	// Retries is how many times an idempotent request is retried after a connection error
	// or a 502/503/504; zero means the default, negative disables retries.
	Retries int
	// Logger receives debug lines about upstream calls; nil discards. Credentials are never logged.
	Logger *slog.Logger
	// UserAgent is sent on every request.
	UserAgent string
	// WrapTransport, if set, wraps the connection layer (below redirects, retries and
	// authentication) once per kind, KindUpstream and KindToken, so that metrics or
	// tracing see every request sent: each retry and redirect hop is a request of its own.
	WrapTransport func(kind string, rt http.RoundTripper) http.RoundTripper
}
