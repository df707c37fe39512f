package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/content"
	"github.com/pullgate/pullgate/proxy/verify"
)

// serveBlob answers GET and HEAD on /v2/<name>/blobs/<digest>. The gate decides before
// the upstream is contacted.
func (h *handler) serveBlob(w http.ResponseWriter, r *http.Request, rt route, info *accessInfo) error {
	ctx := r.Context()
	d := digest.Digest(rt.ref)
	info.digest = d
	head := r.Method == http.MethodHead
	dec, err := h.gate.AdmitBlob(ctx, &admission.BlobRequest{Target: target(r, rt), Digest: d, Head: head})
	if err != nil {
		return gateError(err)
	}
	if !dec.Allow {
		return denied(dec)
	}

	src := h.sources[rt.registry]
	if vs, ok := src.(content.VerifiedBlobSource); ok {
		vb, err := vs.OpenVerified(ctx, rt.repo, d)
		switch {
		case err == nil:
			defer vb.Body.Close()
			return h.serveHeld(w, r, vb, d, info)
		case !errors.Is(err, content.ErrNotHeld):
			return err
		}
	}
	if head {
		desc, err := src.StatBlob(ctx, rt.repo, d)
		if err != nil {
			return err
		}
		if desc.Size < 0 {
			return badUpstream("the upstream did not say the size of the blob", nil)
		}
		setBlobHeaders(w.Header(), desc.ContentType, d, desc.Size)
		w.WriteHeader(http.StatusOK)
		return nil
	}

	release, err := h.acquireStream(r)
	if err != nil {
		return err
	}
	defer release()
	// Never a Range upstream: a part of a blob cannot be verified on its own, and the
	// upstream (or the storage it redirects to) could answer any bytes. The whole blob
	// is fetched and verified; a range is cut from it (serveRange).
	b, err := src.Blob(ctx, rt.repo, d)
	if err != nil {
		return err
	}
	defer b.Body.Close()
	rangeHeader := r.Header.Get("Range")
	if r.Header.Get("If-Range") != "" {
		// pullgate issues no validators, so none can match: the whole blob (RFC 9110 13.1.5).
		rangeHeader = ""
	}
	switch rg := parseRange(rangeHeader, b.Size); rg.kind {
	case rangeSingle:
		return h.serveRange(w, r, b, d, rg, info)
	case rangeUnsatisfiable:
		return rangeNotSatisfiable(w, rangeHeader, b.Size)
	}
	return h.streamVerified(w, r, b, d, info)
}

// rangeNotSatisfiable is the 416 answer to a range outside a blob of size bytes.
func rangeNotSatisfiable(w http.ResponseWriter, rangeHeader string, size int64) error {
	w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
	return &Error{Code: errcode.ErrorCodeRangeInvalid,
		Message: fmt.Sprintf("the range %q is outside the blob's %d bytes", rangeHeader, size)}
}

// serveHeld answers from a blob a VerifiedBlobSource holds: http.ServeContent seeks to
// a range (and sends a file with sendfile) since the bytes are verified already. The
// Range is resolved as for streamed blobs (parseRange), so both answer a request the
// same way: only a single range, any other ignored, 416 as an OCI error. Unlike a
// streamed blob, a held one has a modification time, so If-Range may match it.
func (h *handler) serveHeld(w http.ResponseWriter, r *http.Request, vb *content.VerifiedBlob, d digest.Digest, info *accessInfo) error {
	rangeHeader := r.Header.Get("Range")
	req := r
	if rangeHeader != "" {
		req = new(http.Request)
		*req = *r
		req.Header = r.Header.Clone()
		switch rg := parseRange(rangeHeader, vb.Size); rg.kind {
		case rangeSingle:
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", rg.first, rg.last))
		case rangeUnsatisfiable:
			if r.Header.Get("If-Range") == "" {
				return rangeNotSatisfiable(w, rangeHeader, vb.Size)
			}
			// If-Range decides whether the range applies at all: ServeContent does.
		default:
			req.Header.Del("Range")
		}
	}
	hdr := w.Header()
	hdr.Set("Content-Type", blobContentType(vb.ContentType))
	hdr.Set("Docker-Content-Digest", d.String())
	http.ServeContent(w, req, "", vb.ModTime, vb.Body)
	if r.Context().Err() != nil {
		info.clientGone = true
	}
	return nil
}

// setBlobHeaders sets the headers of every blob answer: the Content-Type (see
// blobContentType), the digest asked for, and, when length is known, the Content-Length
// and Accept-Ranges (ranges are served only when the size is known, see serveBlob).
func setBlobHeaders(hdr http.Header, contentType string, d digest.Digest, length int64) {
	hdr.Set("Content-Type", blobContentType(contentType))
	hdr.Set("Docker-Content-Digest", d.String())
	if length >= 0 {
		hdr.Set("Content-Length", strconv.FormatInt(length, 10))
		hdr.Set("Accept-Ranges", "bytes")
	}
}

// verifying wraps a blob's body in the reader that checks its digest and length.
func verifying(b *content.Blob, d digest.Digest) (*verify.Reader, error) {
	body, err := verify.NewReader(b.Body, d, b.Size)
	if err != nil {
		return nil, badUpstream("cannot verify the blob", err)
	}
	return body, nil
}

// streamVerified streams a whole blob, hashing it on the way. Once the headers are out
// the status cannot change, so a body that turns out to be wrong (digest, or more or
// fewer bytes than announced) aborts the response: the client sees a broken
// connection, never a clean end of a wrong body. With a known length the last bytes are
// held back until the digest matched; without one (object storage answering in
// chunks) the answer is chunked too and its final chunk is never sent on a mismatch.
func (h *handler) streamVerified(w http.ResponseWriter, r *http.Request, b *content.Blob, d digest.Digest, info *accessInfo) error {
	body, err := verifying(b, d)
	if err != nil {
		return err
	}
	setBlobHeaders(w.Header(), b.ContentType, d, b.Size)
	w.WriteHeader(http.StatusOK)
	if _, err := relay(w, body); err != nil {
		h.abort(r, info, err)
	}
	return nil
}

// serveRange answers 206 with bytes rg of a blob whose whole body b is read and
// verified: the bytes before the range are hashed and dropped, the range is sent, the
// rest is hashed and dropped, and the last byte of the range is held back until the
// whole blob matched its digest. A mismatch anywhere aborts the response, so a client
// never receives a complete 206 of bytes that were not verified.
func (h *handler) serveRange(w http.ResponseWriter, r *http.Request, b *content.Blob, d digest.Digest, rg byteRange, info *accessInfo) error {
	body, err := verifying(b, d)
	if err != nil {
		return err
	}
	hdr := w.Header()
	setBlobHeaders(hdr, b.ContentType, d, rg.length())
	hdr.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", rg.first, rg.last, b.Size))
	w.WriteHeader(http.StatusPartialContent)

	bp := blobCopyBuffers.Get().(*[]byte)
	defer blobCopyBuffers.Put(bp)
	buf := *bp
	var pos int64 // position in the blob of buf[0] of the next read
	var held byte // the range's last byte, once read
	for {
		n, err := body.Read(buf)
		// The part of buf[:n] inside [first, last), which may be sent now.
		lo, hi := max(rg.first-pos, 0), min(rg.last-pos, int64(n))
		if lo < hi {
			if _, werr := w.Write(buf[lo:hi]); werr != nil {
				h.abort(r, info, werr)
			}
		}
		if at := rg.last - pos; at >= 0 && at < int64(n) {
			held = buf[at]
		}
		pos += int64(n)
		if errors.Is(err, io.EOF) {
			break // verified: size and digest matched
		}
		if err != nil {
			h.abort(r, info, err)
		}
	}
	if _, err := w.Write([]byte{held}); err != nil {
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
		slog.String("upstream", info.route.registry),
		slog.String("repo", info.route.repo),
		slog.String("digest", info.digest.String()),
		slog.String("error", err.Error()),
	}
	switch {
	case errors.Is(err, content.ErrDigestMismatch), errors.Is(err, content.ErrSizeMismatch):
		h.log.LogAttrs(r.Context(), slog.LevelError, "failed to verify blob from upstream, response aborted", attrs...)
	case errors.Is(err, os.ErrDeadlineExceeded):
		info.clientGone = true
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "client stopped reading; blob transfer ended by the write stall timeout", attrs...)
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
