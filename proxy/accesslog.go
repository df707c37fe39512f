package proxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"
)

// accessInfo collects what a request was about, for its access line.
type accessInfo struct {
	registry, repo, ref string
	digest              digest.Digest
	clientGone          bool
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
		slog.String("upstream", info.registry),
		slog.String("repo", info.repo),
	}, more...)
}

// logAccess writes the one access line of a request.
func (h *handler) logAccess(r *http.Request, w *responseRecorder, info *accessInfo, took time.Duration, aborted bool) {
	status := w.status
	if status == 0 && !aborted {
		status = http.StatusOK
	}
	attrs := requestAttrs(r, info,
		slog.String("reference", info.ref),
		slog.String("digest", info.digest.String()),
		slog.Int("status", status),
		slog.Int64("bytes", w.bytes),
		slog.Duration("duration", took),
		slog.String("client", r.RemoteAddr),
	)
	if aborted {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	if info.clientGone {
		attrs = append(attrs, slog.Bool("client_gone", true))
	}
	h.log.LogAttrs(context.WithoutCancel(r.Context()), slog.LevelInfo, "request", attrs...)
}
