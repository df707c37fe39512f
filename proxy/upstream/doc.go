// Package upstream is pullgate's client for one upstream registry. It implements
// content.Source: it forwards reads over net/http with connect and header timeouts,
// authenticates with go-containerregistry's transport (Ping, then basic auth or bearer
// tokens cached per repository scope and refreshed on 401), retries idempotent requests
// after connection errors and 502/503/504, and verifies manifest bytes. Failures are
// typed, never an answer to a client: *Error is what an upstream answered (status, its
// OCI code and message, Retry-After), *FailureError a request without a usable answer
// (unreachable, timeout, redirect refused, too large, invalid content); the handler
// (package proxy, answer.go) decides what a client is told.
//
// Every read has a deadline (limits.go): the credential set-up (ping and token) as a
// whole, each API request with its body, and each blob body per stall; a timeout is a
// FailureTimeout (the handler answers 504 UNAVAILABLE). API requests, the ping and token requests follow no redirect off the
// upstream's origin; blob requests may go to storage elsewhere, never from https to
// http (redirects.go). NewHTTPClient gives other outbound reads the same bounds.
//
// Credentials are only ever placed in Authorization headers for the upstream's own host
// (and its token realm); they never appear in errors or logs, and a redirect to another
// host carries none.
package upstream
