package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"
)

// baseTransport is the connection layer: timeouts on connect, TLS handshake and response
// headers, but none on bodies. For an upstream's client (upstreamURL set) the dial goes
// through a dialGuard, so that hosts the upstream's answers name lead no further inside
// a network than the upstream itself; the lookaside's hosts are the operator's
// (registries.d) and are dialled as named.
func baseTransport(opts Options, upstreamURL *url.URL) (*http.Transport, error) {
	dial := opts.DialTimeout
	if dial <= 0 {
		dial = DefaultDialTimeout
	}
	header := opts.ResponseHeaderTimeout
	if header <= 0 {
		header = DefaultResponseHeaderTimeout
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CAFile != "" {
		pool, err := certPool(opts.CAFile)
		if err != nil {
			return nil, err
		}
		tlsConfig.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: dial, KeepAlive: tcpKeepAlive}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   dial,
		ResponseHeaderTimeout: header,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       idleConnTimeout,
		MaxIdleConnsPerHost:   maxIdleConnsPerHost,
		ForceAttemptHTTP2:     true,
		// Bytes must arrive exactly as stored: they are digest-checked and relayed.
		DisableCompression: true,
	}
	if upstreamURL != nil {
		guardDials(t, upstreamURL, dialer)
	}
	return t, nil
}

// certPool is the system roots plus the PEM certificates in caFile.
func certPool(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// schemeTransport pins the scheme of requests to the upstream's host to the one its URL
// names. go-containerregistry guesses the scheme by pinging with https first (and
// falling back to http for some hosts); pullgate's configuration says which scheme to
// use, so nothing is guessed: an http:// upstream is never tried over https and an
// https:// upstream never over http. Other hosts (token realms, redirect targets) keep
// their own scheme.
type schemeTransport struct {
	host   string
	scheme string
	inner  http.RoundTripper
}

func (t *schemeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == t.host && req.URL.Scheme != t.scheme {
		req = req.Clone(req.Context())
		req.URL.Scheme = t.scheme
	}
	return t.inner.RoundTrip(req)
}

// retryTransport retries GET and HEAD requests after a connection error or a 502, 503 or
// 504 answer, with exponential backoff, until the request's context ends. It never
// retries a 429: the client is told to slow down instead. Timeouts are not retried
// either: an upstream that hangs would make every request wait several times over.
type retryTransport struct {
	inner   http.RoundTripper
	retries int
	delay   time.Duration
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return t.inner.RoundTrip(req)
	}
	delay := t.delay
	for attempt := 0; ; attempt++ {
		resp, err := t.inner.RoundTrip(req)
		if attempt >= t.retries || !retryable(resp, err) {
			return resp, err
		}
		if resp != nil {
			// Drain a little so the connection can be reused, then drop the answer.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBodyBytes))
			resp.Body.Close()
		}
		timer := time.NewTimer(delay)
		select {
		case <-req.Context().Done():
			timer.Stop()
			return nil, req.Context().Err()
		case <-timer.C:
		}
		delay *= 3
	}
}

// retryable reports whether a round trip failed in a way worth another try.
func retryable(resp *http.Response, err error) bool {
	if err != nil {
		return isConnectionError(err)
	}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// isConnectionError reports whether err means the connection failed (refused, reset,
// closed before an answer), as opposed to a timeout or a cancelled request.
func isConnectionError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
