package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	ggcrtransport "github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/pullgate/pullgate/proxy"
)

// kind is what a request was after; it picks the OCI code for a bare 404.
type kind int

const (
	kindManifest kind = iota
	kindBlob
	kindTags
	kindReferrers
	kindSignatures
)

func (k kind) notFound() errcode.ErrorCode {
	switch k {
	case kindManifest:
		return errcode.ErrorCodeManifestUnknown
	case kindBlob:
		return errcode.ErrorCodeBlobUnknown
	}
	return errcode.ErrorCodeNameUnknown
}

// upstreamError is the first error of an upstream's OCI error body.
type upstreamError struct {
	code    errcode.ErrorCode
	message string
}

// readUpstreamError reads (at most maxErrorBodyBytes of) an error answer's body and
// picks out the first OCI error in it. Bodies that are not OCI errors give the zero
// value.
func readUpstreamError(resp *http.Response) upstreamError {
	if resp.Request != nil && resp.Request.Method == http.MethodHead {
		return upstreamError{}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
	if err != nil || len(b) == 0 {
		return upstreamError{}
	}
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &body) != nil || len(body.Errors) == 0 {
		return upstreamError{}
	}
	e := body.Errors[0]
	msg := e.Message
	if len(msg) > maxErrorMessageBytes {
		msg = msg[:maxErrorMessageBytes]
	}
	return upstreamError{code: errcode.ParseErrorCode(strings.ToUpper(e.Code)), message: strings.ToValidUTF8(msg, "")}
}

// responseError maps an unsuccessful upstream answer to the OCI error pullgate answers
// with. It reads the body (bounded); the caller still closes it.
func (c *Client) responseError(resp *http.Response, k kind) *proxy.Error {
	ue := readUpstreamError(resp)
	cause := fmt.Errorf("upstream %s answered %s", c.registryName, resp.Status)
	if ue.code != errcode.ErrorCodeUnknown && ue.code != 0 {
		cause = fmt.Errorf("%w (%s: %s)", cause, ue.code, ue.message)
	}
	msg := func(what string) string {
		if ue.message != "" {
			return fmt.Sprintf("upstream %s: %s: %s", c.registryName, what, ue.message)
		}
		return fmt.Sprintf("upstream %s: %s", c.registryName, what)
	}
	switch s := resp.StatusCode; {
	case s == http.StatusNotFound:
		code := k.notFound()
		switch ue.code {
		case errcode.ErrorCodeNameUnknown, errcode.ErrorCodeManifestUnknown, errcode.ErrorCodeBlobUnknown:
			code = ue.code
		}
		return &proxy.Error{Code: code, Message: msg(code.Message()), Err: cause}
	case s == http.StatusUnauthorized:
		return &proxy.Error{Code: errcode.ErrorCodeUnauthorized,
			Message: msg("pullgate's credentials for the upstream were refused"), Err: cause}
	case s == http.StatusForbidden:
		return &proxy.Error{Code: errcode.ErrorCodeDenied, Message: msg("access denied"), Err: cause}
	case s == http.StatusTooManyRequests:
		return &proxy.Error{Code: errcode.ErrorCodeTooManyRequests, Message: msg("too many requests"),
			RetryAfter: resp.Header.Get("Retry-After"), Err: cause}
	case s == http.StatusRequestedRangeNotSatisfiable:
		return &proxy.Error{Code: errcode.ErrorCodeRangeInvalid, Message: msg("invalid range"), Err: cause}
	case s == http.StatusServiceUnavailable:
		return &proxy.Error{Code: errcode.ErrorCodeUnavailable, Message: msg("unavailable"), Err: cause}
	case s >= 500:
		return &proxy.Error{Code: errcode.ErrorCodeUnavailable, Status: http.StatusBadGateway,
			Message: msg(fmt.Sprintf("server error %d", s)), Err: cause}
	case s >= 400 && s < 500 && ue.code != errcode.ErrorCodeUnknown && ue.code != 0:
		// A client error the upstream named (DIGEST_INVALID, NAME_INVALID, ...).
		return &proxy.Error{Code: ue.code, Status: s, Message: msg(ue.code.Message()), Err: cause}
	}
	return &proxy.Error{Code: errcode.ErrorCodeUnknown, Status: http.StatusBadGateway,
		Message: msg(fmt.Sprintf("unexpected status %d", resp.StatusCode)), Err: cause}
}

// transportError maps a failed round trip (no answer at all) to the OCI error pullgate
// answers with. A cancelled request (the client went away) is returned as is.
func (c *Client) transportError(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	var pe *proxy.Error
	if errors.As(err, &pe) {
		return err
	}
	// A redirect pullgate would not follow: nothing from its target was read. The
	// message does not name the target (an internal address is nobody's business).
	var re *RedirectError
	if errors.As(err, &re) {
		msg := fmt.Sprintf("upstream %s redirected an API request to another host", c.registryName)
		if !re.CrossHost {
			msg = fmt.Sprintf("upstream %s redirected a request from https to http", c.registryName)
		}
		return &proxy.Error{Code: errcode.ErrorCodeUnknown, Status: http.StatusBadGateway, Message: msg,
			Err: fmt.Errorf("upstream %s: %w", c.registryName, err)}
	}
	if errors.Is(err, errBodyTooLarge) {
		return &proxy.Error{Code: errcode.ErrorCodeUnknown, Status: http.StatusBadGateway,
			Message: fmt.Sprintf("upstream %s sent an answer larger than pullgate accepts", c.registryName),
			Err:     fmt.Errorf("upstream %s: %w", c.registryName, err)}
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &proxy.Error{Code: errcode.ErrorCodeUnavailable, Status: http.StatusGatewayTimeout,
			Message: fmt.Sprintf("upstream %s did not answer in time", c.registryName),
			Err:     fmt.Errorf("upstream %s: %w", c.registryName, err)}
	}
	// An authentication exchange that the upstream refused comes back from
	// go-containerregistry's transport as a *transport.Error carrying the status.
	if status, ok := transportStatus(err); ok {
		switch status {
		case http.StatusUnauthorized, http.StatusForbidden:
			return &proxy.Error{Code: errcode.ErrorCodeUnauthorized,
				Message: fmt.Sprintf("upstream %s refused pullgate's credentials", c.registryName),
				Err:     fmt.Errorf("upstream %s: authenticate: %w", c.registryName, err)}
		case http.StatusTooManyRequests:
			return &proxy.Error{Code: errcode.ErrorCodeTooManyRequests,
				Message: fmt.Sprintf("upstream %s: too many requests", c.registryName),
				Err:     fmt.Errorf("upstream %s: authenticate: %w", c.registryName, err)}
		}
	}
	return &proxy.Error{Code: errcode.ErrorCodeUnavailable, Status: http.StatusBadGateway,
		Message: fmt.Sprintf("upstream %s is unreachable", c.registryName),
		Err:     fmt.Errorf("upstream %s: %w", c.registryName, err)}
}

// transportStatus is the HTTP status inside an error from go-containerregistry's
// transport (a failed ping or token exchange).
func transportStatus(err error) (int, bool) {
	var te *ggcrtransport.Error
	if errors.As(err, &te) {
		return te.StatusCode, true
	}
	return 0, false
}
