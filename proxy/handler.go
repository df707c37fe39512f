package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/pullgate/pullgate/cache"
	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/content"
)

// handler serves the read-only OCI distribution API.
type handler struct {
	gate       admission.Gate
	signatures SignatureLister
	sources    map[string]content.Source
	router     router
	log        *slog.Logger
	observer   Observer
	// writeStall is the per-write deadline of every answer; zero disables it.
	writeStall time.Duration
	// streams holds a token per blob body being relayed from an upstream (nil: no
	// bound); streamWait is how long a request waits for one.
	streams    chan struct{}
	streamWait time.Duration
}

// New returns the HTTP handler for /v2/. It refuses to work without a Gate (ErrNoGate):
// pullgate never serves unchecked content by default.
func New(opts Options) (http.Handler, error) {
	if opts.Gate == nil {
		return nil, ErrNoGate
	}
	if len(opts.Upstreams) == 0 {
		return nil, errors.New("proxy: no upstream configured")
	}
	h := &handler{
		gate:       opts.Gate,
		signatures: opts.Signatures,
		sources:    make(map[string]content.Source, len(opts.Upstreams)),
		router:     router{registries: make(map[string]bool, len(opts.Upstreams)), defaultRegistry: opts.DefaultUpstream},
		log:        opts.Logger,
	}
	for i, u := range opts.Upstreams {
		switch {
		case u.Registry == "" || strings.ContainsAny(u.Registry, "/?# "):
			return nil, fmt.Errorf("proxy: upstreams[%d]: invalid registry name %q", i, u.Registry)
		case u.Source == nil:
			return nil, fmt.Errorf("proxy: upstreams[%d] (%s): no source", i, u.Registry)
		case h.router.registries[u.Registry]:
			return nil, fmt.Errorf("proxy: upstreams[%d]: registry %q configured twice", i, u.Registry)
		}
		h.router.registries[u.Registry] = true
	}
	if opts.DefaultUpstream != "" && !h.router.registries[opts.DefaultUpstream] {
		return nil, fmt.Errorf("proxy: default upstream %q is not a configured upstream", opts.DefaultUpstream)
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.observer = opts.Observer
	if h.observer == nil {
		h.observer = AccessLog(h.log)
	}
	cacheBytes := opts.ManifestCacheBytes
	switch {
	case cacheBytes == 0:
		cacheBytes = DefaultManifestCacheBytes
	case cacheBytes < 0:
		cacheBytes = 0
	}
	switch {
	case opts.WriteStallTimeout == 0:
		h.writeStall = DefaultWriteStallTimeout
	case opts.WriteStallTimeout > 0:
		h.writeStall = opts.WriteStallTimeout
	}
	switch {
	case opts.MaxBlobStreams == 0:
		h.streams = make(chan struct{}, DefaultMaxBlobStreams)
	case opts.MaxBlobStreams > 0:
		h.streams = make(chan struct{}, opts.MaxBlobStreams)
	}
	h.streamWait = opts.BlobStreamWait
	if h.streamWait <= 0 {
		h.streamWait = DefaultBlobStreamWait
	}
	// Every upstream Source gets the manifest decorator (one cache, one bound, for all).
	manifests := newManifestCache(cacheBytes)
	fetches := &cache.Group[*content.Manifest]{Timeout: manifestFetchTimeout}
	for _, u := range opts.Upstreams {
		h.sources[u.Registry] = &manifestSource{Source: u.Source, registry: u.Registry, cache: manifests, group: fetches}
	}
	return h, nil
}

// contentSecurityPolicy is sent with every answer: registry clients ignore it; a browser
// pointed at a relayed blob or manifest treats it as an inert, sandboxed document.
const contentSecurityPolicy = "default-src 'none'; sandbox"

// ServeHTTP implements http.Handler. It hands the observer one record per request, also
// for responses aborted with http.ErrAbortHandler.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// Every answer, errors included: nothing pullgate sends is to be sniffed into a type
	// a browser would run, and whatever an upstream labels a blob, a browser that opens it
	// from pullgate's origin runs no script and loads nothing (the sandbox).
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
	sw := newStallWriter(w, h.writeStall)
	rec := &responseRecorder{ResponseWriter: sw}
	info := &accessInfo{}
	defer func() {
		p := recover()
		// What net/http flushes after the handler returns gets a deadline too.
		sw.extend()
		h.observe(r, rec, info, time.Since(start), p != nil)
		if p != nil {
			panic(p)
		}
	}()
	if err := h.serve(rec, r, info); err != nil {
		h.writeError(rec, r, info, err)
	}
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, info *accessInfo) error {
	isAPI := r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/") || strings.HasPrefix(r.URL.Path, signatureAPIPrefix)
	if r.Method != http.MethodGet && r.Method != http.MethodHead && isAPI {
		return &Error{Code: errcode.ErrorCodeUnsupported,
			Message: fmt.Sprintf("pullgate is a read-only mirror: %s is not supported", r.Method)}
	}
	rt, err := h.router.parse(r.URL.Path, r.URL.Query())
	if err != nil {
		return err
	}
	info.route = rt
	if rt.ns != "" {
		// dist-spec "Registry Proxying": a proxy that uses ns echoes it.
		w.Header().Set("OCI-Namespace", rt.ns)
	}
	switch rt.endpoint {
	case endpointPing:
		if h.signatures != nil {
			w.Header().Set("X-Registry-Supports-Signatures", "1")
		}
		return servePing(w, r)
	case endpointCatalog:
		// The catalog is not offered: it would enumerate upstream repositories, which
		// no client needs to pull and which no policy check covers. 404 with
		// UNSUPPORTED tells clients the endpoint does not exist here.
		return &Error{Code: errcode.ErrorCodeUnsupported, Status: http.StatusNotFound,
			Message: "pullgate does not offer the repository catalog"}
	case endpointBlobUpload:
		return &Error{Code: errcode.ErrorCodeUnsupported,
			Message: "pullgate is a read-only mirror: uploads are not supported"}
	case endpointManifest:
		return h.serveManifest(w, r, rt, info)
	case endpointBlob:
		return h.serveBlob(w, r, rt, info)
	case endpointTags:
		return h.serveTags(w, r, rt)
	case endpointReferrers:
		return h.serveReferrers(w, r, rt, info)
	case endpointSignatures:
		return h.serveSignatures(w, r, rt)
	}
	return &Error{Code: errcode.ErrorCodeUnsupported, Status: http.StatusNotFound, Message: "unknown registry API endpoint"}
}

// stallWriter puts a write deadline of stall before every write of at most
// writeChunkBytes, so that a client that stops reading makes the write fail after stall
// (net/http then closes the connection) instead of holding the response forever. The
// deadline is per write, not per response: a large blob to a slow but steady client
// is never cut off. Without a stall, or on a ResponseWriter without deadlines
// (httptest.ResponseRecorder), it only passes writes on.
type stallWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func newStallWriter(w http.ResponseWriter, stall time.Duration) *stallWriter {
	sw := &stallWriter{ResponseWriter: w, rc: http.NewResponseController(w), stall: stall}
	sw.extend()
	return sw
}

// extend moves the deadline to stall from now.
func (sw *stallWriter) extend() {
	if sw.stall > 0 {
		// ErrNotSupported: a writer without deadlines; nothing to bound.
		_ = sw.rc.SetWriteDeadline(time.Now().Add(sw.stall))
	}
}

func (sw *stallWriter) Write(p []byte) (int, error) {
	if sw.stall <= 0 {
		return sw.ResponseWriter.Write(p)
	}
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), writeChunkBytes)]
		sw.extend()
		n, err := sw.ResponseWriter.Write(chunk)
		written += n
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// ReadFrom passes src on to the underlying writer's ReadFrom (net/http sends a file with
// sendfile), at most writeChunkBytes under one deadline. The chunks are limits over the
// innermost reader, so that net/http still sees a file under one *io.LimitedReader.
func (sw *stallWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := sw.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{sw}, src)
	}
	if sw.stall <= 0 {
		return rf.ReadFrom(src)
	}
	inner, left := src, int64(-1) // left < 0: until EOF
	lr, limited := src.(*io.LimitedReader)
	if limited {
		inner, left = lr.R, lr.N
	}
	var written int64
	var err error
	for left != 0 {
		chunk := int64(writeChunkBytes)
		if left > 0 {
			chunk = min(chunk, left)
		}
		sw.extend()
		var n int64
		n, err = rf.ReadFrom(&io.LimitedReader{R: inner, N: chunk})
		written += n
		if left > 0 {
			left -= n
		}
		if err != nil || n < chunk {
			break // an error, or the end of src
		}
	}
	if limited {
		lr.N = max(left, 0)
	}
	return written, err
}

func (sw *stallWriter) WriteHeader(code int) {
	sw.extend()
	sw.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (sw *stallWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

// acquireStream takes one of the blob streams, waiting up to streamWait; the caller
// calls release when its upstream body is closed. Beyond the bound a request is 503
// UNAVAILABLE with Retry-After: pullgate's capacity, not the client's rate, is
// exhausted, and clients retry a 503.
func (h *handler) acquireStream(r *http.Request) (release func(), err error) {
	if h.streams == nil {
		return func() {}, nil
	}
	release = func() { <-h.streams }
	select {
	case h.streams <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(h.streamWait)
	defer t.Stop()
	select {
	case h.streams <- struct{}{}:
		return release, nil
	case <-r.Context().Done():
		return nil, r.Context().Err()
	case <-t.C:
		return nil, &Error{Code: errcode.ErrorCodeUnavailable, RetryAfter: blobStreamRetryAfter,
			Message: fmt.Sprintf("pullgate is relaying as many blobs as it is configured to (%d); try again later", cap(h.streams))}
	}
}

// servePing answers GET /v2/: the API version check every client starts with.
func servePing(w http.ResponseWriter, r *http.Request) error {
	hdr := w.Header()
	hdr.Set("Docker-Distribution-API-Version", "registry/2.0")
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte("{}"))
	}
	return nil
}

// target names the upstream object of a request for the gate.
func target(r *http.Request, rt route) admission.Target {
	return admission.Target{Registry: rt.registry, Repository: rt.repo, ClientAddr: r.RemoteAddr, User: admission.UserFrom(r.Context())}
}

// setContentType sets the Content-Type exactly as given; an empty one stays empty
// rather than letting net/http sniff one.
func setContentType(hdr http.Header, ct string) {
	if ct == "" {
		hdr["Content-Type"] = nil
		return
	}
	hdr.Set("Content-Type", ct)
}
