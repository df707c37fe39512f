package proxy

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/content"
	"github.com/pullgate/pullgate/proxy/upstream"
)

// The one table from what failed to what the client is answered. Sources, the gate and
// the signature lister return plain or typed errors that say what happened; the handler
// picks the answer here, by where the error came from:
//
//   - asError: a Source's error for the request itself (an upstream's answer about the
//     manifest, blob or listing asked for is relayed as the OCI error it means);
//   - gateError: the gate could not decide (503, whatever an upstream answered while
//     signatures were read: its 403 on a .sig tag says nothing about the manifest);
//   - signatureError: the signature list could not be read (503 likewise).

// asError turns any error into the *Error to answer with. Unknown errors become 500
// UNKNOWN with a generic message: their text may carry internals.
func asError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	var ue *upstream.Error
	if errors.As(err, &ue) {
		return upstreamAnswer(ue)
	}
	var fe *upstream.FailureError
	if errors.As(err, &fe) {
		return failureAnswer(fe)
	}
	var oe *content.OfflineError
	if errors.As(err, &oe) {
		return &Error{Code: oe.Code, Message: oe.Error(), Err: err}
	}
	var code errcode.ErrorCode
	if errors.As(err, &code) {
		return &Error{Code: code, Err: err}
	}
	return &Error{Code: errcode.ErrorCodeUnknown, Message: "internal error", Err: err}
}

// upstreamAnswer relays an upstream's unsuccessful answer as the OCI error it means,
// with the upstream's message after pullgate's words.
func upstreamAnswer(e *upstream.Error) *Error {
	msg := func(what string) string {
		if e.Message != "" {
			return fmt.Sprintf("upstream %s: %s: %s", e.Registry, what, e.Message)
		}
		return fmt.Sprintf("upstream %s: %s", e.Registry, what)
	}
	code := e.ErrorCode()
	switch s := e.StatusCode; {
	case s == http.StatusNotFound:
		return &Error{Code: code, Message: msg(code.Message()), Err: e}
	case s == http.StatusUnauthorized:
		return &Error{Code: code, Message: msg("pullgate's credentials for the upstream were refused"), Err: e}
	case s == http.StatusForbidden:
		return &Error{Code: code, Message: msg("access denied"), Err: e}
	case s == http.StatusTooManyRequests:
		return &Error{Code: code, Message: msg("too many requests"), RetryAfter: e.RetryAfter, Err: e}
	case s == http.StatusRequestedRangeNotSatisfiable:
		return &Error{Code: code, Message: msg("invalid range"), Err: e}
	case s == http.StatusServiceUnavailable:
		return &Error{Code: code, Message: msg("unavailable"), Err: e}
	case s >= 500:
		return &Error{Code: code, Status: http.StatusBadGateway, Message: msg(fmt.Sprintf("server error %d", s)), Err: e}
	case code != errcode.ErrorCodeUnknown:
		// A client error the upstream named (DIGEST_INVALID, NAME_INVALID, ...).
		return &Error{Code: code, Status: s, Message: msg(code.Message()), Err: e}
	}
	return badUpstream(msg(fmt.Sprintf("unexpected status %d", e.StatusCode)), e)
}

// failureAnswer answers a request that got no usable answer from the upstream. The
// messages never name an address beyond the upstream's configured name.
func failureAnswer(e *upstream.FailureError) *Error {
	bad := func(code errcode.ErrorCode, status int, format string) *Error {
		return &Error{Code: code, Status: status, Message: fmt.Sprintf(format, e.Registry), Err: e}
	}
	switch e.Failure {
	case upstream.FailureRedirect:
		var re *upstream.RedirectError
		if errors.As(e, &re) && !re.CrossHost {
			return bad(errcode.ErrorCodeUnknown, http.StatusBadGateway, "upstream %s redirected a request from https to http")
		}
		return bad(errcode.ErrorCodeUnknown, http.StatusBadGateway, "upstream %s redirected an API request to another host")
	case upstream.FailureAddress:
		return bad(errcode.ErrorCodeUnknown, http.StatusBadGateway, "upstream %s named a host at an address pullgate does not connect to for it")
	case upstream.FailureTooLarge:
		return bad(errcode.ErrorCodeUnknown, http.StatusBadGateway, "upstream %s sent an answer larger than pullgate accepts")
	case upstream.FailureTimeout:
		return bad(errcode.ErrorCodeUnavailable, http.StatusGatewayTimeout, "upstream %s did not answer in time")
	case upstream.FailureAuth:
		if e.Status == http.StatusTooManyRequests {
			return bad(errcode.ErrorCodeTooManyRequests, 0, "upstream %s: too many requests")
		}
		return bad(errcode.ErrorCodeUnauthorized, 0, "upstream %s refused pullgate's credentials")
	case upstream.FailureInvalid:
		return badUpstream(fmt.Sprintf("upstream %s sent %s", e.Registry, e.What), e)
	case upstream.FailureCheck:
		return &Error{Code: errcode.ErrorCodeUnavailable, Status: http.StatusBadGateway,
			Message: "the upstream registry's API check failed", Err: e}
	}
	return bad(errcode.ErrorCodeUnavailable, http.StatusBadGateway, "upstream %s is unreachable")
}

// gateError is the answer when the gate (or the signature lister) could not decide: 503
// UNAVAILABLE whatever the cause, never an upstream's answer found in it. A *Error the
// gate returns itself (not wrapped) is its chosen answer and is relayed.
func gateError(err error) error {
	if pe, ok := err.(*Error); ok {
		return pe
	}
	var ue *admission.UnreadableError
	if errors.As(err, &ue) {
		return &Error{Code: errcode.ErrorCodeUnavailable,
			Message: "could not decide whether the content may be served: its signatures could not be read; try again later",
			Err:     err}
	}
	return &Error{Code: errcode.ErrorCodeUnavailable,
		Message: "could not decide whether the content may be served; try again later", Err: err}
}

// badUpstream is the answer when what an upstream sent cannot be served (unreadable,
// invalid, failed verification): 502 UNKNOWN, with a message that says what was wrong.
func badUpstream(message string, cause error) *Error {
	return &Error{Code: errcode.ErrorCodeUnknown, Status: http.StatusBadGateway, Message: message, Err: cause}
}

// denied is the answer when the gate refused.
func denied(d admission.Decision) error {
	return &Error{Code: errcode.ErrorCodeDenied, Message: d.Reason, Detail: d.Detail}
}

// signatureError is the answer when the signature list could not be read: as gateError,
// with the signature API's words.
func signatureError(err error) error {
	var ue *admission.UnreadableError
	if errors.As(err, &ue) {
		return &Error{Code: errcode.ErrorCodeUnavailable,
			Message: "the signatures could not be read; try again later", Err: err}
	}
	return gateError(err)
}

// Answer is the OCI error a client is answered with for err, a Source's error for the
// request itself: the status, code, message and Retry-After the handler writes. For
// tests and tools that show what a client would see.
func Answer(err error) *Error { return asError(err) }

// GateAnswer is the OCI error a client is answered with when the gate returned err.
func GateAnswer(err error) *Error { return asError(gateError(err)) }

// SignatureAnswer is the OCI error a client of the signature API is answered with when
// the signature lister returned err.
func SignatureAnswer(err error) *Error { return asError(signatureError(err)) }
