package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy/verify"
)

// serveBlob answers GET and HEAD on /v2/<name>/blobs/<digest>. The gate decides before
// the upstream is contacted.
func (h *handler) serveBlob(w http.ResponseWriter, r *http.Request, rt route, info *accessInfo) error {
	ctx := r.Context()
	d := digest.Digest(rt.ref)
	info.digest = d
	head := r.Method == http.MethodHead
	dec, err := h.gate.AdmitBlob(ctx, &BlobRequest{Target: target(r, rt), Digest: d, Head: head})
	if err != nil {
		return gateError(err)
	}
	if !dec.Allow {
		return denied(dec)
	}

	src := h.sources[rt.registry]
	if head {
		desc, err := src.StatBlob(ctx, rt.repo, d)
		if err != nil {
			return err
		}
		if desc.Size < 0 {
			return &Error{Code: errcode.ErrorCodeUnknown, Status: http.StatusBadGateway,
				Message: "the upstream did not say the size of the blob"}
		}
		hdr := w.Header()
		hdr.Set("Content-Type", blobContentType(desc.ContentType))
		hdr.Set("Docker-Content-Digest", d.String())
		hdr.Set("Content-Length", strconv.FormatInt(desc.Size, 10))
		w.WriteHeader(http.StatusOK)
		return nil
	}

	rangeHeader := r.Header.Get("Range")
	b, err := src.Blob(ctx, rt.repo, d, rangeHeader)
	if err != nil {
		return err
	}
	defer b.Body.Close()
	switch {
	case b.Status == http.StatusOK:
		return h.streamVerified(w, r, b, d, info)
	case b.Status == http.StatusPartialContent && rangeHeader != "":
		return h.relayPartial(w, r, b, d, info)
	}
	return &Error{Code: errcode.ErrorCodeUnknown, Status: http.StatusBadGateway,
		Message: fmt.Sprintf("the upstream answered a blob request with status %d", b.Status)}
}

// streamVerified streams a whole blob, hashing it on the way. Once the headers are out
// the status cannot change, so a body that turns out to be wrong (digest, or more or
// fewer bytes than announced) aborts the response: the client sees a broken
// connection, never a clean end of a wrong body. With a known length the last bytes are
// held back until the digest matched; without one (object storage answering in
// chunks) the answer is chunked too and its final chunk is never sent on a mismatch.
func (h *handler) streamVerified(w http.ResponseWriter, r *http.Request, b *Blob, d digest.Digest, info *accessInfo) error {
	body, err := verify.NewReader(b.Body, d, b.ContentLength)
	if err != nil {
		return &Error{Code: errcode.ErrorCodeUnknown, Status: http.StatusBadGateway,
			Message: "cannot verify the blob", Err: err}
	}
	hdr := w.Header()
	hdr.Set("Content-Type", blobContentType(b.ContentType))
	hdr.Set("Docker-Content-Digest", d.String())
	if b.ContentLength >= 0 {
		hdr.Set("Content-Length", strconv.FormatInt(b.ContentLength, 10))
	}
	if b.AcceptRanges != "" {
		hdr.Set("Accept-Ranges", b.AcceptRanges)
	}
	w.WriteHeader(http.StatusOK)
	if _, err := relay(w, body); err != nil {
		h.abort(r, info, err)
	}
	return nil
}

// relayPartial relays a 206 answer to a Range request. A part of a blob cannot be
// hashed in isolation, so its bytes are not verified here: the client verifies the blob
// it assembles from the parts. The announced length is still enforced.
func (h *handler) relayPartial(w http.ResponseWriter, r *http.Request, b *Blob, d digest.Digest, info *accessInfo) error {
	if b.ContentLength < 0 {
		return &Error{Code: errcode.ErrorCodeUnknown, Status: http.StatusBadGateway,
			Message: "the upstream did not say the size of the partial blob"}
	}
	hdr := w.Header()
	hdr.Set("Content-Type", blobContentType(b.ContentType))
	hdr.Set("Docker-Content-Digest", d.String())
	hdr.Set("Content-Length", strconv.FormatInt(b.ContentLength, 10))
	if b.ContentRange != "" {
		hdr.Set("Content-Range", b.ContentRange)
	}
	if b.AcceptRanges != "" {
		hdr.Set("Accept-Ranges", b.AcceptRanges)
	}
	w.WriteHeader(http.StatusPartialContent)
	n, err := relay(w, io.LimitReader(b.Body, b.ContentLength))
	if err == nil && n != b.ContentLength {
		err = fmt.Errorf("partial blob ended after %d of %d bytes: %w", n, b.ContentLength, ErrSizeMismatch)
	}
	if err != nil {
		h.abort(r, info, err)
	}
	return nil
}

// blobCopyBuffers recycles the buffers blob bodies are relayed through, so that a busy
// proxy does not allocate blobCopyBufferBytes per transfer. It holds no request state.
var blobCopyBuffers = sync.Pool{New: func() any {
	b := make([]byte, blobCopyBufferBytes)
	return &b
}}

// relay copies a blob body to the client through a pooled blobCopyBufferBytes buffer.
// io.Copy would hand the body to the ResponseWriter's ReadFrom, which moves it in 32 KiB
// pieces: a read, a hash and a write system call per 32 KiB on each side of pullgate.
func relay(w io.Writer, body io.Reader) (int64, error) {
	bp := blobCopyBuffers.Get().(*[]byte)
	defer blobCopyBuffers.Put(bp)
	return io.CopyBuffer(writerOnly{w}, body, *bp)
}

// writerOnly hides a writer's ReadFrom, so that io.CopyBuffer uses the buffer given.
type writerOnly struct{ io.Writer }

// abort logs why a response that already started cannot be completed, then aborts it
// (net/http closes the connection without finishing the body).
func (h *handler) abort(r *http.Request, info *accessInfo, err error) {
	attrs := []slog.Attr{
		slog.String("path", r.URL.Path),
		slog.String("upstream", info.registry),
		slog.String("repo", info.repo),
		slog.String("digest", info.digest.String()),
		slog.String("error", err.Error()),
	}
	switch {
	case errors.Is(err, ErrDigestMismatch), errors.Is(err, ErrSizeMismatch):
		h.log.LogAttrs(r.Context(), slog.LevelError, "failed to verify blob from upstream, response aborted", attrs...)
	case r.Context().Err() != nil:
		info.clientGone = true
		h.log.LogAttrs(r.Context(), slog.LevelDebug, "client went away during blob transfer", attrs...)
	default:
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "failed to stream blob, response aborted", attrs...)
	}
	panic(http.ErrAbortHandler)
}

// blobContentType is the upstream's Content-Type for a blob, or the generic one
// registries use.
func blobContentType(ct string) string {
	if ct == "" {
		return "application/octet-stream"
	}
	return ct
}
