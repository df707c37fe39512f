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
)

// Endpoint is what a request to an upstream was for; it picks the OCI code of a bare
// 404.
type Endpoint int

const (
	EndpointManifest Endpoint = iota
	EndpointBlob
	EndpointTags
	EndpointReferrers
	EndpointSignatures
)

// notFound is the code a 404 of this endpoint means when the upstream named none.
func (k Endpoint) notFound() errcode.ErrorCode {
	switch k {
	case EndpointManifest:
		return errcode.ErrorCodeManifestUnknown
	case EndpointBlob:
		return errcode.ErrorCodeBlobUnknown
	}
	return errcode.ErrorCodeNameUnknown
}

// Error is an unsuccessful answer of an upstream, as go-containerregistry's
// transport.Error is: what it said, not what pullgate answers its client (the handler
// decides that). Its text may name the upstream; Message is the upstream's own words.
type Error struct {
	// Registry is the upstream's configured name.
	Registry string
	// Endpoint is what the request was for.
	Endpoint Endpoint
	// StatusCode and Status are the answer's HTTP status.
	StatusCode int
	Status     string
	// Code is the first OCI error code of the body; zero when it named none (or the
	// request was a HEAD, which has no body).
	Code errcode.ErrorCode
	// Message is that error's message: at most maxErrorMessageBytes, valid UTF-8.
	Message string
	// RetryAfter is the answer's Retry-After header.
	RetryAfter string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("upstream %s answered %s", e.Registry, e.Status)
	if e.StatusCode == http.StatusUnauthorized {
		s += ": pullgate's credentials were refused"
	}
	if e.named() {
		s = fmt.Sprintf("%s (%s: %s)", s, e.Code, e.Message)
	}
	return s
}

// Unreachable reports whether the answer is a server error (content.IsUnreachable): the
// upstream is up but cannot serve, so kept content may answer instead.
func (e *Error) Unreachable() bool { return e.StatusCode >= http.StatusInternalServerError }

// named reports whether the upstream named an OCI error code.
func (e *Error) named() bool { return e.Code != errcode.ErrorCodeUnknown && e.Code != 0 }

// ErrorCode is the OCI code the answer means: for a 404 the upstream's NAME_UNKNOWN,
// MANIFEST_UNKNOWN or BLOB_UNKNOWN, else the endpoint's; 401, 403, 416, 429 and 5xx by
// their status; another 4xx by the code the upstream named; anything else UNKNOWN.
// content.IsNotFound reads it.
func (e *Error) ErrorCode() errcode.ErrorCode {
	switch s := e.StatusCode; {
	case s == http.StatusNotFound:
		switch e.Code {
		case errcode.ErrorCodeNameUnknown, errcode.ErrorCodeManifestUnknown, errcode.ErrorCodeBlobUnknown:
			return e.Code
		}
		return e.Endpoint.notFound()
	case s == http.StatusUnauthorized:
		return errcode.ErrorCodeUnauthorized
	case s == http.StatusForbidden:
		return errcode.ErrorCodeDenied
	case s == http.StatusTooManyRequests:
		return errcode.ErrorCodeTooManyRequests
	case s == http.StatusRequestedRangeNotSatisfiable:
		return errcode.ErrorCodeRangeInvalid
	case s >= 500:
		return errcode.ErrorCodeUnavailable
	case s >= 400 && s < 500 && e.named():
		return e.Code
	}
	return errcode.ErrorCodeUnknown
}

// Failure is why a request to an upstream got no usable answer.
type Failure int

const (
	// FailureUnreachable: no answer (refused connection, TLS failure, reset).
	FailureUnreachable Failure = iota
	// FailureTimeout: a deadline ran out (a *TimeoutError or the caller's).
	FailureTimeout
	// FailureRedirect: a redirect pullgate does not follow (a *RedirectError).
	FailureRedirect
	// FailureTooLarge: an answer larger than pullgate reads.
	FailureTooLarge
	// FailureAuth: the token exchange was refused; Status is its HTTP status.
	FailureAuth
	// FailureInvalid: content that failed verification (digest, size); What says
	// which. Nothing of it is served.
	FailureInvalid
	// FailureCheck: the upstream's API check (GET /v2/) answered neither 200 nor 401.
	FailureCheck
	// FailureAddress: a host the upstream named (redirect target, token realm) is at an
	// address pullgate does not connect to for it (an *AddressError).
	FailureAddress
)

// FailureError is a request to an upstream that ended without a usable answer, or with
// content that failed verification. Err is the cause.
type FailureError struct {
	Registry string
	Failure  Failure
	// What is, for FailureInvalid, what the upstream sent ("a manifest larger than
	// pullgate accepts").
	What string
	// Status is, for FailureAuth, the token endpoint's HTTP status.
	Status int
	Err    error
}

func (e *FailureError) Error() string {
	switch e.Failure {
	case FailureAuth:
		return fmt.Sprintf("upstream %s: authenticate: %v", e.Registry, e.Err)
	case FailureInvalid:
		return fmt.Sprintf("upstream %s sent %s: %v", e.Registry, e.What, e.Err)
	case FailureCheck:
		return e.Err.Error()
	}
	return fmt.Sprintf("upstream %s: %v", e.Registry, e.Err)
}

func (e *FailureError) Unwrap() error { return e.Err }

// Unreachable reports whether the upstream gave no answer at all (content.IsUnreachable):
// no connection, a deadline, or a failed API check. Invalid content and refused
// credentials are answers.
func (e *FailureError) Unreachable() bool {
	switch e.Failure {
	case FailureUnreachable, FailureTimeout, FailureCheck:
		return true
	}
	return false
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

// responseError is the *Error of an unsuccessful upstream answer. It reads the body
// (bounded); the caller still closes it.
func (c *Client) responseError(resp *http.Response, k Endpoint) *Error {
	ue := readUpstreamError(resp)
	return &Error{Registry: c.registryName, Endpoint: k, StatusCode: resp.StatusCode, Status: resp.Status,
		Code: ue.code, Message: ue.message, RetryAfter: resp.Header.Get("Retry-After")}
}

// transportError is the *FailureError of a failed round trip (no answer at all). A
// cancelled request (the client went away) is returned as is. A *url.Error's URL is
// redacted (redactURLError) either way.
func (c *Client) transportError(err error) error {
	err = redactURLError(err)
	if errors.Is(err, context.Canceled) {
		return err
	}
	var ue *Error
	var fe *FailureError
	if errors.As(err, &ue) || errors.As(err, &fe) {
		return err
	}
	f := &FailureError{Registry: c.registryName, Failure: FailureUnreachable, Err: err}
	var re *RedirectError
	var ae *AddressError
	var ne net.Error
	switch {
	case errors.As(err, &re):
		f.Failure = FailureRedirect
	case errors.As(err, &ae):
		f.Failure = FailureAddress
	case errors.Is(err, errBodyTooLarge):
		f.Failure = FailureTooLarge
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		f.Failure = FailureTimeout
	default:
		// An authentication exchange that the upstream refused comes back from
		// go-containerregistry's transport as a *transport.Error carrying the status.
		if status, ok := transportStatus(err); ok {
			switch status {
			case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests:
				f.Failure, f.Status = FailureAuth, status
			}
		}
	}
	return f
}

// invalid is the error for content that failed verification: nothing of it is served.
func (c *Client) invalid(what string, cause error) *FailureError {
	return &FailureError{Registry: c.registryName, Failure: FailureInvalid, What: what, Err: cause}
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
