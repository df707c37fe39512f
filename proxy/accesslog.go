package proxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy/admission"
)

// Observer sees every request the handler answered, once, when its answer has ended
// (also when it was aborted): metrics, audit and tracing plug in here, outside the request
// path. Observe runs on the request's goroutine after the answer was written, so it must
// be quick and must not block; ctx is the request's, without its cancellation.
// AccessLog, the default, writes today's access line.
type Observer interface {
	Observe(ctx context.Context, rt Route, rec AccessRecord)
}

// Route is what the handler parsed a request's path into. A path that did not parse
// has an empty Endpoint.
type Route struct {
	// Endpoint is the kind of request: ping, catalog, manifest, blob, blob-upload, tags,
	// referrers or signatures.
	Endpoint string
	// Name is the repository name as the client wrote it (docker.io/alpine, alpine).
	Name string
	// Registry is the configured name of the upstream chosen.
	Registry string
	// Repository is the repository on that upstream (library/alpine).
	Repository string
	// Reference is the tag or digest of a manifest request, the digest of a blob,
	// referrers or signatures request.
	Reference string
}

// AccessRecord is what happened to one request.
type AccessRecord struct {
	Method string
	// Path is the request's URL path.
	Path string
	// Digest is the digest served (or asked for): the manifest's a tag resolved to, the
	// blob's, the referrers subject's. Empty when none was known.
	Digest digest.Digest
	// Status is the HTTP status answered; zero when the answer was aborted before its
	// headers were sent.
	Status int
	// Bytes is the number of body bytes written.
	Bytes    int64
	Duration time.Duration
	// Client is the client's address (http.Request.RemoteAddr).
	Client string
	// User is the name the client authenticated as; empty without client authentication.
	User string
	// Aborted: the answer was cut off (http.ErrAbortHandler) rather than completed, so
	// the client saw a broken connection.
	Aborted bool
	// ClientGone: the client went away or stopped reading before the answer was done.
	ClientGone bool
}

// AccessLog is the default Observer: one INFO line "request" per request on log, with
// the route and the record.
func AccessLog(log *slog.Logger) Observer { return accessLog{log: log} }

type accessLog struct{ log *slog.Logger }

func (a accessLog) Observe(ctx context.Context, rt Route, rec AccessRecord) {
	attrs := []slog.Attr{
		slog.String("method", rec.Method),
		slog.String("path", rec.Path),
		slog.String("upstream", rt.Registry),
		slog.String("repo", rt.Repository),
		slog.String("reference", rt.Reference),
		slog.String("digest", rec.Digest.String()),
		slog.Int("status", rec.Status),
		slog.Int64("bytes", rec.Bytes),
		slog.Duration("duration", rec.Duration),
		slog.String("client", rec.Client),
	}
	if rec.User != "" {
		attrs = append(attrs, slog.String("user", rec.User))
	}
	if rec.Aborted {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	if rec.ClientGone {
		attrs = append(attrs, slog.Bool("client_gone", true))
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}

// Observers is an Observer that passes every request to each of obs in turn (the access
// log and metrics, say).
func Observers(obs ...Observer) Observer { return observers(obs) }

type observers []Observer

func (o observers) Observe(ctx context.Context, rt Route, rec AccessRecord) {
	for _, ob := range o {
		ob.Observe(ctx, rt, rec)
	}
}

// accessInfo collects what a request was about, for its access record.
type accessInfo struct {
	route      route
	digest     digest.Digest
	clientGone bool
}

// public is the route as observers see it.
func (rt route) public() Route {
	r := Route{Name: rt.name, Registry: rt.registry, Repository: rt.repo, Reference: rt.ref}
	if rt.endpoint != 0 {
		r.Endpoint = rt.endpoint.String()
	}
	return r
}

// responseRecorder remembers the status and counts the body bytes written.
type responseRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *responseRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseRecorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom counts what http.ServeContent hands the underlying writer's ReadFrom, so
// that a held file can go out with sendfile.
func (w *responseRecorder) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{w.ResponseWriter}, src)
	}
	w.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// requestAttrs are the log attributes that name a request, then more.
func requestAttrs(r *http.Request, info *accessInfo, more ...slog.Attr) []slog.Attr {
	return append([]slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("upstream", info.route.registry),
		slog.String("repo", info.route.repo),
	}, more...)
}

// observe hands the request's record to the observer.
func (h *handler) observe(r *http.Request, w *responseRecorder, info *accessInfo, took time.Duration, aborted bool) {
	status := w.status
	if status == 0 && !aborted {
		status = http.StatusOK
	}
	h.observer.Observe(context.WithoutCancel(r.Context()), info.route.public(), AccessRecord{
		Method:     r.Method,
		Path:       r.URL.Path,
		Digest:     info.digest,
		Status:     status,
		Bytes:      w.bytes,
		Duration:   took,
		Client:     r.RemoteAddr,
		User:       admission.UserFrom(r.Context()),
		Aborted:    aborted,
		ClientGone: info.clientGone,
	})
}
