package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// Error is an answer to the client in the OCI error format. Only this package makes
// them: handlers return them, and answer (answer.go) makes one of every other error;
// writeError is the only place that turns one into a response.
type Error struct {
	// Code is the OCI error code (errcode.ErrorCodeManifestUnknown, ...).
	Code errcode.ErrorCode
	// Status overrides the code's usual HTTP status when not zero (an upstream failure
	// is UNAVAILABLE with 502 or 504).
	Status int
	// Message is shown to the client; empty means the code's default message. It must
	// never carry credentials or internal addresses: put those in Err.
	Message string
	// Detail is the "detail" member of the OCI error, when not nil.
	Detail any
	// RetryAfter is relayed as the Retry-After header (429 from an upstream).
	RetryAfter string
	// Err is the cause. It is logged, never sent to the client.
	Err error
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Code.Message()
	}
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, msg, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorCode lets errcode-aware code read the code.
func (e *Error) ErrorCode() errcode.ErrorCode { return e.Code }

// HTTPStatus is the status the error is answered with.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	return e.Code.Descriptor().HTTPStatusCode
}

// errorBody is the OCI error envelope for one error.
func errorBody(e *Error) []byte {
	oe := errcode.Error{Code: e.Code, Message: e.Message, Detail: e.Detail}
	b, err := json.Marshal(errcode.Errors{oe})
	if err != nil {
		// Only an unmarshalable Detail can fail; answer without it.
		oe.Detail = nil
		b, _ = json.Marshal(errcode.Errors{oe})
	}
	return b
}

// writeError answers err in the OCI error format and logs it: the one place errors
// become responses. When the client has gone away nothing is written.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, info *accessInfo, err error) {
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		info.clientGone = true
		h.log.LogAttrs(r.Context(), slog.LevelDebug, "client went away", slog.String("path", r.URL.Path))
		return
	}
	pe := asError(err)
	status := pe.HTTPStatus()
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	attrs := requestAttrs(r, info,
		slog.String("code", pe.Code.String()),
		slog.Int("status", status),
		slog.String("message", pe.Message),
	)
	if pe.Err != nil {
		attrs = append(attrs, slog.String("error", pe.Err.Error()))
	}
	h.log.LogAttrs(context.WithoutCancel(r.Context()), level, "failed to serve request", attrs...)

	body := errorBody(pe)
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Del("Docker-Content-Digest")
	if pe.RetryAfter != "" {
		hdr.Set("Retry-After", pe.RetryAfter)
	}
	if status == http.StatusMethodNotAllowed {
		hdr.Set("Allow", "GET, HEAD")
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
