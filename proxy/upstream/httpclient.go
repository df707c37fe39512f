package upstream

import (
	"fmt"
	"net/http"
	"time"

	ggcrtransport "github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// HTTPClientOptions configures NewHTTPClient. Zero durations mean the package defaults,
// as in Options.
type HTTPClientOptions struct {
	// CAFile is a PEM bundle of extra roots trusted for TLS, besides the system's.
	CAFile string
	// DialTimeout bounds TCP and TLS set-up; ResponseHeaderTimeout the wait for headers.
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	// RequestTimeout bounds each request whole: redirects and the body included.
	RequestTimeout time.Duration
	// UserAgent is sent on every request; empty means "pullgate".
	UserAgent string
	// WrapTransport, if set, wraps the connection layer, as Options.WrapTransport does.
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// NewHTTPClient returns an *http.Client for pullgate's other outbound reads (the
// lookaside signature store), with the upstream client's bounds: the same connection
// timeouts and TLS settings, a total deadline per request (http.Client.Timeout,
// covering the body), and a redirect policy that follows at most 10 redirects, each to
// the same scheme, host and port as the request that was sent: no other host, and never
// https to http. A refused redirect is a *RedirectError (ErrRedirectRefused) inside the
// *url.Error that Do returns. The caller still bounds how much of a body it reads.
func NewHTTPClient(opts HTTPClientOptions) (*http.Client, error) {
	bt, err := baseTransport(Options{CAFile: opts.CAFile, DialTimeout: opts.DialTimeout, ResponseHeaderTimeout: opts.ResponseHeaderTimeout}, nil)
	if err != nil {
		return nil, fmt.Errorf("http client: %w", err)
	}
	timeout := opts.RequestTimeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = "pullgate"
	}
	var conn http.RoundTripper = bt
	if opts.WrapTransport != nil {
		conn = opts.WrapTransport(bt)
	}
	return &http.Client{
		Transport:     ggcrtransport.NewUserAgent(conn, ua),
		Timeout:       timeout,
		CheckRedirect: sameOriginRedirect,
	}, nil
}

// sameOriginRedirect follows a redirect only to the origin of the first request.
func sameOriginRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	from, to := originOf(via[0].URL), originOf(req.URL)
	switch {
	case from.scheme == "https" && to.scheme != "https":
		return &RedirectError{From: from.String(), To: to.String()}
	case from != to:
		return &RedirectError{From: from.String(), To: to.String(), CrossHost: true}
	}
	return nil
}
