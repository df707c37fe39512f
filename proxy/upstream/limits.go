package upstream

import "time"

// Defaults and bounds of the upstream client.
const (
	// DefaultDialTimeout bounds TCP connection set-up and, separately, the TLS
	// handshake. An upstream that cannot be reached in 10 s is treated as down.
	DefaultDialTimeout = 10 * time.Second
	// DefaultResponseHeaderTimeout bounds the wait for response headers once a request
	// is sent. Bodies have no overall deadline (blobs stream for as long as they
	// take); the client's context cancels them.
	DefaultResponseHeaderTimeout = 30 * time.Second
	// DefaultRetries is how often an idempotent request is retried after a connection
	// error or a 502/503/504.
	DefaultRetries = 3
	// retryBaseDelay is the first backoff; each retry waits three times longer (0.1 s,
	// 0.3 s, 0.9 s), enough to ride out a restart or a network blip.
	retryBaseDelay = 100 * time.Millisecond

	// maxErrorBodyBytes caps the error body read from an upstream (ggcr uses the same
	// 64 KiB): it is only parsed for an OCI error code and message.
	maxErrorBodyBytes = 64 << 10
	// maxErrorMessageBytes caps an upstream error message relayed to the client.
	maxErrorMessageBytes = 512
	// maxScopedTransports bounds the authenticated transports kept, one per
	// repository scope (each holds a bearer token). Least recently used go first.
	maxScopedTransports = 1024
	// maxRedirects bounds the redirects followed for one request (net/http's default).
	maxRedirects = 10
	// maxIdleConnsPerHost keeps enough idle connections for parallel layer pulls.
	maxIdleConnsPerHost = 32
	// idleConnTimeout closes idle upstream connections.
	idleConnTimeout = 90 * time.Second
	// tcpKeepAlive is the TCP keep-alive period of upstream connections.
	tcpKeepAlive = 30 * time.Second
)
