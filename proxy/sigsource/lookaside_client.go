package sigsource

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/pullgate/pullgate/proxy/upstream"
)

// LookasideClientOptions are the bounds of the lookaside's HTTP client: the same
// upstreamTimeouts as the registries, plus a total deadline per request.
type LookasideClientOptions struct {
	// DialTimeout bounds TCP connection set-up and, separately, the TLS handshake;
	// ResponseHeaderTimeout the wait for response headers. Zero means the upstream
	// client's defaults.
	DialTimeout, ResponseHeaderTimeout time.Duration
	// Timeout bounds each request, body included; zero means defaultLookasideTimeout.
	Timeout time.Duration
	// WrapTransport, if set, wraps the connection layer (upstream.HTTPClientOptions).
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// ErrLookasideRedirect is wrapped when a lookaside redirects where pullgate does not
// follow: to another host or port, or from https to http.
var ErrLookasideRedirect = errors.New("lookaside redirect refused")

// NewLookasideClient returns the client lookaside files are read with. A lookaside is
// named by registries.d, but what it answers reaches any client through pullgate's
// signature API, and whether a URL answers at all shows in pullgate's status codes: so it
// follows redirects only on the same host and port (http to https on the default ports
// included), never to another host and never from https to http.
func NewLookasideClient(opts LookasideClientOptions) *http.Client {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = defaultLookasideTimeout
	}
	// The upstreams' factory: the same dial, TLS and header bounds. It can only fail on a
	// CA file, and none is given.
	c, err := upstream.NewHTTPClient(upstream.HTTPClientOptions{DialTimeout: opts.DialTimeout,
		ResponseHeaderTimeout: opts.ResponseHeaderTimeout, RequestTimeout: timeout, WrapTransport: opts.WrapTransport})
	if err != nil {
		panic(fmt.Sprintf("sigsource: lookaside client: %v", err))
	}
	// A lookaside may also upgrade http to https on its own host.
	c.CheckRedirect = checkLookasideRedirect
	return c
}

// checkLookasideRedirect allows a redirect only to the host and port of the first
// request, with the same scheme or from http to https; the refusal names the target
// without credentials or query (it ends up in messages).
func checkLookasideRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxLookasideRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrLookasideRedirect, maxLookasideRedirects)
	}
	from, to := via[0].URL, req.URL
	if !sameOrigin(from.Scheme, from.Host, to.Scheme, to.Host) {
		return fmt.Errorf("%w: %s redirects to %s", ErrLookasideRedirect, redactedSource(via[len(via)-1].URL), redactedSource(to))
	}
	// Each hop is checked against the first request, so a chain cannot walk away either.
	return nil
}

// sameOrigin: the same scheme, host and port, or an upgrade from http to https of the
// same host on the default ports.
func sameOrigin(fromScheme, fromHost, toScheme, toHost string) bool {
	fh, fp := hostPort(fromScheme, fromHost)
	th, tp := hostPort(toScheme, toHost)
	if !strings.EqualFold(fh, th) {
		return false
	}
	switch {
	case fromScheme == toScheme:
		return fp == tp
	case fromScheme == "http" && toScheme == "https":
		return fp == "80" && tp == "443"
	}
	return false
}

// hostPort splits host[:port], filling in the scheme's default port.
func hostPort(scheme, host string) (string, string) {
	h, p, err := net.SplitHostPort(host)
	if err != nil {
		h, p = strings.Trim(host, "[]"), ""
	}
	if p == "" {
		switch scheme {
		case "http":
			p = "80"
		case "https":
			p = "443"
		}
	}
	return h, p
}
