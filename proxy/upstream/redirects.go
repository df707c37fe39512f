package upstream

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// ErrRedirectRefused is wrapped by every *RedirectError.
var ErrRedirectRefused = errors.New("redirect refused")

// RedirectError is a redirect the client would not follow. From and To are origins
// (scheme://host:port), never paths or queries: a presigned storage URL's query is a
// credential, and an internal target's path is nobody's business.
type RedirectError struct {
	From, To string
	// CrossHost is true for a request sent to another origin, false for a downgrade
	// from https to http.
	CrossHost bool
}

func (e *RedirectError) Error() string {
	if e.CrossHost {
		return fmt.Sprintf("refused to follow a redirect from %s to another host (%s)", e.From, e.To)
	}
	return fmt.Sprintf("refused to follow a redirect from %s to %s: https must not become http", e.From, e.To)
}

func (e *RedirectError) Unwrap() error { return ErrRedirectRefused }

// origin is a URL's scheme and host:port, the port made explicit.
type origin struct{ scheme, hostport string }

func originOf(u *url.URL) origin {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Host)
	if _, _, err := net.SplitHostPort(host); err != nil {
		port := "443"
		if scheme == "http" {
			port = "80"
		}
		host = net.JoinHostPort(strings.Trim(host, "[]"), port)
	}
	return origin{scheme: scheme, hostport: host}
}

func (o origin) String() string { return o.scheme + "://" + o.hostport }

// redirectGuard enforces the redirect policy on every request that http.Client makes
// while following a redirect (req.Response is set on those), whichever client made it:
// pullgate's own or the ones go-containerregistry builds for the ping and the token
// exchange, which would follow redirects anywhere.
//
//   - Never from https to http.
//   - API requests, the ping and token requests: only within the upstream's own origin
//     (scheme, host and port). A token request sent to a realm on another host (as
//     Docker Hub's is) therefore follows no redirect at all.
//   - Blob GET and HEAD, begun at the upstream's /v2/<name>/blobs/: anywhere else, as
//     registries send blobs to object storage. The bytes are verified by the caller, and
//     credentials stay home (go-containerregistry adds them only for the upstream's
//     host).
type redirectGuard struct {
	// upstream is the upstream's origin; host is its URL host as configured, whose
	// scheme schemeTransport pins.
	upstream origin
	host     string
	inner    http.RoundTripper
}

func (g *redirectGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Response != nil && req.Response.Request != nil {
		if err := g.check(req); err != nil {
			return nil, err
		}
	}
	return g.inner.RoundTrip(req)
}

// effective is the origin a request to u really goes to: schemeTransport pins the
// upstream host's scheme.
func (g *redirectGuard) effective(u *url.URL) origin {
	if u.Host == g.host {
		return g.upstream
	}
	return originOf(u)
}

func (g *redirectGuard) check(req *http.Request) error {
	prev := req.Response.Request
	first := prev
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request
	}
	from, to := g.effective(prev.URL), g.effective(req.URL)
	if from.scheme == "https" && to.scheme != "https" {
		return &RedirectError{From: from.String(), To: to.String()}
	}
	if classOf(req.Context()) == classBlob && g.effective(first.URL) == g.upstream && isBlobPath(first.URL.Path) {
		return nil
	}
	if g.effective(first.URL) != g.upstream || to != g.upstream {
		return &RedirectError{From: from.String(), To: to.String(), CrossHost: true}
	}
	return nil
}

// isBlobPath reports whether path is a registry blob path, /v2/<name>/blobs/<digest>.
func isBlobPath(path string) bool {
	return strings.HasPrefix(path, "/v2/") && strings.Contains(path, "/blobs/")
}

// checkRedirect bounds the redirects pullgate's own clients follow; redirectGuard
// decides where they may go.
func checkRedirect(_ *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	return nil
}
