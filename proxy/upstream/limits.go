package upstream

import (
	"time"
)

// Defaults and bounds of the upstream client.
const (
	// DefaultDialTimeout bounds TCP connection set-up and, separately, the TLS
	// handshake. An upstream that cannot be reached in 10 s is treated as down.
	DefaultDialTimeout = 10 * time.Second
	// DefaultResponseHeaderTimeout bounds the wait for response headers once a request
	// is sent, per hop (each redirect and retry gets its own).
	DefaultResponseHeaderTimeout = 30 * time.Second
	// DefaultSetupTimeout bounds the set-up of a repository's credentials, shared by the
	// requests that wait for it: the /v2/ ping and the token exchange, bodies included.
	// Without it a /v2/ whose body never ends would hold every request forever.
	DefaultSetupTimeout = 30 * time.Second
	// DefaultRequestTimeout bounds one API request (manifest GET and HEAD, tags,
	// referrers, the signature API), from sending it to the last byte of its body,
	// redirects and token refreshes included: these bodies are at most a few MiB, so a
	// manifest trickled byte by byte is given up rather than read for hours. For blob
	// requests it bounds the wait for the answer's headers only.
	DefaultRequestTimeout = 60 * time.Second
	// DefaultBlobStallTimeout ends a blob body that sends no byte for this long. Blobs
	// have no total deadline (a large layer on a slow link takes as long as it takes),
	// only this stall bound; time pullgate spends writing to its own client is not
	// counted.
	DefaultBlobStallTimeout = 60 * time.Second
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
	// maxSetupBodyBytes caps each body read during set-up (the /v2/ ping, which
	// go-containerregistry drains whole, and token answers, which it reads up to
	// 64 KiB): a real one is a few KiB.
	maxSetupBodyBytes = 1 << 20
	// maxIdleConnsPerHost keeps enough idle connections for parallel layer pulls.
	maxIdleConnsPerHost = 32
	// idleConnTimeout closes idle upstream connections.
	idleConnTimeout = 90 * time.Second
	// maxTokenRealms bounds the token endpoints remembered per upstream to tell token
	// requests from API requests for Options.WrapTransport; a registry names one. Past
	// it, requests to further realms are labelled KindUpstream (a label, no decision).
	maxTokenRealms = 8
	// tcpKeepAlive is the TCP keep-alive period of upstream connections.
	tcpKeepAlive = 30 * time.Second
)
